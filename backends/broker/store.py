"""The broker's state on disk: modules (content-addressed files), tasks with their results, and
the providers it knows (paired or waiting), in one SQLite database in WAL mode.

A task row is written (and committed) before its id is given to the client, and its result is
written with `state NOT IN (finished states)` in the WHERE clause, so a result is recorded at
most once even when a re-queued task finishes twice. Commits don't wait for fsync
(`synchronous=NORMAL`): a killed broker loses nothing committed; only a power cut could lose the
last moments, and those tasks then run again.
"""

from __future__ import annotations

import contextlib
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
    provider TEXT, created REAL NOT NULL, finished REAL, result BLOB, done_seq INTEGER);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks(state) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS tasks_batch ON tasks(batch, done_seq);
CREATE TABLE IF NOT EXISTS providers (
    fingerprint TEXT PRIMARY KEY, key BLOB NOT NULL, name TEXT NOT NULL, paired INTEGER NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, host TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '', workers INTEGER NOT NULL DEFAULT 0);
"""

_request_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(TaskRequest)
_outcome_decoder = msgspec.msgpack.Decoder(Outcome)


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

    def add_tasks(self, rows: Iterable[tuple[str, str, str, TaskRequest, float]]) -> None:
        """Record new queued tasks `(id, client, batch, request, created)` in one transaction."""
        with self.transaction():
            self.db.executemany(
                "INSERT INTO tasks(id, client, batch, request, state, attempts, created) "
                "VALUES (?, ?, ?, ?, 'queued', 0, ?)",
                [(i, c, b, _request_encoder.encode(r), t) for i, c, b, r, t in rows],
            )

    def open_tasks(self) -> list[StoredTask]:
        """Every task not finished, oldest first: what a restarted broker queues again."""
        rows = self.db.execute(
            "SELECT id, client, batch, request, state, attempts, created, seq FROM tasks "
            "WHERE state IN ('queued', 'running') ORDER BY seq"
        ).fetchall()
        return [
            StoredTask(r[0], r[1], r[2], _request_decoder.decode(r[3]), r[4], r[5], r[6], r[7]) for r in rows
        ]

    def finish(self, rows: Iterable[tuple[str, str, str | None, Outcome | None, float, int]]) -> list[str]:
        """Record results `(id, state, provider, outcome, finished, attempts)` in one transaction;
        returns the ids recorded now (a task already finished keeps its first result). Each gets
        the next finish number, in the order given."""
        first = self.done_seq + 1
        params = []
        for task_id, state, provider, outcome, finished, attempts in rows:
            self.done_seq += 1
            blob = msgspec.msgpack.encode(outcome) if outcome is not None else None
            params.append((state, provider, blob, finished, self.done_seq, attempts, task_id))
        with self.transaction():
            cursor = self.db.executemany(
                "UPDATE tasks SET state = ?, provider = COALESCE(?, provider), result = ?, "
                "finished = ?, done_seq = ?, attempts = ? WHERE id = ? AND state IN ('queued', 'running')",
                params,
            )
            if cursor.rowcount == len(params):
                return [row[6] for row in params]
            # Some had their result already: those recorded now hold the finish numbers given here.
            found = self.db.execute(
                "SELECT id FROM tasks WHERE done_seq BETWEEN ? AND ? ORDER BY done_seq",
                (first, self.done_seq),
            )
            return [row[0] for row in found.fetchall()]

    def view(self, task_id: str) -> TaskView | None:
        """One task as the API shows it, or None."""
        row = self.db.execute(f"SELECT {_VIEW_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return _view(row) if row else None

    def views(self, state: str | None = None, limit: int = 100, client: str | None = None) -> list[TaskView]:
        """The newest tasks (of one state, of one client, if given)."""
        found = [("state = ?", state), ("client = ?", client)]
        where = " AND ".join(c for c, v in found if v is not None)
        args = tuple(v for _, v in found if v is not None)
        clause = f"WHERE {where}" if where else ""
        rows = self.db.execute(
            f"SELECT {_VIEW_COLUMNS} FROM tasks {clause} ORDER BY seq DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [_view(r) for r in rows]

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


_VIEW_COLUMNS = "id, state, client, request, attempts, provider, created, finished, result, done_seq"
_PROVIDER_COLUMNS = "fingerprint, key, name, paired, first_seen, last_seen, host, version, workers"


def _view(row: tuple[Any, ...]) -> TaskView:
    request = _request_decoder.decode(row[3])
    view = TaskView(
        id=row[0],
        state=row[1],
        module=request.module,
        name=request.name,
        client=row[2],
        created=row[6],
        attempts=row[4],
        provider=row[5],
        finished=row[7],
        seq=row[9] or 0,
    )
    if row[8] is not None:
        apply_outcome(view, _outcome_decoder.decode(row[8]))
    return view


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
