"""How member instances read in the Members pane: columns, and one row per instance."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from backends.lxd_models import Forward, MemberInstance, SnapshotInfo
from tui.format import age, human_bytes, parse_bytes
from tui.panes.container_rows import host_error_row as host_row
from tui.panes.container_rows import text_number
from tui.widgets.table_model import Column, Row

STATE_STYLES = {"Running": "green", "Frozen": "cyan", "Stopped": "dim", "Error": "red"}

MEMBER_COLUMNS: Sequence[Column] = (
    Column("name", "NAME"),
    Column("state", "STATE", width=8),
    Column("member", "MEMBER"),
    Column("image", "IMAGE"),
    Column("addresses", "ADDRESSES"),
    Column("mem", "MEM", width=9, justify="right", sort=text_number(parse_bytes)),
    Column("disk", "DISK", width=9, justify="right", sort=text_number(parse_bytes)),
    Column("snapshots", "SNAPS", width=5, justify="right"),
    Column("forwards", "FORWARDS"),
    Column("limits", "LIMITS"),
)

FORWARD_COLUMNS: Sequence[Column] = (
    Column("host", "HOST SIDE"),
    Column("port", "CONTAINER PORT", justify="right"),
    Column("protocol", "PROTO", width=5),
    Column("device", "DEVICE"),
)

SNAPSHOT_COLUMNS: Sequence[Column] = (
    Column("name", "SNAPSHOT"),
    Column("age", "TAKEN", width=8, justify="right"),
    Column("stateful", "STATEFUL", width=8),
)

KEY_COLUMNS: Sequence[Column] = (
    Column("type", "TYPE", width=12),
    Column("key", "KEY"),
    Column("comment", "COMMENT"),
)


def member_row(instance: MemberInstance, host: str | None = None) -> Row:
    """One instance's row, grouped under its member (unowned ones under no group); with `host`
    (the all-hosts view) a host cell first."""
    limits = " ".join(f"{k}={v}" for k, v in sorted(instance.limits.items()))
    running = instance.state == "Running"
    return Row(
        {
            **({"host": host} if host else {}),
            "name": instance.name,
            "state": Text(instance.state, style=STATE_STYLES.get(instance.state, "")),
            "member": instance.member or Text("unowned", style="dim"),
            "image": instance.image,
            "addresses": " ".join(instance.addresses),
            "mem": human_bytes(instance.memory) if running and instance.memory is not None else "",
            "disk": human_bytes(instance.disk) if instance.disk is not None else "",
            "snapshots": str(instance.snapshots),
            "forwards": " ".join(f"{f.host_port}→{f.port}" for f in instance.forwards),
            "limits": limits,
            "contact": instance.contact or "",  # not a column: the filter finds members by contact
        },
        group=f"member: {instance.member}" if instance.member else None,
        rank=0 if running else 1,
    )


def host_error_row(host: str, error: str) -> Row:
    """The all-hosts view's row for a host whose instances cannot be read: its name and why."""
    return host_row(host, error, cell="member", state="Error", group="hosts that cannot be read")


def forward_row(forward: Forward) -> Row:
    """One proxy device."""
    return Row(
        {
            "host": f"{forward.listen_address}:{forward.host_port}",
            "port": str(forward.port),
            "protocol": forward.protocol,
            "device": forward.device,
        }
    )


def snapshot_row(snapshot: SnapshotInfo, now: float) -> Row:
    """One snapshot, newest first."""
    return Row(
        {
            "name": snapshot.name,
            "age": age(now - snapshot.created_at),
            "stateful": "yes" if snapshot.stateful else "",
        },
        rank=-int(snapshot.created_at),
    )


def key_row(key: str) -> Row:
    """One authorized key: its type, the start and end of its blob, its comment."""
    parts = key.split(maxsplit=2)
    blob = parts[1] if len(parts) > 1 else ""
    shown = f"{blob[:12]}…{blob[-12:]}" if len(blob) > 28 else blob
    return Row(
        {"type": parts[0] if parts else "", "key": shown, "comment": parts[2] if len(parts) > 2 else ""}
    )
