"""Long operations as jobs: an image move, a backup or import, compose up, a batch sent to the
broker. Each runs in the background with its progress; `:jobs` lists them, any can be cancelled,
and quitting while one runs asks first.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from textual.app import App
from textual.worker import Worker

from backends.errors import BerthError
from tui.error_log import log_unexpected

STATES = ("running", "done", "failed", "cancelled")
KEEP_FINISHED = 50
"""Finished jobs kept in the list (the oldest go first)."""


@dataclass(eq=False)
class Job:
    """One long operation: what and where, how far it got, and how it ended."""

    id: int
    title: str
    host: str
    started: float = field(default_factory=time.time)
    state: str = "running"
    done: float = 0.0
    total: float | None = None
    unit: str = ""
    detail: str = ""
    parts: list[str] = field(default_factory=list)
    """How each part of it goes, a line each (a pull's layers), for `:jobs` to show."""
    ended: float | None = None
    outcome: str = ""
    """What the work found, said when the job ends well in place of its fixed `done` text
    (an update's old id → new id)."""
    worker: Worker[None] | None = None
    _changed: Callable[[Job], None] = field(default=lambda job: None, repr=False)

    @property
    def fraction(self) -> float | None:
        """How far it is, 0 to 1, when its total is known."""
        return min(1.0, self.done / self.total) if self.total else None

    def progress(
        self,
        done: float,
        total: float | None = None,
        detail: str | None = None,
        parts: Sequence[str] | None = None,
    ) -> None:
        """Report progress: `done` of `total` units (None: not known), what it is doing now, and
        (when it has parts) how each part goes."""
        self.done = done
        if total is not None:
            self.total = total
        if detail is not None:
            self.detail = detail
        if parts is not None:
            self.parts = list(parts)
        self._changed(self)


Work = Callable[[Job], Awaitable[object]]


class Jobs:
    """The app's jobs, newest last; listeners hear of every change (on the event loop)."""

    def __init__(self, app: App[Any]) -> None:
        self.app = app
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[Job], None]] = []

    def start(self, title: str, host: str, work: Work, *, unit: str = "", done: str = "") -> Job:
        """Run `work(job)` as a job; `done` is said when it ends well, a failure is one
        notification naming the job."""
        job = Job(next(self._ids), title, host, unit=unit, _changed=self._notify)
        self.jobs[job.id] = job

        async def run() -> None:
            try:
                await work(job)
            except asyncio.CancelledError:
                self._end(job, "cancelled", "cancelled")
                raise
            except BerthError as exc:
                self._end(job, "failed", str(exc))
                self.app.notify(str(exc), title=f"{title} failed", severity="error", timeout=10)
            except Exception as exc:  # a job must never take the console down
                message = log_unexpected(exc)
                self._end(job, "failed", message)
                self.app.notify(message, title=f"{title} failed", severity="error", timeout=10)
            else:
                self._end(job, "done", job.detail)
                self.app.notify(job.outcome or done or f"{title}: done.", timeout=8 if job.outcome else 4)

        job.worker = self.app.run_worker(run(), group="jobs", exit_on_error=False)
        self._notify(job)
        return job

    def cancel(self, job_id: int) -> None:
        """Stop a running job (its operation is cancelled where it waits)."""
        job = self.jobs.get(job_id)
        if job is not None and job.state == "running" and job.worker is not None:
            job.worker.cancel()
            self._end(job, "cancelled", "cancelled")

    def running(self) -> list[Job]:
        """The jobs not finished yet."""
        return [j for j in self.jobs.values() if j.state == "running"]

    def subscribe(self, listener: Callable[[Job], None]) -> Callable[[], None]:
        """Call `listener(job)` at every change; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _end(self, job: Job, state: str, detail: str) -> None:
        if job.state != "running":
            return
        job.state, job.detail, job.ended = state, detail, time.time()
        finished = [j for j in self.jobs.values() if j.state != "running"]
        for old in finished[:-KEEP_FINISHED]:
            del self.jobs[old.id]
        self._notify(job)

    def _notify(self, job: Job) -> None:
        for listener in list(self._listeners):
            listener(job)


def progress_bar(job: Job, width: int = 12) -> str:
    """`███████░░░░░ 58%` when the total is known, else how much is done so far."""
    fraction = job.fraction
    if fraction is None:
        return f"{job.done:,.0f} {job.unit}".strip() if job.done else ("…" if job.state == "running" else "")
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled) + f" {fraction:4.0%}"
