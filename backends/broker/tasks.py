"""What clients ask the broker to run (`TaskRequest`) and what they get back (`TaskView`)."""

from __future__ import annotations

from typing import Any

import msgspec

from backends.broker.protocol import Limits
from backends.wasm.record import TaskRecord, state_for
from backends.wasm.spec import Limits as RunLimits
from backends.wasm.spec import TaskResult, TaskSpec

STATES = ("queued", "running", "done", "failed", "cancelled")
"""A task's states: "running" from the moment it is handed to a provider (in flight); a finished
one is `done` (exited 0), `failed` (any other end: see `kind`, None when berth could not run it)
or `cancelled`, as `backends.wasm.record.ended_state` defines them."""
FINISHED = frozenset(("done", "failed", "cancelled"))


class TaskRequest(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """One task as a client submits it (`POST /api/v1/tasks`, one object or a list).

    `module` is a ref from `POST /api/v1/modules`; `stdin` is base64 in JSON; `stream` asks the
    provider to send output live instead of only with the result. `files` (name -> base64) are put
    in a fresh writable folder the module sees as `/`; `datafile` names one to send back.
    """

    module: str
    args: list[str] = []
    env: dict[str, str] = {}
    stdin: bytes = b""
    limits: Limits = Limits()
    name: str = ""
    stream: bool = False
    files: dict[str, bytes] = {}
    datafile: str = ""


class TaskView(msgspec.Struct, omit_defaults=False):
    """A task as the API shows it: its request, state and, when finished, how it ended."""

    id: str
    state: str
    module: str
    name: str
    client: str
    created: float
    attempts: int = 0
    provider: str | None = None
    started: float | None = None
    finished: float | None = None
    kind: str | None = None
    exit_code: int | None = None
    message: str = ""
    duration_ms: float | None = None
    fuel_used: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    datafile: bytes | None = None
    seq: int = 0
    deadline: float | None = None
    """While it runs: when (unix time) the broker gives up on the provider running it."""

    def to_json(self, output: bool = True) -> dict[str, Any]:
        """The task as JSON values, output decoded as UTF-8 text (invalid bytes replaced); without
        `output`, no stdout, stderr nor datafile at all (how lists show tasks)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        if not output:
            for key in ("stdout", "stderr", "datafile"):
                del data[key]
            return data
        data["stdout"] = self.stdout.decode("utf-8", "replace")
        data["stderr"] = self.stderr.decode("utf-8", "replace")
        if self.datafile is None:
            del data["datafile"]
        return data


def as_record(view: dict[str, Any], request: TaskRequest) -> TaskRecord:
    """A task of the broker (its API view and what was asked) as the console's task record."""
    result = None
    state = str(view.get("state", "queued"))
    if state in FINISHED:
        result = TaskResult(
            str(view.get("kind") or state),
            view.get("exit_code"),
            str(view.get("message") or ""),
            float(view.get("duration_ms") or 0.0),
            view.get("fuel_used"),
        )
        state = state_for(result) if state == "done" else state
    limits = request.limits
    return TaskRecord(
        id=str(view["id"]),
        name=request.name or request.module,
        spec=TaskSpec(
            module=request.module,
            args=tuple(request.args),
            env=tuple(request.env.items()),
            limits=RunLimits(limits.fuel, limits.memory, limits.timeout),
            name=request.name,
        ),
        state=state,
        result=result,
        created_at=float(view.get("created") or 0.0),
        started_at=view.get("started"),
        ended_at=view.get("finished"),
    )
