"""How the broker reads in the Providers pane: the status line with its done/s sparkline, and one
row per provider (paired ones, and the keys waiting to be paired)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from backends.broker.auth import printable
from backends.broker.figures import TASK_FIGURES
from tui.format import age
from tui.widgets.table_model import Column, Row

PAIRED = "providers"
WAITING = "waiting to be paired (a approves)"
STATE_STYLES = {"online": "green", "draining": "yellow", "offline": "dim", "pending": "magenta"}
SPARKS = "▁▂▃▄▅▆▇█"
FINISHED_FIGURES = ("done", "failed", "cancelled")

PROVIDER_COLUMNS: Sequence[Column] = (
    Column("name", "NAME"),
    Column("fingerprint", "FINGERPRINT", width=20),
    Column("host", "HOST"),
    Column("version", "VERSION", width=8),
    Column("workers", "RUNNING/WORKERS", width=15, justify="right"),
    Column("in_flight", "IN FLIGHT", width=9, justify="right"),
    Column("done", "DONE", width=9, justify="right"),
    Column("failed", "FAILED", width=9, justify="right"),
    Column("cancelled", "CANCELLED", width=9, justify="right"),
    Column("mean", "MEAN MS", width=8, justify="right"),
    Column("heartbeat", "HEARTBEAT", width=9, justify="right"),
    Column("state", "STATE", width=8),
)


def sparkline(values: Sequence[float], width: int = 20) -> str:
    """The last `width` values as block characters scaled to the largest."""
    shown = list(values)[-width:]
    top = max(shown, default=0.0)
    if top <= 0:
        return SPARKS[0] * len(shown)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in shown)


def status_line(url: str, status: dict[str, Any], rates: Sequence[float], embedded: bool) -> Text:
    """`broker URL · queued · running · in flight · done · failed · cancelled · finished/s ▁▂▅ ·
    providers · free workers` (each figure as backends.broker.figures defines it)."""
    rate = rates[-1] if rates else 0.0
    line = Text()
    line.append("broker ", style="dim")
    line.append(url + (" (embedded)" if embedded else ""), style="bold")
    for figure in TASK_FIGURES:
        line.append(f" · {figure.label} ", style="dim")
        line.append(f"{status.get(figure.key, 0):,}")
    line.append(" · finished/s ", style="dim")
    line.append(f"{rate:,.0f} ")
    line.append(sparkline(rates), style="green")
    line.append(" · providers ", style="dim")
    line.append(str(status.get("providers", 0)))
    line.append(" · free workers ", style="dim")
    line.append(f"{status.get('free_workers', 0)}/{status.get('workers', 0)}")
    return line


def provider_row(provider: dict[str, Any], pending: bool = False) -> Row:
    """One provider: paired ones under PAIRED (online first), waiting keys under WAITING."""
    state = str(provider.get("state", "pending" if pending else "offline"))
    online = state in ("online", "draining")
    mean = provider.get("mean_task_ms")
    beat = provider.get("last_heartbeat")
    workers = provider.get("workers") or 0
    return Row(
        {
            # What a provider says about itself: shown without control characters (escape codes).
            "name": printable(str(provider.get("name") or "")),
            "fingerprint": printable(str(provider["fingerprint"])),
            "host": printable(str(provider.get("host") or "")),
            "version": printable(str(provider.get("version") or "")),
            "workers": f"{provider.get('running', 0)}/{workers}" if online else f"-/{workers}",
            "in_flight": f"{provider.get('in_flight', 0):,}" if online else "",
            # A paired provider keeps its figures when it drains or goes offline.
            **{k: f"{provider[k]:,}" if not pending and k in provider else "" for k in FINISHED_FIGURES},
            "mean": f"{mean:.1f}" if isinstance(mean, int | float) else "",
            "heartbeat": f"{age(beat)} ago" if online and isinstance(beat, int | float) else "",
            "state": Text(state, style=STATE_STYLES.get(state, "")),
        },
        group=WAITING if pending else PAIRED,
        rank=0 if online else 1,
    )
