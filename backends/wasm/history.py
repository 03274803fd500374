"""Finished wasm tasks kept on disk (SQLite), so the Wasm tasks pane shows them after a restart.

All SQLite work runs on one dedicated thread that owns the connection, never on the event loop;
writes come in batches (the pool hands over every task that ended since the last write), because
a commit per task would cap the pool at a few hundred tasks a second on a slow disk.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from backends import paths
from backends.errors import BerthError, NotFound
from backends.streams import LogLine
from backends.wasm.record import TaskRecord, result_from_json, spec_from_json, spec_to_json

T = TypeVar("T")

KEEP_TASKS = 10_000
"""How many finished tasks history keeps; older ones are pruned as new ones arrive."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    module TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    output TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at);
"""


def default_history_path() -> Path:
    """Where the task history lives: `tasks.sqlite` in berth's data folder."""
    return paths.data_dir() / "tasks.sqlite"


class TaskHistory:
    """Finished tasks in one SQLite file: add (in batches), list newest first, get, output, delete."""

    def __init__(self, path: Path | None = None, keep: int = KEEP_TASKS) -> None:
        self.path = path if path is not None else default_history_path()
        self.keep = keep
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="berth-task-history")

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._with_db, fn)

    def _with_db(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._db is None:
                paths.private_dir(self.path.parent)  # output and env of every task: 0700 and 0600
                db = sqlite3.connect(paths.private_sqlite(self.path), check_same_thread=False)
                # WAL: readers (another berth) never block the pool's writes, and commits are cheap.
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
                self._db = db
            with self._db:
                return fn(self._db)
        except sqlite3.Error as exc:
            raise BerthError(
                f"The task history at {self.path} could not be used: {exc}.",
                "Check that the folder is writable and the disk not full; remove the file to start afresh.",
            ) from exc

    async def add(self, records: Iterable[tuple[TaskRecord, Sequence[LogLine]]]) -> None:
        """Record finished tasks with the tail of their output (replacing any with the same id)."""
        rows = [_row(record, lines) for record, lines in records]
        if not rows:
            return

        def write(db: sqlite3.Connection) -> None:
            db.executemany("INSERT OR REPLACE INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            db.execute(
                "DELETE FROM tasks WHERE id IN "
                "(SELECT id FROM tasks ORDER BY created_at DESC LIMIT -1 OFFSET ?)",
                (self.keep,),
            )

        await self._call(write)

    async def list(self) -> builtins.list[TaskRecord]:
        """Every recorded task, newest first (without output)."""

        def read(db: sqlite3.Connection) -> builtins.list[TaskRecord]:
            cursor = db.execute(
                "SELECT id, name, spec, state, result, created_at, started_at, ended_at FROM tasks "
                "ORDER BY created_at DESC"
            )
            return [_record(row) for row in cursor]

        return await self._call(read)

    async def get(self, task_id: str) -> TaskRecord:
        """One recorded task; NotFound when history has none by that id."""

        def read(db: sqlite3.Connection) -> tuple[Any, ...] | None:
            cursor = db.execute(
                "SELECT id, name, spec, state, result, created_at, started_at, ended_at FROM tasks "
                "WHERE id = ?",
                (task_id,),
            )
            row: tuple[Any, ...] | None = cursor.fetchone()
            return row

        row = await self._call(read)
        if row is None:
            raise _not_found(task_id)
        return _record(row)

    async def output(self, task_id: str) -> builtins.list[LogLine]:
        """The tail of output kept for a task (empty when it had none)."""

        def read(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT output FROM tasks WHERE id = ?", (task_id,)).fetchone()
            return None if row is None else str(row[0])

        raw = await self._call(read)
        if raw is None:
            raise _not_found(task_id)
        return [LogLine(text, stream) for stream, text in json.loads(raw)]

    async def delete(self, task_id: str) -> None:
        """Forget a task; NotFound when history has none by that id."""

        def remove(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM tasks WHERE id = ?", (task_id,)).rowcount

        if not await self._call(remove):
            raise _not_found(task_id)

    async def close(self) -> None:
        """Close the database and stop its thread."""

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._thread, shut)
        self._thread.shutdown(wait=True)


def _not_found(task_id: str) -> NotFound:
    return NotFound(f"No task {task_id} in the task history.", "List tasks with `berth wasm tasks`.")


def _row(record: TaskRecord, lines: Sequence[LogLine]) -> tuple[Any, ...]:
    return (
        record.id,
        record.name,
        record.to_json()["module"],
        json.dumps(spec_to_json(record.spec)),
        record.state,
        json.dumps(record.result.to_json()) if record.result is not None else None,
        record.created_at,
        record.started_at,
        record.ended_at,
        json.dumps([[line.stream, line.text] for line in lines]),
    )


def _record(row: tuple[Any, ...]) -> TaskRecord:
    task_id, name, spec, state, result, created_at, started_at, ended_at = row
    return TaskRecord(
        id=task_id,
        name=name,
        spec=spec_from_json(json.loads(spec)),
        state=state,
        result=result_from_json(json.loads(result)) if result else None,
        created_at=created_at,
        started_at=started_at,
        ended_at=ended_at,
    )
