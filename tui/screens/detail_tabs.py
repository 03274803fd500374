"""What each tab of the container detail screen says, read from one inspect document.

Textual-free: each tab is a `DetailTab` naming its columns and the function that turns the
document (`GET /containers/{id}/json`) into rows; the screen (container_detail.py) draws them.
Secret values in the environment (keys like *PASSWORD*, *TOKEN*, *SECRET*, *KEY*) read as
`HIDDEN` until the screen is told to reveal them, in the Env tab and in the raw document alike.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from backends.docker import short
from backends.docker_logs import epoch_seconds
from backends.parse_container import RestartPolicy, written_cpus, written_restart_policy
from backends.units import written_duration, written_size
from tui.format import age
from tui.panes.container_rows import HEALTH_MARKS, STATE_STYLES
from tui.widgets.table_model import Column, Row

Document = Mapping[str, Any]
"""A container's inspect document as the Engine API gives it."""

SECRET_KEY = re.compile(r"PASSWORD|TOKEN|SECRET|KEY", re.IGNORECASE)
"""An environment key whose value is kept out of sight until revealed."""
HIDDEN = "•••••• (hidden)"
"""What a hidden value reads as."""

FIELD_COLUMNS: Sequence[Column] = (
    Column("field", "FIELD", width=18, sort_by="order"),
    Column("value", "VALUE"),
)
"""The columns of the tabs that list one thing's fields (Summary, Resources): by FIELD is in the
order the tab gives them, which reads better than the alphabet."""


@dataclass(frozen=True)
class DetailTab:
    """One tab of tables: its id, title, columns, how the document reads as its rows (given
    whether secrets are revealed, and the time now), a line above the table, what the empty
    table says, and whether its first column sorts in reverse (newest first)."""

    id: str
    title: str
    columns: Sequence[Column]
    rows: Callable[[Document, bool, float], dict[str, Row]]
    note: Callable[[Document, bool], str] = lambda _doc, _reveal: ""
    empty: str = "None."
    sort_reverse: bool = False


def is_secret(key: str) -> bool:
    """Whether the value of environment variable `key` is hidden until revealed."""
    return bool(SECRET_KEY.search(key))


def env_pairs(doc: Document) -> list[tuple[str, str]]:
    """The container's environment as (key, value), in the engine's order."""
    return [
        (key, value) for key, _eq, value in (item.partition("=") for item in _config(doc).get("Env") or [])
    ]


def masked(doc: Document) -> dict[str, Any]:
    """A copy of `doc` whose secret environment values read `HIDDEN`."""
    shown = copy.deepcopy(dict(doc))
    config = shown.get("Config") or {}
    if config.get("Env"):
        config["Env"] = [f"{k}={HIDDEN if is_secret(k) else v}" for k, v in env_pairs(doc)]
    return shown


def raw_lines(doc: Document, reveal: bool) -> list[str]:
    """The document as indented JSON lines, secrets hidden unless `reveal`."""
    return json.dumps(
        doc if reveal else masked(doc), indent=2, sort_keys=True, ensure_ascii=False
    ).splitlines()


def when(stamp: object, now: float) -> str:
    """An Engine API time as local time and how long ago ("" when absent)."""
    seconds = epoch_seconds(stamp)
    if not seconds:
        return ""
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(seconds))} ({age(now - seconds)} ago)"


def _config(doc: Document) -> Mapping[str, Any]:
    return doc.get("Config") or {}


def _host_config(doc: Document) -> Mapping[str, Any]:
    return doc.get("HostConfig") or {}


def _state(doc: Document) -> Mapping[str, Any]:
    return doc.get("State") or {}


def _fields(pairs: Sequence[tuple[str, str | Text]]) -> dict[str, Row]:
    """FIELD/VALUE rows in the order given (the field is the row's id)."""
    return {
        field: Row({"field": field, "value": value, "order": i}) for i, (field, value) in enumerate(pairs)
    }


# Summary -------------------------------------------------------------------------------------


def state_text(doc: Document) -> Text:
    """The state as the pane colours it, with the exit code once it ended and an OOM kill."""
    state = _state(doc)
    status = str(state.get("Status") or "unknown")
    text = Text(status, style=STATE_STYLES.get(status, ""))
    if status in ("exited", "dead"):
        text.append(f" (exit code {state.get('ExitCode', '?')})")
    if state.get("OOMKilled"):
        text.append(" · killed for lack of memory", style="red")
    if state.get("Error"):
        text.append(f" · {state['Error']}", style="red")
    return text


def health_text(doc: Document) -> Text:
    """The health status with its mark, or that there is no healthcheck."""
    health = _state(doc).get("Health")
    if not health:
        return Text("no healthcheck", style="dim")
    status = str(health.get("Status") or "unknown")
    mark, style = HEALTH_MARKS.get(status, ("", ""))
    text = Text(f"{mark} {status}".strip(), style=style)
    if streak := health.get("FailingStreak"):
        text.append(f" (failed {streak} time{'s' * (streak != 1)} in a row)")
    return text


def image_text(doc: Document) -> str:
    """The image as the container was made from it, with its id."""
    image_id = short(str(doc.get("Image") or ""))
    named = str(_config(doc).get("Image") or "")
    return image_id if not named or short(named) == image_id else f"{named} ({image_id})"


def command_text(doc: Document) -> str:
    """The command the container runs (entrypoint and arguments), as a shell would read it."""
    path = doc.get("Path")
    return shlex.join([str(path), *map(str, doc.get("Args") or [])]) if path else ""


def summary_rows(doc: Document, _reveal: bool, now: float) -> dict[str, Row]:
    """Name, id, state, health, restarts, image, times, command."""
    state = _state(doc)
    pairs: list[tuple[str, str | Text]] = [
        ("Name", str(doc.get("Name") or "").lstrip("/")),
        ("Id", short(str(doc.get("Id") or ""))),
        ("State", state_text(doc)),
        ("Health", health_text(doc)),
        ("Restarts", str(doc.get("RestartCount", 0))),
        ("Image", image_text(doc)),
        ("Created", when(doc.get("Created"), now)),
        ("Started", when(state.get("StartedAt"), now)),
    ]
    if not state.get("Running"):
        pairs.append(("Finished", when(state.get("FinishedAt"), now)))
    pairs.append(("Command", command_text(doc)))
    if project := (_config(doc).get("Labels") or {}).get("com.docker.compose.project"):
        pairs.append(("Compose project", str(project)))
    return _fields([(field, value) for field, value in pairs if value])


# Env, labels ---------------------------------------------------------------------------------

PAIR_COLUMNS: Sequence[Column] = (Column("key", "KEY"), Column("value", "VALUE"))


def env_rows(doc: Document, reveal: bool, _now: float) -> dict[str, Row]:
    """One row per variable (sorted by key, as the KEY arrow says); secret values hidden unless
    `reveal`."""
    return {
        key: Row({"key": key, "value": Text(HIDDEN, style="dim") if is_secret(key) and not reveal else value})
        for key, value in env_pairs(doc)
    }


def env_note(doc: Document, reveal: bool) -> str:
    """What the Env tab says about its hidden values."""
    secrets = sum(1 for key, _value in env_pairs(doc) if is_secret(key))
    if not secrets:
        return ""
    values = f"{secrets} secret value{'s' * (secrets != 1)}"
    return f"{values} shown: s hides them." if reveal else f"{values} hidden: s shows them."


def label_rows(doc: Document, _reveal: bool, _now: float) -> dict[str, Row]:
    """One row per label, sorted by key."""
    labels = _config(doc).get("Labels") or {}
    return {key: Row({"key": key, "value": str(value)}) for key, value in labels.items()}


# Mounts, ports, networks ---------------------------------------------------------------------

MOUNT_COLUMNS: Sequence[Column] = (
    Column("destination", "IN THE CONTAINER"),
    Column("type", "TYPE", width=6),
    Column("source", "SOURCE"),
    Column("mode", "MODE", width=4),
)


def mount_rows(doc: Document, _reveal: bool, _now: float) -> dict[str, Row]:
    """One row per mount: where it is inside, its kind, what it is (a volume's name, else its
    path on the host) and whether it is writable."""
    rows: dict[str, Row] = {}
    for mount in doc.get("Mounts") or []:
        destination = str(mount.get("Destination") or "")
        kind = str(mount.get("Type") or "")
        source = str((mount.get("Name") if kind == "volume" else None) or mount.get("Source") or "")
        rows[destination] = Row(
            {
                "destination": destination,
                "type": kind,
                "source": source,
                "mode": "rw" if mount.get("RW") else "ro",
                "path": str(mount.get("Source") or ""),  # not a column: a volume's path, for the filter
            }
        )
    return rows


def _port_order(port: str) -> tuple[int, str]:
    number, _slash, protocol = port.partition("/")
    return (int(number) if number.isdigit() else 0, protocol)


PORT_COLUMNS: Sequence[Column] = (
    Column("port", "CONTAINER PORT", sort=_port_order),
    Column("published", "PUBLISHED ON"),
)


def port_rows(doc: Document, _reveal: bool, _now: float) -> dict[str, Row]:
    """One row per container port: where the host publishes it (the engine's live ports while it
    runs, else what it asked for), or that it is only exposed."""
    live = (doc.get("NetworkSettings") or {}).get("Ports") or {}
    asked = _host_config(doc).get("PortBindings") or {}
    exposed = _config(doc).get("ExposedPorts") or {}
    rows: dict[str, Row] = {}
    for port in {*live, *asked, *exposed}:
        bindings = live.get(port) or asked.get(port) or []
        published = ", ".join(
            f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort') or '(any free port)'}" for b in bindings
        )
        rows[port] = Row({"port": port, "published": published or Text("not published", style="dim")})
    return rows


NETWORK_COLUMNS: Sequence[Column] = (
    Column("network", "NETWORK"),
    Column("address", "ADDRESS"),
    Column("gateway", "GATEWAY"),
    Column("aliases", "ALIASES"),
    Column("mac", "MAC"),
)


def network_rows(doc: Document, _reveal: bool, _now: float) -> dict[str, Row]:
    """One row per network the container is attached to, with its address and aliases there."""
    networks = (doc.get("NetworkSettings") or {}).get("Networks") or {}
    rows: dict[str, Row] = {}
    for name, network in networks.items():
        address = str(network.get("IPAddress") or "")
        if address and network.get("IPPrefixLen"):
            address += f"/{network['IPPrefixLen']}"
        rows[name] = Row(
            {
                "network": name,
                "address": address,
                "gateway": str(network.get("Gateway") or ""),
                "aliases": ", ".join(network.get("Aliases") or []),
                "mac": str(network.get("MacAddress") or ""),
            }
        )
    return rows


def network_note(doc: Document, _reveal: bool) -> str:
    """The network mode, when the container uses none of its own (host, none, another's)."""
    mode = str(_host_config(doc).get("NetworkMode") or "")
    if mode in ("host", "none") or mode.startswith("container:"):
        return f"Network mode: {mode}."
    return ""


# Health --------------------------------------------------------------------------------------

HEALTH_COLUMNS: Sequence[Column] = (
    Column("started", "CHECKED AT", sort_by="seconds"),
    Column("exit", "EXIT", width=4, justify="right"),
    Column("took", "TOOK", width=7, justify="right"),
    Column("output", "OUTPUT"),
)


def health_rows(doc: Document, _reveal: bool, now: float) -> dict[str, Row]:
    """The last checks the engine kept (up to five): when, exit code, output (the tab sorts them
    newest first)."""
    log = (_state(doc).get("Health") or {}).get("Log") or []
    rows: dict[str, Row] = {}
    for check in log:
        start, end = epoch_seconds(check.get("Start")), epoch_seconds(check.get("End"))
        code = check.get("ExitCode")
        output = " ⏎ ".join(line for line in str(check.get("Output") or "").splitlines() if line.strip())
        rows[str(check.get("Start"))] = Row(
            {
                "started": when(check.get("Start"), now),
                "exit": Text(str(code), style="" if code == 0 else "bold red"),
                "took": f"{end - start:.2f}s" if start and end >= start else "",
                "output": output,
                "seconds": start,
            }
        )
    return rows


def health_note(doc: Document, _reveal: bool) -> str:
    """The healthcheck: its test and how often it runs."""
    check = _config(doc).get("Healthcheck") or {}
    test = [str(part) for part in check.get("Test") or []]
    if not test or test == ["NONE"]:
        return "No healthcheck."
    command = test[1] if test[0] == "CMD-SHELL" and len(test) > 1 else shlex.join(test[1:])
    every = f", every {written_duration(check['Interval'] / 1e9)}" if check.get("Interval") else ""
    status = (_state(doc).get("Health") or {}).get("Status", "")
    return f"Check: {command}{every}. Now {status}." if status else f"Check: {command}{every}."


# Resources -----------------------------------------------------------------------------------


def restart_policy(doc: Document) -> RestartPolicy:
    """The container's restart policy."""
    policy = _host_config(doc).get("RestartPolicy") or {}
    return RestartPolicy(str(policy.get("Name") or "no"), int(policy.get("MaximumRetryCount") or 0))


def nano_cpus(doc: Document) -> int:
    """The CPU limit in billionths of a CPU (from a CFS quota when set that way), 0 for none."""
    host = _host_config(doc)
    if nano := host.get("NanoCpus"):
        return int(nano)
    quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 100_000
    return quota * 10**9 // period if quota > 0 else 0


def limit_texts(doc: Document) -> dict[str, str]:
    """The limits `docker update` changes, as the edit form writes them ("" for none)."""
    host = _host_config(doc)

    def size(key: str) -> str:
        value = host.get(key) or 0
        return written_size(value) if value > 0 else ""  # MemorySwap -1: unlimited swap

    return {
        "restart": written_restart_policy(restart_policy(doc)),
        "memory": size("Memory"),
        "memory_swap": size("MemorySwap"),
        "memory_reservation": size("MemoryReservation"),
        "cpus": written_cpus(nano) if (nano := nano_cpus(doc)) else "",
        "pids": str(host["PidsLimit"]) if (host.get("PidsLimit") or 0) > 0 else "",
    }


LIMIT_LABELS = {
    "restart": "Restart policy",
    "memory": "Memory",
    "memory_swap": "Memory + swap",
    "memory_reservation": "Memory reservation",
    "cpus": "CPUs",
    "pids": "Pids limit",
}
"""How each limit `docker update` changes is called, on the tab and in the edit form."""


def resource_rows(doc: Document, _reveal: bool, _now: float) -> dict[str, Row]:
    """The restart policy and each limit ("unlimited" for none), then the other CPU settings."""
    host = _host_config(doc)
    limits = limit_texts(doc)
    pairs: list[tuple[str, str | Text]] = [
        (LIMIT_LABELS[key], value or Text("unlimited", style="dim")) for key, value in limits.items()
    ]
    if host.get("MemorySwap") == -1:
        pairs[2] = (LIMIT_LABELS["memory_swap"], Text("unlimited swap", style="dim"))
    if shares := host.get("CpuShares"):
        pairs.append(("CPU shares", str(shares)))
    if cpuset := host.get("CpusetCpus"):
        pairs.append(("On CPUs", str(cpuset)))
    return _fields(pairs)


TABS: tuple[DetailTab, ...] = (
    DetailTab("summary", "Summary", FIELD_COLUMNS, summary_rows),
    DetailTab("env", "Env", PAIR_COLUMNS, env_rows, env_note, empty="No environment variables."),
    DetailTab("labels", "Labels", PAIR_COLUMNS, label_rows, empty="No labels."),
    DetailTab("mounts", "Mounts", MOUNT_COLUMNS, mount_rows, empty="No mounts."),
    DetailTab("ports", "Ports", PORT_COLUMNS, port_rows, empty="No ports exposed or published."),
    DetailTab("networks", "Networks", NETWORK_COLUMNS, network_rows, network_note, empty="No networks."),
    DetailTab(
        "health",
        "Health",
        HEALTH_COLUMNS,
        health_rows,
        health_note,
        empty="No checks yet.",
        sort_reverse=True,
    ),
    DetailTab(
        "resources",
        "Resources",
        FIELD_COLUMNS,
        resource_rows,
        lambda _doc, _reveal: "What docker update changes while the container runs.",
    ),
)
"""The tabs of tables, in order; the raw document is the tab after them."""
RAW_TAB = "raw"
"""The id of the last tab: the whole document, searchable."""
