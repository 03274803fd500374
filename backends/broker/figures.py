"""The broker's figures, each defined once (`FIGURES`): what every number in the Providers pane,
in `berth broker status` / `berth broker providers`, in `GET /api/v1/status` and
`GET /api/v1/providers`, and in `/metrics` means.

A finished task is exactly one of done, failed and cancelled (`backends.wasm.record.ended_state`),
and its `state` says which, in the broker's API as in the console's Wasm tasks pane and history.
Done, failed, cancelled and retried count since the broker started (a restart sets them to 0; the
tasks stay in its store).

Per provider (`GET /api/v1/providers`): its running and in flight as below; its done, failed and
cancelled count the results it sent back since the broker started, and stay with it when it
drains, disconnects or reconnects (an offline row keeps them). Tasks no provider finished
(cancelled while queued, given up on) count only in the broker's figures, so the providers' sum
can be less. Its mean task ms is the mean run time of its done and failed tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One figure: its key in the API's JSON, the label screens show, and what it counts."""

    key: str
    label: str
    means: str


FIGURES = (
    Figure("queued", "queued", "tasks accepted (on disk) and waiting in the broker's queue for a provider"),
    Figure(
        "running",
        "running",
        "tasks in flight that a provider's worker runs now: per provider, its tasks in flight up to "
        "its number of workers, so never more than the workers connected",
    ),
    Figure(
        "in_flight",
        "in flight",
        "tasks handed to a provider and not finished: running there, or waiting there for a worker "
        "(a provider is handed up to 2 per worker, 16 while a backlog waits); a task's state reads "
        "running from then on",
    ),
    Figure("done", "done", "tasks that ended with the module run to its end and exit code 0"),
    Figure(
        "failed",
        "failed",
        "tasks that ended any other way than exit 0 or a cancel: a non-zero exit code, a trap, out "
        "of fuel, memory or time, an invalid module, or berth gave up on it (no provider finished "
        "it in 3 attempts)",
    ),
    Figure(
        "cancelled", "cancelled", "tasks cancelled by a client or in the console, before or while they ran"
    ),
    Figure(
        "retried",
        "retried",
        "times a task went back to the queue because its provider was lost, went silent or overran "
        "the task's deadline (when it ends, the task itself counts once, as done, failed or cancelled)",
    ),
    Figure("providers", "providers", "providers connected and admitted (online or draining)"),
    Figure("workers", "workers", "workers of the online providers (a draining one takes no new task)"),
    Figure("free_workers", "free workers", "workers of the online providers with no task in flight"),
)
"""Every figure of `GET /api/v1/status`, in the order screens show them."""

TASK_FIGURES = FIGURES[:6]
"""The task figures of the Providers pane's status line (and, per provider, its row)."""


def running(in_flight: int, workers: int) -> int:
    """How many of a provider's tasks in flight its workers run now."""
    return min(in_flight, workers)


@dataclass
class Tally:
    """Tasks one provider finished, by the state they ended in, and the time the ones that ran took."""

    done: int = 0
    failed: int = 0
    cancelled: int = 0
    ran_ms: float = 0.0
    """Summed run time of the done and failed tasks (a cancelled one stopped part way)."""

    def count(self, state: str, duration_ms: float) -> None:
        """One more task that ended in `state` ("done", "failed" or "cancelled") after `duration_ms`."""
        if state == "cancelled":
            self.cancelled += 1
            return
        if state == "done":
            self.done += 1
        else:
            self.failed += 1
        self.ran_ms += duration_ms

    def to_json(self) -> dict[str, Any]:
        """Its figures as the providers list shows them."""
        ran = self.done + self.failed
        return {
            "done": self.done,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "mean_task_ms": round(self.ran_ms / ran, 3) if ran else None,
        }
