"""How the broker reads in the Providers pane: the status line with its done/s sparkline, and one
row per provider (paired ones, and the keys waiting to be paired)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from backends.broker.auth import printable
from tui.format import age
from tui.widgets.table_model import Column, Row

PAIRED = "providers"
WAITING = "waiting to be paired (a approves)"
STATE_STYLES = {"online": "green", "draining": "yellow", "offline": "dim", "pending": "magenta"}
SPARKS = "▁▂▃▄▅▆▇█"

PROVIDER_COLUMNS: Sequence[Column] = (
    Column("name", "NAME"),
    Column("fingerprint", "FINGERPRINT", width=20),
    Column("host", "HOST"),
    Column("version", "VERSION", width=8),
    Column("workers", "BUSY/WORKERS", width=12, justify="right"),
    Column("done", "DONE", width=9, justify="right"),
    Column("failed", "FAILED", width=7, justify="right"),
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
    """`broker URL · queued · running · done/s ▁▂▅ · providers · free workers`."""
    rate = rates[-1] if rates else 0.0
    line = Text()
    line.append("broker ", style="dim")
    line.append(url + (" (embedded)" if embedded else ""), style="bold")
    for label, value in (
        ("queued", f"{status.get('queued', 0):,}"),
        ("running", f"{status.get('running', 0):,}"),
        ("done", f"{status.get('done', 0):,}"),
        ("failed", f"{status.get('failed', 0):,}"),
    ):
        line.append(f" · {label} ", style="dim")
        line.append(value)
    line.append(" · done/s ", style="dim")
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
            "workers": f"{provider.get('busy', 0)}/{workers}" if online else str(workers),
            "done": f"{provider['done']:,}" if online else "",
            "failed": f"{provider['failed']:,}" if online and provider.get("failed") is not None else "",
            "mean": f"{mean:.1f}" if isinstance(mean, int | float) else "",
            "heartbeat": f"{age(beat)} ago" if online and isinstance(beat, int | float) else "",
            "state": Text(state, style=STATE_STYLES.get(state, "")),
        },
        group=WAITING if pending else PAIRED,
        rank=0 if online else 1,
    )
