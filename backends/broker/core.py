"""The broker's heart: the task queue (fair across clients, bounded), the connected providers and
what each is running, re-queueing, and recording every result exactly once.

Everything here runs on one event loop. Tasks are written to the store before a client learns
their ids; results are written in batches (at the end of the loop turn that got them, at most one
commit every `FLUSH_DELAY`) and waiters are woken only after their result is on disk; until then
the task reads as open. Providers get tasks in batches, `PREFETCH` per worker (more while a backlog
waits, up to `BACKLOG_PREFETCH`), so a worker never idles for a round trip; a task goes to a
provider that already holds its module when one is free, otherwise the module goes first on the
same connection (frames keep their order).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import msgspec

from backends.broker import protocol as p
from backends.broker.auth import NewKeyGate, Token, printable
from backends.broker.bounds import check_task, check_text, own_bytes, settled
from backends.broker.figures import Tally, running
from backends.broker.store import BrokerStore, apply_outcome
from backends.broker.tasks import TaskRequest, TaskView
from backends.errors import Conflict, Invalid, NotFound
from backends.wasm.blobs import ref_of
from backends.wasm.record import ended_state

PREFETCH = 2
"""Tasks handed to a provider per worker it has: one running, one waiting behind it."""
BACKLOG_PREFETCH = 16
"""Most tasks per worker a provider holds while a backlog waits (at most half its share of the
queue): fewer, bigger frames per task when tasks are short, and the last ones still spread."""
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the task latency histogram, submit to result."""
FLUSH_DELAY = 0.002
"""Least time between two commits of results: a lone result is written at once, a stream of them in
batches (one commit per result capped trivial tasks at the disk's commit rate)."""
RECENT = 50_000
"""Finished tasks kept in memory for quick answers (older ones are read from the store)."""
RECENT_BYTES = 64 * 1024 * 1024
"""Most output bytes those finished tasks' views hold together."""
PROVIDER_PAYLOAD = 16 * 1024 * 1024
"""Most payload bytes (stdin, files) handed to one provider and not finished: what its frames and
its memory carry at once, however many workers it has."""
OWN_FRAME = 64 * 1024
"""Payload bytes from which a task goes to its provider in a frame of its own."""
LOG_LINES = 500
LOGS = 1000
"""Provider keys whose log is kept (the ones heard from last)."""
MAX_PENDING = 100
"""Provider keys kept waiting to be paired (the ones heard from last)."""
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
WASM_MAGIC = b"\0asm\x01\0\0\0"


KiB, MiB, GiB = 1024, 1024**2, 1024**3


def _bound(default: Any, kind: str, help_text: str) -> Any:
    """A settings field that is one of the broker's bounds: `kind` (count, size or duration) and
    `help_text` make its flag on `berth broker serve`."""
    return field(default=default, metadata={"kind": kind, "help": help_text})


def bound_settings() -> list[tuple[str, str, Any, str]]:
    """Every bound among the `BrokerSettings`: (field name, kind, default, help)."""
    return [
        (f.name, f.metadata["kind"], f.default, f.metadata["help"])
        for f in fields(BrokerSettings)
        if "kind" in f.metadata
    ]


class TooLarge(Invalid):
    """An upload over the broker's size limit (HTTP 413)."""


class QueueFull(Conflict):
    """The queue holds as many tasks as it may (HTTP 429)."""


@dataclass
class BrokerSettings:
    """How a broker runs: where it keeps state, its limits and timings, and its client tokens."""

    data: Path
    max_upload: int = 64 * 1024 * 1024
    queue_limit: int = 100_000
    max_attempts: int = 3
    heartbeat: float = 2.0
    missed_heartbeats: int = 3
    task_grace: float = 30.0
    tokens: dict[str, Token] = field(default_factory=dict)
    """Bearer token -> whom it stands for; empty: no token is asked for (loopback only, all admin)."""
    origins: tuple[str, ...] = ()
    """Browser origins allowed to call (`scheme://host[:port]`, lower case); others get 403."""
    name: str = "berth"
    # Bounds on what a task brings and asks for (backends.broker.bounds), and on what the broker
    # holds; each is a flag of `berth broker serve` (see `bound_settings`).
    max_fuel: int = _bound(10**12, "count", "Most fuel a task may ask for (limits.fuel).")
    default_memory: int = _bound(256 * MiB, "size", "Memory limit of a task that sets none.")
    max_memory: int = _bound(2 * GiB, "size", "Most memory a task may ask for (limits.memory).")
    default_timeout: float = _bound(300.0, "duration", "Wall-time limit of a task that sets none.")
    max_timeout: float = _bound(3600.0, "duration", "Longest wall time a task may ask for (limits.timeout).")
    default_output: int = _bound(MiB, "size", "Output limit (limits.max_output) of a task that sets none.")
    max_output: int = _bound(
        8 * MiB,
        "size",
        "Most output a task may ask for (limits.max_output): its result carries at most that much "
        "stdout, stderr and data file each, and must fit one frame from its provider.",
    )
    max_args: int = _bound(1024, "count", "Most arguments a task may have.")
    max_env: int = _bound(1024, "count", "Most environment variables a task may have.")
    max_argv_bytes: int = _bound(
        256 * KiB, "size", "Most bytes of a task's name, arguments and environment together."
    )
    max_stdin: int = _bound(8 * MiB, "size", "Largest stdin a task may bring.")
    max_files: int = _bound(1000, "count", "Most files a task may bring.")
    max_file_name: int = _bound(1024, "count", "Longest file name (bytes, folders included).")
    max_file_depth: int = _bound(16, "count", "Most parts (folders and the file) of a file name.")
    max_files_bytes: int = _bound(32 * MiB, "size", "Most bytes of a task's files together.")
    queue_bytes: int = _bound(
        256 * MiB,
        "size",
        "Most bytes (stdin, files, arguments) the tasks waiting or running may hold (a request "
        "larger than that alone: HTTP 413; one that does not fit now: 429).",
    )
    keep_finished: float = _bound(7 * 86400.0, "duration", "How long a finished task is kept.")
    keep_finished_count: int = _bound(100_000, "count", "Most finished tasks kept (older ones go first).")
    max_provider_workers: int = _bound(
        256, "count", "Most workers a provider is counted with, whatever it claims."
    )

    def __post_init__(self) -> None:
        for low, high in (
            ("default_memory", "max_memory"),
            ("default_timeout", "max_timeout"),
            ("default_output", "max_output"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise Invalid(f"The broker's {low} is above its {high}.", "Lower one or raise the other.")
        if self.max_fuel > p.INT64:
            raise Invalid(f"The broker's max_fuel is above {p.INT64:,}, the most a fuel counter holds.")
        if not 1 <= self.max_provider_workers <= p.MAX_WORKERS:
            raise Invalid(f"The broker's max_provider_workers must be 1 to {p.MAX_WORKERS:,}.")

    @property
    def frame_limit(self) -> int:
        """The largest frame an admitted provider may send: room for a result at `max_output`
        (and for the modules-sized frames the broker always took)."""
        return max(self.max_upload + MiB, p.result_size(self.max_output))


class Link(Protocol):
    """A provider's connection as the broker core uses it (the WebSocket side implements it)."""

    def send(self, frame: bytes, binary: bool = False) -> None:
        """Queue a frame (a text frame of encoded JSON unless `binary`); frames go out in order."""

    def close(self, reason: str) -> None:
        """End the connection after the frames already queued."""


@dataclass(eq=False)
class _Task:
    id: str
    client: str
    batch: str
    request: TaskRequest
    created: float
    seq: int = 0
    attempts: int = 0
    state: str = "queued"
    provider: ProviderConn | None = None
    started: float | None = None
    deadline: float = 0.0
    cancel_requested: bool = False
    last_failure: str = ""
    finished_as: str = ""
    files: tuple[str, ...] = ()
    """The refs of the files it brings, each held once in `Broker._blobs` however many tasks do."""
    own: int = 0
    """Bytes it holds besides its files (stdin, arguments…), counted against the byte budget."""
    payload: int = 0
    """Bytes its job carries to a provider (stdin and files)."""


@dataclass(eq=False)
class _Blob:
    """A file some open tasks bring, kept once: its bytes, and how many tasks hold it."""

    data: bytes
    users: int = 0


@dataclass(eq=False)
class ProviderConn:
    """A connected, admitted provider: what it offers and what it has in flight (its tally of
    finished tasks is the broker's, kept across connections)."""

    link: Link
    fingerprint: str
    name: str
    host: str
    version: str
    workers: int
    connected: float
    last_heartbeat: float
    draining: bool = False
    inflight: dict[str, _Task] = field(default_factory=dict)
    carried: int = 0
    """Payload bytes (stdin, files) of the tasks in `inflight`."""
    modules: set[str] = field(default_factory=set)

    def assign(self, task: _Task) -> None:
        """The provider runs `task` now."""
        self.inflight[task.id] = task
        self.carried += task.payload

    def take(self, task_id: str) -> _Task | None:
        """The task no longer runs here: it is taken off the provider's list (None if not on it)."""
        task = self.inflight.pop(task_id, None)
        if task is not None:
            self.carried -= task.payload
        return task

    @property
    def free(self) -> int:
        """How many more tasks it may be handed now."""
        return 0 if self.draining else self.workers * PREFETCH - len(self.inflight)

    def to_json(self, now: float, tally: Tally) -> dict[str, Any]:
        """The provider as the API lists it, with its figures (see backends.broker.figures)."""
        return {
            "fingerprint": self.fingerprint,
            "name": self.name,
            "state": "draining" if self.draining else "online",
            "host": self.host,
            "version": self.version,
            "workers": self.workers,
            "running": running(len(self.inflight), self.workers),
            "in_flight": len(self.inflight),
            **tally.to_json(),
            "last_heartbeat": round(now - self.last_heartbeat, 3),
            "connected": self.connected,
        }


class Broker:
    """Tasks in, results out: the queue, the providers, the store. Create, then `await start()`."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.max_upload = settings.max_upload
        self.store = BrokerStore(settings.data)
        self.started = time.time()
        self._open: dict[str, _Task] = {}
        self._seq = 0  # submission order of tasks in memory, for putting re-queued ones back in order
        self._queues: dict[str, deque[_Task]] = {}
        self._turns: deque[str] = deque()  # clients with queued tasks, whose turn is next first
        self._queued = 0
        self._providers: dict[str, ProviderConn] = {}
        self._logs: dict[str, deque[str]] = {}  # oldest first
        self._new_keys = NewKeyGate()
        self._recent: OrderedDict[str, TaskView] = OrderedDict()
        self._unflushed: list[tuple[_Task, str, str | None, p.Outcome | None, float]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._flushed_at = 0.0
        self._finishing: dict[str, _Task] = {}  # finished, result not yet on disk: still open to clients
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._finished_event = asyncio.Event()
        self._known_modules: set[str] = set()
        self._blobs: dict[str, _Blob] = {}
        self.held = 0
        """Bytes the open tasks hold (see `_Task.own`), their files once each: the byte budget's use."""
        self._recent_bytes = 0
        self._watch: asyncio.Task[None] | None = None
        self.counters = {"done": 0, "failed": 0, "cancelled": 0, "retried": 0, "purged": 0}
        self._tallies: dict[str, Tally] = {}  # what each provider finished, by key, across connections
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    # Life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Queue again every task the store holds unfinished, and start watching providers."""
        for stored in self.store.open_tasks():
            # Limits as this broker's bounds have them now (the task may be from an older one).
            request = msgspec.structs.replace(
                stored.request, limits=settled(stored.request.limits, self.settings)
            )
            task = _Task(stored.id, stored.client, stored.batch, request, stored.created, self._next_seq())
            task.attempts = stored.attempts
            self._hold(task, stored.files or _file_refs([request])[0], own_bytes(request))
            self._open[task.id] = task
            self._enqueue(task)
        self._watch = asyncio.get_running_loop().create_task(self._watch_providers())

    async def close(self) -> None:
        """Tell providers goodbye, write what is pending, close the store."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for conn in list(self._providers.values()):
            conn.link.close("the broker is shutting down")
        self._flush()
        self.store.close()

    # Modules ----------------------------------------------------------------------------------

    async def add_module(self, data: bytes, name: str = "") -> str:
        """Keep a WASI module; returns its ref. TooLarge over the limit, Invalid if not wasm."""
        if len(data) > self.max_upload:
            raise TooLarge(
                f"The module is {len(data):,} bytes; this broker takes at most {self.max_upload:,}.",
                "Raise --max-upload (BERTH_BROKER_MAX_UPLOAD) or send a smaller module.",
            )
        if not data.startswith(WASM_MAGIC):
            raise Invalid(
                "That is not a WebAssembly module (it does not start with \\0asm version 1).",
                "Upload the compiled .wasm file.",
            )
        check_text("name", name, self.settings.max_file_name, "max_file_name")
        await asyncio.to_thread(_validate, data)
        ref = await asyncio.to_thread(self.store.put_module, data, name)
        self._known_modules.add(ref)
        return ref

    def module_named(self, name: str) -> str | None:
        """The ref of the module last uploaded under `name`."""
        return self.store.module_named(name)

    def _has_module(self, ref: str) -> bool:
        if ref not in self._known_modules and self.store.has_module(ref):
            self._known_modules.add(ref)
        return ref in self._known_modules

    # Tasks ------------------------------------------------------------------------------------

    async def submit(self, requests: list[TaskRequest], client: str) -> list[str]:
        """Accept tasks (recorded before this returns) and queue them; returns their ids."""
        ids, _ = self.submit_batch(requests, client)
        return ids

    def submit_batch(
        self, requests: list[TaskRequest], client: str, batch: str | None = None
    ) -> tuple[list[str], str]:
        """Like `submit`, also returning the batch id that `batch_results` follows.

        A client that names its `batch` may send it again after losing the answer: the tasks
        accepted the first time are answered again, never queued twice.
        """
        if batch is not None:
            if not _BATCH_ID.fullmatch(batch):
                raise Invalid("A batch id is 8 to 64 letters, digits, '-' or '_'.")
            known = self.store.batch_ids(batch)
            if known:
                if self.store.batch_client(batch) != client:  # never another client's ids
                    raise Conflict(f"Batch id {batch} is taken by another client.", "Use another batch id.")
                return known, batch
        if not requests:
            raise Invalid("No tasks given.", "Send one task object or a non-empty list.")
        checked: list[TaskRequest] = []
        seen_limits: dict[p.Limits, p.Limits] = {}  # checked already (a batch often repeats them)
        for i, request in enumerate(requests):
            if not self._has_module(request.module):
                raise Invalid(
                    f"No module {request.module[:80]!r} on this broker.",
                    "Upload it first: POST /api/v1/modules answers its ref.",
                )
            where = f"tasks[{i}]." if len(requests) > 1 else ""
            checked.append(check_task(request, self.settings, where, seen_limits))
        if len(self._open) + len(requests) > self.settings.queue_limit:
            raise QueueFull(
                f"The queue is full ({len(self._open):,} tasks waiting or running, "
                f"limit {self.settings.queue_limit:,}).",
                "Retry later.",
            )
        files = _file_refs(checked)
        new_blobs = {
            ref: r.files[name]
            for r, refs in zip(checked, files, strict=True)
            for name, ref in refs.items()
            if ref not in self._blobs
        }
        owns = [own_bytes(r) for r in checked]
        self._check_budget(sum(owns) + sum(map(len, new_blobs.values())))
        now = time.time()
        batch = batch or "b-" + secrets.token_hex(8)
        tasks = [
            _Task("t-" + secrets.token_hex(8), client, batch, r, now, self._next_seq()) for r in checked
        ]
        self.store.add_tasks(
            ((t.id, t.client, t.batch, t.request, t.created, f) for t, f in zip(tasks, files, strict=True)),
            new_blobs,
        )
        for task, refs, own in zip(tasks, files, owns, strict=True):
            self._hold(task, refs, own)
            self._open[task.id] = task
            self._enqueue(task)
        self._dispatch()
        return [t.id for t in tasks], batch

    def _check_budget(self, need: int) -> None:
        """TooLarge for tasks that alone hold more bytes than the queue may, QueueFull for ones
        that do not fit next to the tasks waiting or running now."""
        budget = self.settings.queue_bytes
        if need > budget:
            raise TooLarge(
                f"These tasks hold {need:,} bytes (stdin, files, arguments); the queue of this broker "
                f"holds at most {budget:,} (queue_bytes).",
                "Send fewer or smaller tasks at once, or raise --queue-bytes on the broker.",
            )
        if self.held + need > budget:
            raise QueueFull(
                f"The queue's byte budget is full: the tasks waiting or running hold {self.held:,} of "
                f"{budget:,} bytes (queue_bytes), and these need {need:,} more.",
                "Retry later.",
            )

    def _hold(self, task: _Task, refs: dict[str, str], own: int) -> None:
        """Count an open task (holding `own` bytes besides its files) against the byte budget; its
        files are kept once, shared with every other open task that brings the same bytes."""
        request = task.request
        task.own, task.payload = own, len(request.stdin)
        self.held += own
        if not refs:
            return
        shared = {}
        for name, ref in refs.items():
            blob = self._blobs.get(ref)
            if blob is None:
                blob = self._blobs[ref] = _Blob(request.files[name])
                self.held += len(blob.data)
            blob.users += 1
            shared[name] = blob.data
        request.files = shared
        task.files = tuple(refs.values())
        task.payload += sum(map(len, shared.values()))

    def _release(self, task: _Task) -> None:
        """A task finished: what it held is given back to the budget (a file when no task has it)."""
        self.held -= task.own
        for ref in task.files:
            blob = self._blobs[ref]
            blob.users -= 1
            if not blob.users:
                del self._blobs[ref]
                self.held -= len(blob.data)
        task.files, task.own = (), 0

    def get(self, task_id: str, owner: str | None = None) -> TaskView:
        """A task's view; NotFound when the broker never had it, or it is not `owner`'s (when
        given: a client sees only its own tasks, and cannot tell others' from none)."""
        task = self._open.get(task_id) or self._finishing.get(task_id)
        if task is not None:
            view: TaskView | None = self._open_view(task)
        else:
            view = self._recent.get(task_id) or self.store.view(task_id)
        if view is None or (owner is not None and view.client != owner):
            raise NotFound(f"No task {task_id[:80]}.", "List tasks with GET /api/v1/tasks.")
        return view

    def recent(
        self, state: str | None = None, limit: int = 100, owner: str | None = None, before: int | None = None
    ) -> tuple[list[TaskView], int | None]:
        """The newest tasks (only `owner`'s, if given), from cursor `before` on, open ones as they
        are now, all without their output; and the cursor of the next page (None: no more)."""
        views, cursor = self.store.page(state, limit, owner, before)
        live = [self._open.get(v.id) or self._finishing.get(v.id) for v in views]
        views = [v if task is None else self._open_view(task) for v, task in zip(views, live, strict=True)]
        return views, cursor

    async def wait(self, task_id: str, timeout: float | None = None, owner: str | None = None) -> TaskView:
        """The task's view once it finished (or as it is when `timeout` runs out); see `get`."""
        view = self.get(task_id, owner)
        if task_id in self._open or task_id in self._finishing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._waiter(task_id), timeout)
            view = self.get(task_id)
        return view

    async def wait_all(self, ids: list[str]) -> list[TaskView]:
        """Every task's view once all of them finished, in the order given."""
        waiting = [self._waiter(i) for i in ids if i in self._open or i in self._finishing]
        if waiting:
            await asyncio.gather(*waiting)
        return [self.get(i) for i in ids]

    async def batch_results(
        self, batch: str, after: int, timeout: float, owner: str | None = None
    ) -> tuple[list[TaskView], bool]:
        """Results of a batch finished after finish number `after` (waiting up to `timeout` for
        one), and whether the whole batch has finished. NotFound for another client's batch
        when `owner` is given."""
        if owner is not None and self.store.batch_client(batch) not in (owner, None):
            raise NotFound(f"No batch {batch[:80]}.")
        deadline = time.monotonic() + timeout
        while True:
            event = self._finished_event
            views = self.store.batch_results(batch, after)
            total, finished = self.store.batch_counts(batch)
            if total == 0:
                raise NotFound(f"No batch {batch[:80]}.")
            left = deadline - time.monotonic()
            if views or finished == total or left <= 0:
                return views, finished == total and len(views) < 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), left)

    def cancel(self, task_id: str, owner: str | None = None) -> TaskView:
        """Cancel a task: a queued one never runs; a running one is told to stop. With `owner`,
        only that client's tasks (NotFound for others', as `get`)."""
        self.get(task_id, owner)
        task = self._open.get(task_id)
        if task is None:
            finishing = self._finishing.get(task_id)
            state = finishing.finished_as if finishing is not None else self.get(task_id).state
            raise Conflict(f"Task {task_id} has already finished ({state}).")
        task.cancel_requested = True
        if task.state == "queued":
            self._queues[task.client].remove(task)
            self._queued -= 1
            self._finish(
                task, "cancelled", None, p.Outcome(task.id, task.attempts, "cancelled", message="cancelled")
            )
            self._flush()  # written now, so the view answered below (and any GET) reads cancelled
        elif task.provider is not None:
            task.provider.link.send(p.encode(p.Cancel(task.id)))
        return self.get(task_id)

    # Providers --------------------------------------------------------------------------------

    def admit(
        self, link: Link, hello: p.Hello, fingerprint: str, peer: str = "?"
    ) -> ProviderConn | p.Refused:
        """A provider proved it holds `hello.key`: admit it if paired, else note it as pending.

        A new key is noted only while its peer address brings few (`NewKeyGate`); the pending list
        keeps the `MAX_PENDING` keys last heard from. What the provider says about itself is kept
        without control characters. An admitted provider gets no task before `ready()`, so the
        welcome goes first."""
        known = self.store.provider(fingerprint) is not None
        if not known and not self._new_keys.allow(peer):
            return p.Refused(
                f"Too many new provider keys from {peer}: this one is not noted.",
                fingerprint,
                "Try again in a minute.",
            )
        name, host, version = printable(hello.name), printable(hello.host), printable(hello.version)
        workers = self._workers(fingerprint, hello.workers)
        row = self.store.seen(fingerprint, hello.key, name, host, version, workers)
        if not known:
            self.store.trim_pending(MAX_PENDING)
        if not row.paired:
            self.log(fingerprint, f"refused: not paired (asked as {name!r} from {host})")
            return p.Refused(
                f"This provider's key {fingerprint} is not paired with broker {self.settings.name}.",
                fingerprint,
                f"An admin of the broker pairs it with: berth broker pair {fingerprint} --name NAME",
            )
        old = self._providers.get(fingerprint)
        if old is not None:  # the same key connecting again: the old connection is stale
            self.disconnect(fingerprint, "replaced by a new connection of the same provider")
        now = time.monotonic()
        conn = ProviderConn(link, fingerprint, row.name, host, version, workers, time.time(), now)
        self._providers[fingerprint] = conn
        self.log(fingerprint, f"connected from {host or '?'} with {conn.workers} workers (v{version})")
        return conn

    def _workers(self, fingerprint: str, claimed: int) -> int:
        """The workers a provider is counted with: what it claims, at most `max_provider_workers`
        (a provider claiming thousands would otherwise take every task from the others)."""
        cap = self.settings.max_provider_workers
        if claimed > cap:
            self.log(fingerprint, f"claims {claimed:,} workers; counted as {cap:,} (max_provider_workers)")
        return min(max(1, claimed), cap)

    def ready(self, conn: ProviderConn) -> None:
        """The provider was welcomed: it may be handed tasks now."""
        self._dispatch()

    def provider_gone(self, conn: ProviderConn, reason: str) -> None:
        """The connection ended: its unfinished tasks go back to the queue."""
        if self._providers.get(conn.fingerprint) is conn:
            del self._providers[conn.fingerprint]
            self.log(conn.fingerprint, f"disconnected: {reason}")
        self._requeue(list(conn.inflight.values()), f"provider {conn.name} {reason}")
        conn.inflight.clear()
        conn.carried = 0
        self._dispatch()

    def on_message(self, conn: ProviderConn, message: Any) -> None:
        """Handle a decoded message from an admitted provider."""
        conn.last_heartbeat = time.monotonic()
        if isinstance(message, p.Done):
            self._on_done(conn, message.outcomes)
        elif isinstance(message, p.Heartbeat):
            if message.draining and not conn.draining:
                conn.draining = True
                self.log(conn.fingerprint, "draining (asked by the provider)")
            workers = min(message.workers, self.settings.max_provider_workers)
            if workers >= 1 and workers != conn.workers:
                conn.workers = self._workers(conn.fingerprint, message.workers)
                self._dispatch()
        elif isinstance(message, p.Need):
            if self._has_module(message.module):
                self._send_module(conn, message.module)
        elif isinstance(message, p.Log):
            self.log(conn.fingerprint, message.line)
        elif isinstance(message, p.Output):
            pass  # live output is kept by the provider; the result carries it
        else:
            raise p.ProtocolError(f"unexpected {type(message).__name__.lower()!r} after the handshake")

    def drain(self, fingerprint: str) -> None:
        """Ask a provider to finish what it runs and take nothing new."""
        conn = self._conn(fingerprint)
        conn.draining = True
        conn.link.send(p.encode(p.Drain()))
        self.log(fingerprint, "draining (asked by an admin)")

    def disconnect(self, fingerprint: str, reason: str = "disconnected by an admin") -> None:
        """Close a provider's connection; what it ran goes back to the queue."""
        conn = self._conn(fingerprint)
        conn.link.send(p.encode(p.Bye(reason)))
        conn.link.close(reason)
        self.provider_gone(conn, reason)

    def pair(self, fingerprint: str, name: str) -> None:
        """Admit a pending provider key under `name` (it is let in when it next connects)."""
        name = printable(name).strip()
        if not name:
            raise Invalid("A paired provider needs a name.", "Give one with --name.")
        if len(name) > p.MAX_NAME:
            raise Invalid(f"A provider's name is at most {p.MAX_NAME} characters.")
        if not self.store.pair(fingerprint, name):
            raise NotFound(
                f"No provider with key {printable(fingerprint)[:80]} has asked to join.",
                "Start the provider first; `berth broker pending` lists the keys waiting.",
            )
        self.log(fingerprint, f"paired as {name!r}")

    def unpair(self, fingerprint: str) -> None:
        """Revoke a paired key: it is refused from now on like a key never seen (and so waits to
        be paired again); a connection it has is closed, what it ran goes back to the queue."""
        row = self.store.provider(fingerprint)
        if row is None or not row.paired:
            raise NotFound(
                f"No paired provider has key {printable(fingerprint)[:80]}.",
                "`berth broker providers` lists the paired keys.",
            )
        self.store.unpair(fingerprint)
        self.log(fingerprint, f"unpaired (was {row.name!r})")
        if fingerprint in self._providers:
            self.disconnect(fingerprint, "unpaired by an admin")

    def pair_key(self, key: bytes, fingerprint: str, name: str) -> None:
        """Admit a key outright (the embedded broker's own local provider)."""
        self.store.pair(fingerprint, name, key)

    def providers(self) -> list[dict[str, Any]]:
        """Every paired provider: connected ones with their live figures, the others offline."""
        now = time.monotonic()
        listed = []
        for row in self.store.providers(paired=True):
            conn = self._providers.get(row.fingerprint)
            tally = self._tallies.get(row.fingerprint) or Tally()
            if conn is not None:
                listed.append(conn.to_json(now, tally))
            else:
                listed.append(
                    {
                        "fingerprint": row.fingerprint,
                        "name": row.name,
                        "state": "offline",
                        "host": row.host,
                        "version": row.version,
                        "workers": row.workers,
                        "last_seen": row.last_seen,
                        **tally.to_json(),
                    }
                )
        return listed

    def pending(self) -> list[dict[str, Any]]:
        """Provider keys that asked to join and wait for an admin to pair them."""
        return [
            {
                "fingerprint": r.fingerprint,
                "name": r.name,
                "state": "pending",
                "host": r.host,
                "version": r.version,
                "workers": r.workers,
                "first_seen": r.first_seen,
                "last_seen": r.last_seen,
            }
            for r in self.store.providers(paired=False)
        ]

    def provider_log(self, fingerprint: str) -> list[str]:
        """What happened to a provider (connections, refusals, its own log lines), oldest first."""
        return list(self._logs.get(fingerprint, ()))

    def log(self, fingerprint: str, line: str) -> None:
        """Add a line to a provider's log (kept for the `LOGS` keys heard from last)."""
        log = self._logs.pop(fingerprint, None) or deque(maxlen=LOG_LINES)
        self._logs[fingerprint] = log
        while len(self._logs) > LOGS:  # every refused key has a log: a flood of keys must not grow it
            del self._logs[next(iter(self._logs))]
        log.append(time.strftime("%Y-%m-%d %H:%M:%S ") + line)

    def online_providers(self) -> int:
        """How many providers are connected and admitted."""
        return len(self._providers)

    def status(self) -> dict[str, Any]:
        """The broker at a glance (GET /api/v1/status; each figure is defined in backends.broker.figures)."""
        conns = self._providers.values()
        taking = [c for c in conns if not c.draining]
        workers = sum(c.workers for c in taking)
        return {
            "name": self.settings.name,
            "queued": self._queued,
            "running": sum(running(len(c.inflight), c.workers) for c in conns),
            "in_flight": sum(len(c.inflight) for c in conns),
            "done": self.counters["done"],
            "failed": self.counters["failed"],
            "cancelled": self.counters["cancelled"],
            "retried": self.counters["retried"],
            "providers": len(self._providers),
            "workers": workers,
            "free_workers": sum(max(0, c.workers - len(c.inflight)) for c in taking),
            "held_bytes": self.held,
            "queue_bytes": self.settings.queue_bytes,
            "purged": self.counters["purged"],
            "uptime": round(time.time() - self.started, 3),
        }

    # Inside -----------------------------------------------------------------------------------

    def _conn(self, fingerprint: str) -> ProviderConn:
        conn = self._providers.get(fingerprint)
        if conn is None:
            raise NotFound(f"No connected provider with key {fingerprint[:80]}.")
        return conn

    def _open_view(self, task: _Task) -> TaskView:
        return TaskView(
            id=task.id,
            state=task.state,
            module=task.request.module,
            name=task.request.name,
            client=task.client,
            created=task.created,
            attempts=task.attempts,
            provider=task.provider.name if task.provider else None,
            started=task.started,
            message=task.last_failure,
            # When the broker gives up on it (wall clock), while a provider runs it.
            deadline=time.time() + task.deadline - time.monotonic() if task.state == "running" else None,
        )

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _waiter(self, task_id: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(future)
        return future

    def _enqueue(self, task: _Task, front: bool = False) -> None:
        queue = self._queues.get(task.client)
        if queue is None:
            queue = self._queues[task.client] = deque()
        if not queue:
            self._turns.append(task.client)
        queue.appendleft(task) if front else queue.append(task)
        task.state, task.provider = "queued", None
        self._queued += 1

    def _dispatch(self) -> None:
        """Hand queued tasks to free workers, taking one task per client in turn."""
        if not self._queued:
            return
        online = [c for c in self._providers.values() if not c.draining]
        share = self._queued // max(1, sum(c.workers for c in online))
        depth = PREFETCH + min(BACKLOG_PREFETCH - PREFETCH, share // 2)
        room = {c: c.workers * depth - len(c.inflight) for c in online}
        free = [c for c in online if room[c] > 0]
        if not free:
            return
        batches: dict[ProviderConn, list[p.Job]] = {}
        now = time.monotonic()
        held_back: list[str] = []  # clients whose next task carries more than any provider may take now
        while self._turns and free:
            client = self._turns.popleft()
            queue = self._queues[client]
            task = queue[0]
            carriers = free if not task.payload else [c for c in free if _may_carry(c, task)]
            if not carriers:
                held_back.append(client)
                continue
            queue.popleft()
            self._queued -= 1
            if queue:
                self._turns.append(client)
            conn = _pick(carriers, task.request.module, room)
            task.attempts += 1
            task.state, task.provider, task.started = "running", conn, time.time()
            # Every task has a timeout (the broker's default when it set none): a deadline too.
            timeout = task.request.limits.timeout or self.settings.default_timeout
            task.deadline = now + timeout + self.settings.task_grace
            conn.assign(task)
            room[conn] -= 1
            if room[conn] <= 0:
                free.remove(conn)
            if task.request.module not in conn.modules:
                self._send_module(conn, task.request.module)
            r = task.request
            job = p.Job(
                task.id, task.attempts, r.module, r.args, r.env, r.stdin, r.limits, r.stream, r.name, r.files,
                r.datafile,
            )  # fmt: skip
            if task.payload >= OWN_FRAME:  # no frame (nor its copies on the way out) holds several
                conn.link.send(p.encode(p.Run([job])))
            else:
                batches.setdefault(conn, []).append(job)
        self._turns.extendleft(reversed(held_back))
        for conn, jobs in batches.items():
            conn.link.send(p.encode(p.Run(jobs)))

    def _send_module(self, conn: ProviderConn, ref: str) -> None:
        conn.link.send(p.module_frame(ref, self.store.module_bytes(ref)), binary=True)
        conn.modules.add(ref)

    def _on_done(self, conn: ProviderConn, outcomes: Iterable[p.Outcome]) -> None:
        for outcome in outcomes:
            task = conn.inflight.get(outcome.id)
            if task is None or task.attempts != outcome.attempt:
                continue  # a result of an attempt given up on (re-queued or finished elsewhere)
            conn.take(outcome.id)
            if outcome.kind == "declined":  # a draining provider hands back what it never started
                task.attempts -= 1
                self._enqueue(task, front=True)
                continue
            if outcome.kind == "lost":  # the provider lost it (its worker died): try elsewhere
                self._requeue([task], f"provider {conn.name}: {outcome.message}")
                continue
            state = ended_state(outcome.kind, outcome.exit_code)
            self._tallies.setdefault(conn.fingerprint, Tally()).count(state, outcome.duration_ms)
            self._finish(task, state, conn.name, _within(outcome, task.request.limits))
        self._dispatch()

    def _requeue(self, tasks: list[_Task], why: str) -> None:
        for task in sorted(tasks, key=lambda t: t.seq, reverse=True):
            task.last_failure = why
            if task.cancel_requested:
                self._finish(
                    task, "cancelled", None, p.Outcome(task.id, task.attempts, "cancelled", message=why)
                )
            elif task.attempts >= self.settings.max_attempts:
                message = f"gave up after {task.attempts} attempts; last: {why}"
                self._finish(
                    task, "failed", None, p.Outcome(task.id, task.attempts, "failed", message=message)
                )
            else:
                self.counters["retried"] += 1
                self._enqueue(task, front=True)

    def _finish(self, task: _Task, state: str, provider: str | None, outcome: p.Outcome | None) -> None:
        self._open.pop(task.id, None)
        if task.provider is not None:
            task.provider.take(task.id)
        self._release(task)
        # The task keeps its open state (what clients see) until its result is on disk.
        task.finished_as = state
        self._finishing[task.id] = task
        self._unflushed.append((task, state, provider, outcome, time.time()))
        if len(self._unflushed) >= 2000:
            self._flush()
        elif self._flush_handle is None:
            loop = asyncio.get_running_loop()
            wait = self._flushed_at + FLUSH_DELAY - time.monotonic()
            # At the end of this loop turn (every result read in it goes in the same commit), or
            # when FLUSH_DELAY has passed since the last commit.
            self._flush_handle = (
                loop.call_later(wait, self._flush) if wait > 0 else loop.call_soon(self._flush)
            )

    def _flush(self) -> None:
        """Write finished tasks, then wake whoever waits for them."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._unflushed:
            return
        batch, self._unflushed = self._unflushed, []
        first = self.store.done_seq + 1
        # What the store kept: a result it cannot keep fails its own task, never the batch.
        saved = self.store.finish((t.id, s, prov, o, f, t.attempts) for t, s, prov, o, f in batch)
        self._flushed_at = time.monotonic()
        for seq, ((task, _, provider, _, finished), (state, outcome)) in enumerate(
            zip(batch, saved, strict=True), first
        ):
            task.state = state
            self._finishing.pop(task.id, None)
            self.counters["done" if state == "done" else "failed" if state == "failed" else "cancelled"] += 1
            elapsed = finished - task.created
            self.latency[_bucket(elapsed)] += 1
            self.latency_sum += elapsed
            view = self._open_view(task)
            view.state, view.finished, view.provider = state, finished, provider
            view.seq = seq
            if outcome is not None:
                apply_outcome(view, outcome)
            self._remember(view)
            for future in self._waiters.pop(task.id, ()):
                if not future.done():
                    future.set_result(None)
        event, self._finished_event = self._finished_event, asyncio.Event()
        event.set()

    def _remember(self, view: TaskView) -> None:
        """Keep a finished task's view for quick answers: the newest `RECENT`, in `RECENT_BYTES`."""
        old = self._recent.pop(view.id, None)
        if old is not None:
            self._recent_bytes -= _output_bytes(old)
        self._recent[view.id] = view
        self._recent_bytes += _output_bytes(view)
        while len(self._recent) > RECENT or self._recent_bytes > RECENT_BYTES:
            self._recent_bytes -= _output_bytes(self._recent.popitem(last=False)[1])

    def _purge(self) -> None:
        """Forget finished tasks older than `keep_finished`, and those beyond the newest
        `keep_finished_count` (a bounded number a call, so a big purge never stalls the loop)."""
        cutoff = time.time() - self.settings.keep_finished
        for task_id in self.store.purge(cutoff, self.store.done_seq - self.settings.keep_finished_count):
            self.counters["purged"] += 1
            view = self._recent.pop(task_id, None)
            if view is not None:
                self._recent_bytes -= _output_bytes(view)

    async def _watch_providers(self) -> None:
        """Once a second: providers whose heartbeats stopped are dropped, overdue tasks re-queued,
        finished tasks past their keeping purged."""
        while True:
            await asyncio.sleep(min(1.0, self.settings.heartbeat))
            self._purge()
            now = time.monotonic()
            silence = self.settings.heartbeat * self.settings.missed_heartbeats
            for conn in list(self._providers.values()):
                if now - conn.last_heartbeat > silence:
                    conn.link.close("no heartbeat")
                    self.provider_gone(conn, f"went silent (no heartbeat for {silence:g} s)")
                    continue
                overdue = [t for t in conn.inflight.values() if t.deadline < now]
                for task in overdue:
                    conn.take(task.id)
                    conn.link.send(p.encode(p.Cancel(task.id)))
                    self.log(conn.fingerprint, f"task {task.id} overdue: given to another provider")
                if overdue:
                    self._requeue(overdue, f"provider {conn.name} did not finish it in time")
                    self._dispatch()


def _file_refs(requests: list[TaskRequest]) -> list[dict[str, str]]:
    """Each task's files as name -> ref; bytes listed by several tasks (Wasimoff's loadfs) are
    hashed once."""
    refs: dict[int, str] = {}  # id() of bytes objects alive in `requests` while this runs
    return [
        {name: refs.get(id(d)) or refs.setdefault(id(d), ref_of(d)) for name, d in r.files.items()}
        if r.files
        else {}
        for r in requests
    ]


def _may_carry(conn: ProviderConn, task: _Task) -> bool:
    """True when the provider may be handed the task's payload now: it carries little enough (and
    a task larger than `PROVIDER_PAYLOAD` alone goes to one that carries nothing)."""
    return not conn.carried or conn.carried + task.payload <= PROVIDER_PAYLOAD


def _within(outcome: p.Outcome, limits: p.Limits) -> p.Outcome:
    """The result with its output held to the task's `max_output` (a provider may send more)."""
    cap = limits.max_output
    if cap is None or max(len(outcome.stdout), len(outcome.stderr), len(outcome.datafile or b"")) <= cap:
        return outcome
    datafile = None if outcome.datafile is None else outcome.datafile[:cap]
    return msgspec.structs.replace(
        outcome, stdout=outcome.stdout[:cap], stderr=outcome.stderr[:cap], datafile=datafile
    )


def _output_bytes(view: TaskView) -> int:
    return len(view.stdout) + len(view.stderr) + len(view.datafile or b"")


def _pick(free: list[ProviderConn], module: str, room: dict[ProviderConn, int]) -> ProviderConn:
    """The free provider with the most room, preferring those that hold the module already."""
    best: ProviderConn | None = None
    for conn in free:
        if best is None or (module in conn.modules, room[conn]) > (module in best.modules, room[best]):
            best = conn
    assert best is not None
    return best


def _bucket(seconds: float) -> int:
    for i, bound in enumerate(LATENCY_BUCKETS):
        if seconds <= bound:
            return i
    return len(LATENCY_BUCKETS)


def _validate(data: bytes) -> None:
    """Invalid unless wasmtime accepts the bytes as a module (checked without compiling)."""
    import wasmtime  # only the broker process that takes uploads pays for loading it

    try:
        wasmtime.Module.validate(wasmtime.Engine(), data)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise Invalid(
            f"That is not a valid WebAssembly module: {first}", "Upload the compiled .wasm file."
        ) from None


encode_json: Callable[[Any], bytes] = msgspec.json.Encoder().encode
"""JSON bytes of API answers (msgspec: views and plain values alike)."""
