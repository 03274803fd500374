"""How containers and images read in the Containers pane: columns, and one row per resource."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text

from backends.docker import short
from backends.docker_models import ContainerInfo, ImageInfo, StatsPoint, human_duration
from tui.format import age, human_bytes, parse_bytes, parse_percent
from tui.widgets.table_model import Column, Row

STATE_STYLES = {
    "running": "green",
    "restarting": "yellow",
    "paused": "cyan",
    "created": "blue",
    "exited": "dim",
    "dead": "red",
}
HEALTH_MARKS = {"healthy": ("♥", "green"), "unhealthy": ("✗", "bold red"), "starting": ("…", "yellow")}


def text_number(parse: Callable[[str], float]) -> Callable[[Any], float]:
    """A sort key reading the number back out of a formatted cell."""

    def key(value: Any) -> float:
        return parse(value.plain if isinstance(value, Text) else str(value))

    return key


HOST_COLUMN = Column("host", "HOST")
"""The first column of the all-hosts view."""

CONTAINER_COLUMNS: Sequence[Column] = (
    Column("name", "NAME"),
    Column("state", "STATE", width=12),
    Column("image", "IMAGE"),
    Column("status", "STATUS"),
    Column("cpu", "CPU", width=7, justify="right", sort=text_number(parse_percent)),
    Column("mem", "MEM", width=9, justify="right", sort=text_number(parse_bytes)),
    Column("ports", "PORTS"),
    Column("service", "PROJECT/SERVICE"),
)

IMAGE_COLUMNS: Sequence[Column] = (
    Column("name", "IMAGE"),
    Column("id", "ID", width=12),
    Column("size", "SIZE", width=9, justify="right", sort=text_number(parse_bytes)),
    Column("age", "CREATED", width=8, justify="right"),
    Column("used", "USED BY", width=7, justify="right"),
)


def state_cell(container: ContainerInfo, pending: str | None = None) -> Text:
    """The state in its colour, with a health mark when the image has a health check; while an
    action is under way (`pending`: "stopping…", "restarting…"), that instead of the state."""
    if pending:
        return Text(pending, style="bold yellow")
    cell = Text(container.state, style=STATE_STYLES.get(container.state, ""))
    if mark := HEALTH_MARKS.get(container.health):
        cell.append(" " + mark[0], style=mark[1])
    return cell


def table_age(seconds: float) -> str:
    """An age as STATUS says it: Docker's words, but "Less than a minute" for its count of
    seconds, which would go stale between the once-a-minute redraws of the ages."""
    return "Less than a minute" if seconds < 60 else human_duration(seconds)


def status_text(container: ContainerInfo, now: float) -> str:
    """A container's STATUS at `now` (in the table and the strip under it)."""
    return container.status_at(now, table_age)


def with_host(cells: dict[str, Any], host: str | None) -> dict[str, Any]:
    """A row's cells with a HOST cell first, in the all-hosts view (`host` given)."""
    return {"host": host, **cells} if host else cells


def stats_cells(container: ContainerInfo, stats: StatsPoint | None) -> tuple[str, str]:
    """The CPU and MEM cells of a container's row, from its latest stats sample while it runs."""
    running = container.state == "running"
    cpu = f"{stats.cpu_percent:.1f}%" if running and stats and stats.cpu_percent is not None else ""
    mem = human_bytes(stats.memory) if running and stats else ""
    return cpu, mem


def container_row(
    container: ContainerInfo,
    stats: StatsPoint | None,
    host: str | None = None,
    *,
    now: float | None = None,
    pending: str | None = None,
) -> Row:
    """One container's row; CPU and memory from its latest stats sample when it runs; its status
    aged to `now` (default: the time of the call); `pending` an action under way (`state_cell`).

    With `host` (the all-hosts view) the row has a host cell and its project is grouped per host.
    """
    cpu, mem = stats_cells(container, stats)
    service = f"{container.project}/{container.service}" if container.project else ""
    group = f"{host}/{container.project}" if host and container.project else container.project
    return Row(
        with_host(
            {
                "name": container.name,
                "state": state_cell(container, pending),
                "image": short(container.image),
                "status": status_text(container, time.time() if now is None else now),
                "cpu": cpu,
                "mem": mem,
                "ports": container.ports,
                "service": service,
                "id": container.id,  # not a column: lets the filter find a container by id
            },
            host,
        ),
        group=group,
        rank=container.rank,
    )


ERROR_STATUS_WIDTH = 32
"""The most cells a host's error takes in its row: a column fits its widest cell, and a whole
error (~70 cells) pushed the columns after it off screen. The full text stays in a cell the
filter searches, and the strip under the table says it all."""


def host_error_row(
    host: str, error: str, cell: str = "status", state: str = "error", group: str | None = None
) -> Row:
    """An all-hosts view's row for a host it cannot show: its name, and what is wrong cut short in
    column `cell` (the whole error stays in a cell the filter searches). One home for every
    engine pane: containers (STATUS) and members (MEMBER) alike."""
    shown = Text(error, style="red")
    shown.truncate(ERROR_STATUS_WIDTH, overflow="ellipsis")
    return Row(
        {
            "host": host,
            "name": Text("(unreachable)", style="dim"),
            "state": Text(state, style="red"),
            cell: shown,
            "error": error,
        },
        group=group,
        rank=9,
    )


def image_label(image: ImageInfo) -> str:
    """How an image is named in questions and messages: its repo:tags, else its short id."""
    return ", ".join(image.tags) if image.tags else image.short_id


def image_row(image: ImageInfo, now: float | None = None, host: str | None = None) -> Row:
    """One image's row; unused ones dimmed, dangling ones marked; a host cell with `host`."""
    name = Text(image.name, style="dim italic" if not image.tags else "")
    return Row(
        with_host(
            {
                "name": name,
                "id": image.short_id,
                "size": human_bytes(image.size),
                "age": age((now or time.time()) - image.created),
                "used": str(image.used_by) if image.used_by else Text("unused", style="dim"),
                "tags": " ".join(image.tags),
            },
            host,
        ),
        rank=0 if image.used_by else 1,
    )
