"""How wasm tasks read in the Wasm tasks pane: columns, and one row per task."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from backends.wasm.pool import TaskRecord
from tui.format import age
from tui.widgets.table_model import Column, Row

STATE_STYLES = {"queued": "blue", "running": "yellow", "done": "green", "failed": "red", "cancelled": "dim"}

TASK_COLUMNS: Sequence[Column] = (
    Column("id", "ID", width=10),
    Column("name", "MODULE"),
    Column("state", "STATE", width=9),
    Column("exit", "EXIT", width=14),
    Column("duration", "TIME", width=9, justify="right"),
    Column("fuel", "FUEL", width=12, justify="right"),
    Column("age", "STARTED", width=8, justify="right", sort_by="started_at"),
    Column("message", "MESSAGE"),
)


def _duration(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def task_age(record: TaskRecord, now: float) -> str:
    """The STARTED cell at `now`: how long ago the task was started (submitted)."""
    return age(now - record.created_at)


def task_row(record: TaskRecord, now: float) -> Row:
    """One task: its state in colour, how it ended (exit code or failure kind), time and fuel."""
    result = record.result
    if result is None:
        ended = ""
    elif result.kind == "exit":
        ended = f"exit {result.exit_code}"
    else:
        ended = result.kind.replace("_", " ")
    fuel = record.fuel_used
    return Row(
        {
            "id": record.id,
            "name": record.name,
            "state": Text(record.state, style=STATE_STYLES.get(record.state, "")),
            "exit": ended,
            "duration": _duration(record.duration_ms),
            "fuel": f"{fuel:,}" if fuel is not None else "",
            "age": task_age(record, now),
            "message": result.message if result and not result.ok else "",
            "started_at": record.created_at,  # what STARTED sorts by: the pane shows newest first
        },
    )
