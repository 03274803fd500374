"""The broker's state on disk: modules (content-addressed files), tasks with their results, and
the providers it knows (paired or waiting), in one SQLite database in WAL mode.

A task row is written (and committed) before its id is given to the client, and its result is
written with `state NOT IN (finished states)` in the WHERE clause, so a result is recorded at
most once even when a re-queued task finishes twice. A result that cannot be kept (a number out
of range) fails its own task, and the others of its batch are kept. The files tasks bring are
kept once per content (however many tasks list them) while an open task has them; a finished
task is kept for a while, then purged (`purge`). Lists read neither files nor output (`page`).
Commits don't wait for fsync (`synchronous=NORMAL`): a killed broker loses nothing committed;
only a power cut could lose the last moments, and those tasks then run again.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from backends import paths
from backends.broker.protocol import Outcome
from backends.broker.tasks import TaskRequest, TaskView
from backends.wasm.blobs import blob_path, put_blob

_SCHEMA = """
CREATE TABLE IF NOT EXISTS modules (
    ref TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS modules_name ON modules(name);
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, client TEXT NOT NULL,
    batch TEXT NOT NULL, request BLOB NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,
    provider TEXT, created REAL NOT NULL, finished REAL, result BLOB, done_seq INTEGER,
    module TEXT, name TEXT, head BLOB);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks(state) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS tasks_batch ON tasks(batch, done_seq);
CREATE TABLE IF NOT EXISTS files (ref TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS task_files (task TEXT NOT NULL, name TEXT NOT NULL, ref TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS task_files_task ON task_files(task);
CREATE INDEX IF NOT EXISTS task_files_ref ON task_files(ref);
CREATE TABLE IF NOT EXISTS providers (
    fingerprint TEXT PRIMARY KEY, key BLOB NOT NULL, name TEXT NOT NULL, paired INTEGER NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, host TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '', workers INTEGER NOT NULL DEFAULT 0);
"""

_LATER_COLUMNS = (("module", "TEXT"), ("name", "TEXT"), ("head", "BLOB"))
"""Columns of `tasks` added after its first version (a database from then gets them on opening)."""
_LATER_INDEXES = """
CREATE INDEX IF NOT EXISTS tasks_done ON tasks(done_seq) WHERE done_seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_finished ON tasks(finished) WHERE finished IS NOT NULL;
"""
PURGE_BATCH = 2000
"""Most finished tasks one `purge` call forgets."""
_TASK_ID = re.compile(r"t-[0-9a-f]{16}")


class _Head(msgspec.Struct):
    """How a task ended without its output: what a list shows (read from `head`, or from an
    older row's result without decoding its output)."""

    kind: str | None = None
    exit_code: int | None = None
    message: str = ""
    duration_ms: float | None = None
    fuel_used: int | None = None


class _RequestHead(msgspec.Struct):
    """A request's module and name, read from an older row's request without its payload."""

    module: str = ""
    name: str = ""


_request_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(TaskRequest)
_outcome_decoder = msgspec.msgpack.Decoder(Outcome)
_head_decoder = msgspec.msgpack.Decoder(_Head)
_request_head_decoder = msgspec.msgpack.Decoder(_RequestHead)


@dataclass
class StoredTask:
    """A task as the database holds it (what the broker reloads after a restart)."""

    id: str
    client: str
    batch: str
    request: TaskRequest
    state: str
    attempts: int
    created: float
    seq: int
    files: dict[str, str]
    """The refs of its files (name -> ref; none for a task stored with its files inline)."""


@dataclass
class ProviderRow:
    """A provider key the broker has seen: paired (admitted) or pending (waiting for an admin)."""

    fingerprint: str
    key: bytes
    name: str
    paired: bool
    first_seen: float
    last_seen: float
    host: str
    version: str
    workers: int


class BrokerStore:
    """The database and module folder under `root` (created if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules_dir = root / "modules"
        paths.private_dir(self.modules_dir)  # tasks' env, files and results: 0700 and 0600
        paths.private_dir(root)
        database = paths.private_sqlite(root / "broker.sqlite")
        self.db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(tasks)")}
        for column, kind in _LATER_COLUMNS:
            if column not in columns:
                self.db.execute(f"ALTER TABLE tasks ADD COLUMN {column} {kind}")
        self.db.executescript(_LATER_INDEXES)
        row = self.db.execute("SELECT COALESCE(MAX(done_seq), 0) FROM tasks").fetchone()
        self.done_seq: int = row[0]

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction around the block, committed at its end (rolled back on an error).

        The connection is in autocommit mode, where `with db:` begins no transaction: every row of
        an `executemany` was then a commit of its own (~170 us a row here against ~13 us)."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # Modules ----------------------------------------------------------------------------------

    def put_module(self, data: bytes, name: str = "") -> str:
        """Keep a module (once per content) and return its ref; `name` points at the latest one."""
        ref = put_blob(self.modules_dir, data)
        self.db.execute(
            "INSERT INTO modules(ref, name, size, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(ref) DO UPDATE SET name = CASE WHEN excluded.name != '' THEN excluded.name "
            "ELSE modules.name END, created = excluded.created",
            (ref, name, len(data), time.time()),
        )
        return ref

    def module_path(self, ref: str) -> Path:
        """Where a module's bytes are kept."""
        return blob_path(self.modules_dir, ref)

    def has_module(self, ref: str) -> bool:
        """True when the module is stored."""
        return self.module_path(ref).is_file()

    def module_bytes(self, ref: str) -> bytes:
        """A stored module's bytes."""
        return self.module_path(ref).read_bytes()

    def module_named(self, name: str) -> str | None:
        """The ref last uploaded under `name`, if any."""
        row = self.db.execute(
            "SELECT ref FROM modules WHERE name = ? ORDER BY created DESC LIMIT 1", (name,)
        ).fetchone()
        return row[0] if row else None

    # Tasks ------------------------------------------------------------------------------------

    def add_tasks(
        self,
        rows: Iterable[tuple[str, str, str, TaskRequest, float, dict[str, str]]],
        blobs: dict[str, bytes],
    ) -> None:
        """Record new queued tasks `(id, client, batch, request, created, files)` in one
        transaction; `files` maps each of the request's file names to its ref, and `blobs` holds
        the bytes of the refs not stored yet (each kept once, however many tasks list it)."""
        tasks, names = [], []
        for task_id, client, batch, request, created, files in rows:
            kept = msgspec.structs.replace(request, files={}) if files else request
            encoded = _request_encoder.encode(kept)
            tasks.append((task_id, client, batch, encoded, created, request.module, request.name))
            names += [(task_id, name, ref) for name, ref in files.items()]
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO files(ref, data) VALUES (?, ?)", blobs.items())
            self.db.executemany("INSERT INTO task_files(task, name, ref) VALUES (?, ?, ?)", names)
            self.db.executemany(
                "INSERT INTO tasks(id, client, batch, request, state, attempts, created, module, name) "
                "VALUES (?, ?, ?, ?, 'queued', 0, ?, ?, ?)",
                tasks,
            )

    def open_tasks(self) -> list[StoredTask]:
        """Every task not finished, oldest first: what a restarted broker queues again (with its
        files; bytes several tasks share are read once)."""
        rows = self.db.execute(
            "SELECT id, client, batch, request, state, attempts, created, seq FROM tasks "
            "WHERE state IN ('queued', 'running') ORDER BY seq"
        ).fetchall()
        files: dict[str, dict[str, str]] = {}
        for task_id, name, ref in self.db.execute(
            "SELECT f.task, f.name, f.ref FROM task_files f JOIN tasks t ON t.id = f.task "
            "WHERE t.state IN ('queued', 'running')"
        ):
            files.setdefault(task_id, {})[name] = ref
        data = {ref: self._file(ref) for refs in files.values() for ref in set(refs.values())}
        stored = []
        for r in rows:
            request = _request_decoder.decode(r[3])
            refs = files.get(r[0], {})
            if refs:
                request.files = {name: data[ref] for name, ref in refs.items()}
            stored.append(StoredTask(r[0], r[1], r[2], request, r[4], r[5], r[6], r[7], refs))
        return stored

    def _file(self, ref: str) -> bytes:
        row = self.db.execute("SELECT data FROM files WHERE ref = ?", (ref,)).fetchone()
        return bytes(row[0]) if row else b""

    def finish(
        self, rows: Iterable[tuple[str, str, str | None, Outcome | None, float, int]]
    ) -> list[tuple[str, Outcome | None]]:
        """Record results `(id, state, provider, outcome, finished, attempts)` in one transaction
        (a task already finished keeps its first result); each gets the next finish number, in
        the order given, and the files only open tasks need are let go.

        Returns the (state, outcome) kept for each row: the one given, or for a result that cannot
        be kept (a number out of range), the "error" that now fails that task alone."""
        params, saved = [], []
        for task_id, state, provider, outcome, finished, attempts in rows:
            self.done_seq += 1
            try:
                blobs = _result_blobs(outcome)
            except (OverflowError, ValueError, TypeError, msgspec.EncodeError) as exc:
                state, outcome = "failed", _unkept(task_id, attempts, exc)
                blobs = _result_blobs(outcome)
            saved.append((state, outcome))
            params.append((state, provider, *blobs, finished, self.done_seq, attempts, task_id))
        update = (
            "UPDATE tasks SET state = ?, provider = COALESCE(?, provider), result = ?, head = ?, "
            "finished = ?, done_seq = ?, attempts = ? WHERE id = ? AND state IN ('queued', 'running')"
        )
        with self.transaction():
            try:
                self.db.executemany(update, params)
            except (sqlite3.Error, OverflowError, ValueError):
                # A row the database refuses: the rows are written one by one, and that one
                # fails its task (a failed statement leaves the transaction as it was).
                for i, row in enumerate(params):
                    try:
                        self.db.execute(update, row)
                    except (sqlite3.Error, OverflowError, ValueError) as exc:
                        outcome = _unkept(row[-1], row[-2], exc)
                        saved[i] = ("failed", outcome)
                        self.db.execute(update, ("failed", None, *_result_blobs(outcome), *row[-4:]))
            ids = [(row[-1],) for row in params]
            let_go = self.db.executemany("DELETE FROM task_files WHERE task = ?", ids)
            if let_go.rowcount:
                self.db.execute(
                    "DELETE FROM files WHERE NOT EXISTS (SELECT 1 FROM task_files WHERE ref = files.ref)"
                )
        return saved

    def view(self, task_id: str) -> TaskView | None:
        """One task as the API shows it, or None (also for anything that is no task id)."""
        if not _TASK_ID.fullmatch(task_id):
            return None
        row = self.db.execute(f"SELECT {_VIEW_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return _view(row) if row else None

    def page(
        self, state: str | None = None, limit: int = 100, client: str | None = None, before: int | None = None
    ) -> tuple[list[TaskView], int | None]:
        """The newest tasks (of one state, of one client, older than cursor `before`, if given)
        without their output, and the cursor of the next page (None: that was the last).

        Neither files, stdin nor output is read: a list of many big tasks costs what a list of
        small ones does."""
        found = [("state = ?", state), ("client = ?", client), ("seq < ?", before)]
        where = " AND ".join(c for c, v in found if v is not None)
        args = tuple(v for _, v in found if v is not None)
        clause = f"WHERE {where}" if where else ""
        rows = self.db.execute(
            "SELECT seq, id, state, client, module, name, attempts, provider, created, finished, done_seq, "
            "head, CASE WHEN module IS NULL THEN request END, CASE WHEN head IS NULL THEN result END "
            f"FROM tasks {clause} ORDER BY seq DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        views = [_brief(r) for r in rows]
        return views, (rows[-1][0] if len(rows) == limit else None)

    def purge(self, before: float, up_to: int) -> list[str]:
        """Forget finished tasks that finished before `before` or whose finish number is at most
        `up_to` (at most PURGE_BATCH a call); their ids."""
        with self.transaction():
            rows = self.db.execute(
                "DELETE FROM tasks WHERE seq IN (SELECT seq FROM tasks WHERE done_seq <= ? "
                "UNION SELECT seq FROM tasks WHERE finished < ? LIMIT ?) RETURNING id",
                (up_to, before, PURGE_BATCH),
            ).fetchall()
        return [r[0] for r in rows]

    def batch_results(self, batch: str, after: int, limit: int = 1000) -> list[TaskView]:
        """Finished tasks of a batch whose finish number is past `after`, in finish order."""
        rows = self.db.execute(
            f"SELECT {_VIEW_COLUMNS} FROM tasks WHERE batch = ? AND done_seq > ? ORDER BY done_seq LIMIT ?",
            (batch, after, limit),
        ).fetchall()
        return [_view(r) for r in rows]

    def batch_counts(self, batch: str) -> tuple[int, int]:
        """(tasks in the batch, finished ones)."""
        row = self.db.execute(
            "SELECT COUNT(*), COUNT(done_seq) FROM tasks WHERE batch = ?", (batch,)
        ).fetchone()
        return row[0], row[1]

    def batch_client(self, batch: str) -> str | None:
        """The client a batch belongs to (None: no such batch)."""
        row = self.db.execute("SELECT client FROM tasks WHERE batch = ? LIMIT 1", (batch,)).fetchone()
        return str(row[0]) if row else None

    def batch_ids(self, batch: str) -> list[str]:
        """The ids of a batch's tasks in submission order (none for an unknown batch)."""
        rows = self.db.execute("SELECT id FROM tasks WHERE batch = ? ORDER BY seq", (batch,)).fetchall()
        return [r[0] for r in rows]

    # Providers --------------------------------------------------------------------------------

    def provider(self, fingerprint: str) -> ProviderRow | None:
        """A known provider key."""
        row = self.db.execute(
            f"SELECT {_PROVIDER_COLUMNS} FROM providers WHERE fingerprint = ?", (fingerprint,)
        )
        found = row.fetchone()
        return _provider(found) if found else None

    def providers(self, paired: bool | None = None) -> list[ProviderRow]:
        """Known provider keys (only the paired or only the pending ones, if asked)."""
        where, args = ("WHERE paired = ?", (int(paired),)) if paired is not None else ("", ())
        rows = self.db.execute(f"SELECT {_PROVIDER_COLUMNS} FROM providers {where} ORDER BY name", args)
        return [_provider(r) for r in rows.fetchall()]

    def seen(
        self, fingerprint: str, key: bytes, name: str, host: str, version: str, workers: int
    ) -> ProviderRow:
        """Note a provider that proved its key: a new one is recorded as pending."""
        now = time.time()
        self.db.execute(
            "INSERT INTO providers(fingerprint, key, name, paired, first_seen, last_seen, host, version, "
            "workers) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?) ON CONFLICT(fingerprint) DO UPDATE SET "
            "last_seen = excluded.last_seen, host = excluded.host, version = excluded.version, "
            "workers = excluded.workers, name = CASE WHEN providers.paired THEN providers.name "
            "ELSE excluded.name END",
            (fingerprint, key, name, now, now, host, version, workers),
        )
        found = self.provider(fingerprint)
        assert found is not None
        return found

    def pair(self, fingerprint: str, name: str, key: bytes | None = None) -> bool:
        """Admit a key under `name` (a pending one, or `key` given outright); False if unknown."""
        if key is not None:
            now = time.time()
            self.db.execute(
                "INSERT INTO providers(fingerprint, key, name, paired, first_seen, last_seen) "
                "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT(fingerprint) "
                "DO UPDATE SET paired = 1, name = excluded.name",
                (fingerprint, key, name, now, now),
            )
            return True
        cursor = self.db.execute(
            "UPDATE providers SET paired = 1, name = ? WHERE fingerprint = ?", (name, fingerprint)
        )
        return cursor.rowcount > 0

    def trim_pending(self, keep: int) -> int:
        """Forget the pending keys past the `keep` last heard from; how many went."""
        return self.db.execute(
            "DELETE FROM providers WHERE paired = 0 AND fingerprint NOT IN (SELECT fingerprint FROM "
            "providers WHERE paired = 0 ORDER BY last_seen DESC LIMIT ?)",
            (keep,),
        ).rowcount

    def unpair(self, fingerprint: str) -> bool:
        """Forget a key (it must be paired again to connect); False if unknown."""
        return self.db.execute("DELETE FROM providers WHERE fingerprint = ?", (fingerprint,)).rowcount > 0


_VIEW_COLUMNS = (
    "id, state, client, CASE WHEN module IS NULL THEN request END, attempts, provider, created, finished, "
    "result, done_seq, module, name"
)
_PROVIDER_COLUMNS = "fingerprint, key, name, paired, first_seen, last_seen, host, version, workers"


def _view(row: tuple[Any, ...]) -> TaskView:
    view = _bare_view(row[0], row[1], row[2], row[3], row[10], row[11], row[4:8], row[9])
    if row[8] is not None:
        apply_outcome(view, _outcome_decoder.decode(row[8]))
    return view


def _brief(row: tuple[Any, ...]) -> TaskView:
    """A list's row (see `page`) as a view without output."""
    view = _bare_view(row[1], row[2], row[3], row[12], row[4], row[5], row[6:10], row[10])
    blob = row[11] if row[11] is not None else row[13]
    if blob is not None:
        result = _head_decoder.decode(blob)
        view.kind, view.exit_code, view.message = result.kind, result.exit_code, result.message
        view.duration_ms, view.fuel_used = result.duration_ms, result.fuel_used
    return view


def _bare_view(
    task_id: str,
    state: str,
    client: str,
    request: bytes | None,
    module: str | None,
    name: str | None,
    timing: tuple[Any, ...],
    done_seq: int | None,
) -> TaskView:
    """A task's view from its columns, before how it ended; `timing` is (attempts, provider,
    created, finished). A row from before the module and name had columns of their own reads
    them from its request."""
    if module is None:
        assert request is not None  # the query reads the request exactly when module is NULL
        head = _request_head_decoder.decode(request)
        module, name = head.module, head.name
    attempts, provider, created, finished = timing
    return TaskView(
        id=task_id,
        state=state,
        module=module,
        name=name or "",
        client=client,
        created=created,
        attempts=attempts,
        provider=provider,
        finished=finished,
        seq=done_seq or 0,
    )


def _result_blobs(outcome: Outcome | None) -> tuple[bytes | None, bytes | None]:
    """A result as stored: all of it, and its head (no output) for lists."""
    if outcome is None:
        return None, None
    head = _Head(outcome.kind, outcome.exit_code, outcome.message, outcome.duration_ms, outcome.fuel_used)
    return msgspec.msgpack.encode(outcome), msgspec.msgpack.encode(head)


def _unkept(task_id: str, attempts: int, exc: Exception) -> Outcome:
    """The result that fails a task whose own result the store could not keep."""
    why = f"the broker could not keep its result ({type(exc).__name__}: {str(exc)[:200]})"
    return Outcome(task_id, max(0, attempts), "error", message=why)


def apply_outcome(view: TaskView, outcome: Outcome) -> None:
    """Copy how a task ended into its view."""
    view.kind = outcome.kind
    view.exit_code = outcome.exit_code
    view.message = outcome.message
    view.duration_ms = outcome.duration_ms
    view.fuel_used = outcome.fuel_used
    view.stdout = outcome.stdout
    view.stderr = outcome.stderr
    view.datafile = outcome.datafile


def _provider(row: tuple[Any, ...]) -> ProviderRow:
    return ProviderRow(row[0], row[1], row[2], bool(row[3]), *row[4:])
