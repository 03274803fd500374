"""What a wasm task is asked to do (`TaskSpec`) and how it ended (`TaskResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RESULT_KINDS = (
    "exit",  # the module ended (returned from _start, or called proc_exit): see exit_code
    "trap",  # a wasm trap other than the ones below (unreachable, bad memory access…)
    "out_of_fuel",
    "out_of_memory",  # memory.grow refused by the limit and the program gave up, or a trap from it
    "timeout",  # wall time ran out (epoch interruption)
    "output_limit",  # stdout+stderr went past max_output
    "invalid_module",  # not wasm, or failed validation
    "missing_import",  # imports something other than WASI preview 1
    "cancelled",
    "error",  # berth could not prepare, run or report the task (a provider's own failure, in the message)
)
"""Every way a task can end, as `TaskResult.kind`."""


@dataclass(frozen=True)
class Limits:
    """What a task may use: fuel (instructions, roughly), memory bytes, wall seconds, output bytes."""

    fuel: int | None = None
    memory: int | None = None
    timeout: float | None = None
    max_output: int | None = 16 * 1024 * 1024


@dataclass(frozen=True)
class Preopen:
    """A host directory the module sees at `guest` (read-only unless `writable`)."""

    host: str
    guest: str
    writable: bool = False


@dataclass(frozen=True)
class TaskSpec:
    """A task: which module, its argv (after argv[0]), env, stdin and sandbox, under `limits`.

    `module` is a file path, a stored module's `sha256:<hex>`, or raw bytes; `image` (with `host`)
    names a `wasi/wasm` OCI image on that host's Docker instead, whose entrypoint is the module.
    `name` is how the task is shown (defaults to the module's file name or image).
    """

    module: str | bytes = b""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    stdin: bytes = b""
    dirs: tuple[Preopen, ...] = ()
    limits: Limits = field(default_factory=Limits)
    image: str | None = None
    host: str | None = None
    name: str = ""


@dataclass(frozen=True)
class TaskResult:
    """How a task ended: `kind` (one of RESULT_KINDS), the exit code for "exit", and a message.

    `stdout`/`stderr` hold the output only when the runner was given nowhere to stream it.
    """

    kind: str
    exit_code: int | None = None
    message: str = ""
    duration_ms: float = 0.0
    fuel_used: int | None = None
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdout: bytes = field(default=b"", repr=False)
    stderr: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        """True for a module that exited with 0."""
        return self.kind == "exit" and self.exit_code == 0

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON values."""
        return {
            "kind": self.kind,
            "exit_code": self.exit_code,
            "message": self.message,
            "duration_ms": round(self.duration_ms, 3),
            "fuel_used": self.fuel_used,
            "stdout_bytes": self.stdout_bytes,
            "stderr_bytes": self.stderr_bytes,
        }
