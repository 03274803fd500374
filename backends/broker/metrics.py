"""The broker's figures in Prometheus' text format (GET /metrics)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backends.broker.core import Broker


def render_metrics(broker: Broker) -> str:
    """Gauges for the queue and providers, counters for finished tasks, a latency histogram."""
    from backends.broker.core import LATENCY_BUCKETS

    status = broker.status()
    lines = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP berth_broker_{name} {help_text}")
        lines.append(f"# TYPE berth_broker_{name} {kind}")
        # Whole numbers in full (`:g` would show a byte count as 3.14573e+06).
        lines.extend(
            f"berth_broker_{name}{labels} {value if isinstance(value, int) else f'{value:g}'}"
            for labels, value in samples
        )

    # The figures are defined in backends.broker.figures; the help texts say them in short.
    metric("tasks_queued", "gauge", "Tasks waiting in the broker's queue.", [("", status["queued"])])
    metric(
        "tasks_in_flight", "gauge", "Tasks handed to providers and not finished.", [("", status["in_flight"])]
    )
    metric("tasks_running", "gauge", "Tasks a provider's worker runs now.", [("", status["running"])])
    metric(
        "tasks_finished_total",
        "counter",
        "Tasks finished since the broker started, by state (done: exited 0; failed: any other end).",
        [(f'{{state="{s}"}}', status[s]) for s in ("done", "failed", "cancelled")],
    )
    metric(
        "tasks_retried_total",
        "counter",
        "Tasks put back in the queue after a provider was lost.",
        [("", status["retried"])],
    )
    metric("providers", "gauge", "Providers connected and admitted.", [("", status["providers"])])
    metric(
        "workers_free",
        "gauge",
        "Workers of online providers with no task in flight.",
        [("", status["free_workers"])],
    )
    metric(
        "held_bytes",
        "gauge",
        "Bytes (stdin, files, arguments) held by tasks waiting or running; at most queue_bytes.",
        [("", status["held_bytes"])],
    )
    metric("queue_bytes", "gauge", "The queue's byte budget (queue_bytes).", [("", status["queue_bytes"])])
    metric(
        "tasks_purged_total",
        "counter",
        "Finished tasks forgotten after keep_finished or past keep_finished_count.",
        [("", status["purged"])],
    )
    cumulative = 0
    buckets = []
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), broker.latency, strict=True):
        cumulative += count
        buckets.append((f'_bucket{{le="{"+Inf" if bound == float("inf") else f"{bound:g}"}"}}', cumulative))
    metric(
        "task_latency_seconds",
        "histogram",
        "Seconds from a task's submission to its result.",
        [*buckets, ("_sum", broker.latency_sum), ("_count", cumulative)],
    )
    return "\n".join(lines) + "\n"
