"""The local pool's verbs as a person asks for them (run, re-run, cancel, drop), each written to the
audit log once, under host "local".

Recorded here, per verb, not in the pool: the pool runs thousands of tasks a second, and a file
append per task would cost it about a tenth of that.
"""

from __future__ import annotations

from collections.abc import Sequence

from backends.audit import audited
from backends.wasm.pool import TaskPool
from backends.wasm.record import TaskRecord
from backends.wasm.spec import TaskSpec

HOST = "local"
"""The host the audit log names for the local pool's tasks."""


class TaskVerbs:
    """The verbs over `pool` that change something; the pool's reads (tasks, output) stay on it."""

    def __init__(self, pool: TaskPool) -> None:
        self.pool = pool

    async def run(self, spec: TaskSpec) -> TaskRecord:
        """Queue a new task; recorded as wasm.run with its limits (never its arguments or
        environment: they may hold secrets)."""
        limits = {"fuel": spec.limits.fuel, "memory": spec.limits.memory, "timeout": spec.limits.timeout}
        with audited(HOST, "wasm.run", [spec.name or str(spec.image or "")], **limits):
            return await self.pool.submit(spec)

    async def rerun(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        """Run earlier tasks again with the same spec, as new tasks; one wasm.rerun record."""
        with audited(HOST, "wasm.rerun", list(task_ids)):
            return [await self.pool.rerun(task_id) for task_id in task_ids]

    async def cancel(self, task_ids: Sequence[str]) -> None:
        """Cancel queued or running tasks, waiting for each to end; one wasm.cancel record."""
        with audited(HOST, "wasm.cancel", list(task_ids)):
            for task_id in task_ids:
                await self.pool.cancel(task_id)

    async def drop(self, task_ids: Sequence[str]) -> None:
        """Remove finished tasks from the list and the history; one wasm.drop record."""
        with audited(HOST, "wasm.drop", list(task_ids)):
            for task_id in task_ids:
                await self.pool.drop(task_id)
