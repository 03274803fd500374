"""A task as the pool, its history and the pane see it (`TaskRecord`), and its JSON form on disk."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from backends.streams import LogLine
from backends.wasm.spec import Limits, Preopen, TaskResult, TaskSpec

STATES = ("queued", "running", "done", "failed", "cancelled")
"""Every state a task goes through, as `TaskRecord.state`."""

FINISHED = frozenset(("done", "failed", "cancelled"))


def new_task_id() -> str:
    """A fresh task id (8 hex digits), as the pool and `berth wasm run` give their tasks."""
    return secrets.token_hex(4)


def output_lines(stdout: str, stderr: str) -> list[LogLine]:
    """A finished task's output as two blocks (stdout's lines, then stderr's): for a task whose
    output was not kept line by line as it came (a broker's, one run by `berth wasm run`)."""
    lines = [LogLine(text, "stdout") for text in stdout.splitlines()]
    return lines + [LogLine(text, "stderr") for text in stderr.splitlines()]


def module_label(spec: TaskSpec) -> str:
    """What the task runs, as people read it: the image, the file name, or a short module hash."""
    if spec.image:
        return spec.image if not spec.host or spec.host == "local" else f"{spec.image}@{spec.host}"
    if isinstance(spec.module, bytes | bytearray):
        return f"<{len(spec.module)} bytes>"
    if spec.module.startswith("sha256:"):
        return spec.module[:19]
    return PurePath(spec.module).name or spec.module


def ended_state(kind: str, exit_code: int | None) -> str:
    """The state a task ends in, from how it ended (`kind`, see RESULT_KINDS): the one definition
    of done, failed and cancelled that the pool, the broker, every screen and figure use.

    "done": the module ran to its end and exited 0. "cancelled": someone cancelled it, before or
    while it ran. "failed": any other end: a non-zero exit code, a trap, out of fuel, memory or
    time, an invalid module, or berth gave up running it.
    """
    if kind == "cancelled":
        return "cancelled"
    return "done" if kind == "exit" and exit_code == 0 else "failed"


def state_for(result: TaskResult) -> str:
    """The state a result puts its task in (see `ended_state`)."""
    return ended_state(result.kind, result.exit_code)


def describe(result: TaskResult) -> str:
    """One sentence for the end of a task's output: its own message, or what its kind means."""
    if result.message:
        return result.message
    if result.kind == "exit":
        return f"exited with code {result.exit_code}"
    return result.kind.replace("_", " ")


@dataclass
class TaskRecord:
    """One task, queued, running or finished: what it runs, where it is, how it ended."""

    id: str
    name: str
    spec: TaskSpec
    state: str
    result: TaskResult | None
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    dropped: bool = False  # set when the task was removed from the pool and its history

    @property
    def exit_code(self) -> int | None:
        """The module's exit code, once it exited."""
        return self.result.exit_code if self.result is not None else None

    @property
    def duration_ms(self) -> float | None:
        """How long it ran (the runtime's own figure), once it ended."""
        return self.result.duration_ms if self.result is not None else None

    @property
    def fuel_used(self) -> int | None:
        """Fuel it burnt, when it ran with a fuel limit."""
        return self.result.fuel_used if self.result is not None else None

    @property
    def finished(self) -> bool:
        """True once it is done, failed or cancelled."""
        return self.state in FINISHED

    def to_json(self) -> dict[str, Any]:
        """The task as plain JSON values (what `berth wasm tasks --json` prints)."""
        result = self.result
        return {
            "id": self.id,
            "name": self.name,
            "module": module_label(self.spec),
            "state": self.state,
            "kind": result.kind if result is not None else None,
            "exit_code": self.exit_code,
            "duration_ms": round(result.duration_ms, 3) if result is not None else None,
            "fuel_used": self.fuel_used,
            "message": describe(result) if result is not None else "",
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }


def spec_to_json(spec: TaskSpec) -> dict[str, Any]:
    """A spec as JSON values; a module given as bytes is kept as base64 (history stores it whole)."""
    module: Any = spec.module
    if isinstance(module, bytes | bytearray):
        module = {"base64": base64.b64encode(module).decode("ascii")}
    limits = spec.limits
    return {
        "module": module,
        "args": list(spec.args),
        "env": [list(pair) for pair in spec.env],
        "stdin": base64.b64encode(spec.stdin).decode("ascii"),
        "dirs": [[d.host, d.guest, d.writable] for d in spec.dirs],
        "limits": {
            "fuel": limits.fuel,
            "memory": limits.memory,
            "timeout": limits.timeout,
            "max_output": limits.max_output,
        },
        "image": spec.image,
        "host": spec.host,
        "name": spec.name,
    }


def spec_from_json(data: dict[str, Any]) -> TaskSpec:
    """The spec `spec_to_json` wrote."""
    module = data.get("module", b"")
    if isinstance(module, dict):
        module = base64.b64decode(module.get("base64", ""))
    limits = data.get("limits") or {}
    return TaskSpec(
        module=module,
        args=tuple(data.get("args") or ()),
        env=tuple((str(k), str(v)) for k, v in data.get("env") or ()),
        stdin=base64.b64decode(data.get("stdin") or ""),
        dirs=tuple(Preopen(str(h), str(g), bool(w)) for h, g, w in data.get("dirs") or ()),
        limits=Limits(
            fuel=limits.get("fuel"),
            memory=limits.get("memory"),
            timeout=limits.get("timeout"),
            max_output=limits.get("max_output"),
        ),
        image=data.get("image"),
        host=data.get("host"),
        name=data.get("name") or "",
    )


def result_from_json(data: dict[str, Any]) -> TaskResult:
    """The result `TaskResult.to_json` wrote."""
    return TaskResult(
        kind=str(data.get("kind", "trap")),
        exit_code=data.get("exit_code"),
        message=str(data.get("message", "")),
        duration_ms=float(data.get("duration_ms") or 0.0),
        fuel_used=data.get("fuel_used"),
        stdout_bytes=int(data.get("stdout_bytes") or 0),
        stderr_bytes=int(data.get("stderr_bytes") or 0),
    )
