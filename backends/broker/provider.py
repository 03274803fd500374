"""A provider: connects to a broker, proves its Ed25519 key, and runs the tasks it is handed on
its own wasm worker processes, sending results back in batches.

It reconnects with backoff when the broker goes away (or has not paired its key yet: the refusal
names the fingerprint and the pairing command) and drains on SIGTERM: the tasks running finish and
are reported, those not started are handed back, then it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backends import __version__, paths
from backends.broker import keys
from backends.broker import protocol as p
from backends.errors import BerthError
from backends.wasm.blobs import blob_path, put_blob
from backends.wasm.pool import join_workers, spawn_worker
from backends.wasm.spec import Limits, Preopen, TaskResult, TaskSpec

PER_WORKER = 2
"""Tasks a worker process holds at once: one running, the next one ready behind it."""
BACKLOG_PER_WORKER = 8
"""Most tasks a worker process is handed at once while more wait here (at most half its share):
one pipe message and one wake-up for several short tasks instead of one each."""
BACKOFF = (0.2, 8.0)
REFUSED_RETRY = 2.0
TEXT = aiohttp.WSMsgType.TEXT
OUTPUT_CAP = 1024 * 1024
"""Output bytes per stream a result carries when the task set no `max_output` of its own."""


def default_store() -> Path:
    """Where a provider keeps the modules it was sent."""
    return paths.data_dir() / "provider-modules"


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    jobs: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _Running:
    job: p.Job
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    worker: _Worker | None = None
    started: bool = False
    """The worker process began running it (it said "started")."""
    sandbox: Path | None = None
    """The folder the module sees as `/`, when the job brings files or wants one back."""


class Provider:
    """One provider process's link to a broker (create, then `await run()`; `drain()` to stop)."""

    def __init__(
        self,
        broker: str,
        workers: int,
        key: Ed25519PrivateKey,
        name: str = "",
        store: Path | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self.url = broker.rstrip("/") + "/api/v1/provider"
        self.size = max(1, workers)
        self.key = key
        self.public = keys.public_bytes(key)
        self.fingerprint = keys.fingerprint(self.public)
        self.name = name or socket.gethostname()
        self.store = store or default_store()
        self._on_log = on_log or (lambda line: None)
        self.done = 0
        self.refusals = 0
        self.admitted = asyncio.Event()
        self._workers: list[_Worker] = []
        self._jobs: dict[str, _Running] = {}
        self._waiting: deque[str] = deque()  # jobs for a free worker, in arrival order
        self._lacking: dict[str, list[str]] = {}  # module ref -> jobs waiting for its bytes
        self._outcomes: list[p.Outcome] = []
        self._handing_back: set[str] = set()  # queued in a worker when draining began: cancelled there
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._draining = False
        self._stopped = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def on_log(self, line: str) -> None:
        """Log a line here, and in the broker's log of this provider while connected."""
        self._on_log(line)
        self._send(p.Log(line))

    # Life cycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the broker until drained: connect, run tasks, reconnect when the link breaks."""
        self._loop = asyncio.get_running_loop()
        for _ in range(self.size):
            self._spawn()
        delay = BACKOFF[0]
        try:
            async with aiohttp.ClientSession() as session:
                while not self._draining:
                    refusals = self.refusals
                    try:
                        await self._session(session)
                        delay = BACKOFF[0]
                    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                        self.on_log(f"cannot reach the broker at {self.url}: {exc or type(exc).__name__}")
                    except p.ProtocolError as exc:
                        self.on_log(f"the broker sent something unexpected: {exc.message}")
                    finally:
                        self._ws = None
                        self.admitted.clear()
                        self._drop_all()
                    if self._draining:
                        break
                    refused = self.refusals > refusals
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopped.wait(), delay)
                    # A refused key asks again every few seconds: it is admitted soon after an
                    # admin pairs it. An unreachable broker gets backoff.
                    delay = REFUSED_RETRY if refused else min(delay * 2, BACKOFF[1])
        finally:
            self._stop_workers()

    def drain(self) -> None:
        """Finish the running tasks, hand back the rest, then end `run()`."""
        if self._draining:
            return
        self._draining = True
        self.on_log("draining: finishing the running tasks, taking no new ones")
        # First, so the broker hands nothing more to us before it gets the tasks we hand back.
        self._send(p.Heartbeat(self._busy(), self.size, draining=True))
        for job_id in list(self._waiting):
            self._decline(job_id)
        self._waiting.clear()
        for job_ids in self._lacking.values():
            for job_id in job_ids:
                self._decline(job_id)
        self._lacking.clear()
        # A worker holds a task behind its running one: stop it there too, and hand it back
        # (`_report` turns its "cancelled" into "declined"), so draining waits for one task only.
        for w in self._workers:
            for job_id in w.jobs:
                running = self._jobs.get(job_id)
                if running is not None and not running.started:
                    self._handing_back.add(job_id)
                    with contextlib.suppress(OSError):
                        w.conn.send(("cancel", job_id))
        self._send_outcomes()
        self._check_drained()

    # The connection ---------------------------------------------------------------------------

    async def _session(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(self.url, heartbeat=None, max_msg_size=0, autoping=True) as ws:
            hello = p.Hello(self.public, self.name, __version__, self.size, socket.gethostname())
            await ws.send_frame(p.encode(hello), TEXT)
            challenge = await _handshake_message(ws)
            if isinstance(challenge, p.Refused):
                self._refused(challenge)
                return
            if not isinstance(challenge, p.Challenge):
                raise p.ProtocolError("expected a challenge")
            signature = keys.sign(self.key, p.AUTH_CONTEXT + challenge.nonce)
            await ws.send_frame(p.encode(p.Auth(signature)), TEXT)
            answer = await _handshake_message(ws)
            if isinstance(answer, p.Refused):
                self._refused(answer)
                return
            if not isinstance(answer, p.Welcome):
                raise p.ProtocolError("expected welcome or refused")
            self._ws = ws
            self.admitted.set()
            self.on_log(f"admitted by the broker as {answer.name!r} ({self.fingerprint})")
            beat = asyncio.get_running_loop().create_task(self._heartbeats(answer.heartbeat))
            try:
                await self._receive(ws)
            finally:
                beat.cancel()

    def _refused(self, refused: p.Refused) -> None:
        self.on_log(f"refused: {refused.reason}" + (f" {refused.hint}" if refused.hint else ""))
        self.refusals += 1

    async def _heartbeats(self, every: float) -> None:
        while True:
            self._send(p.Heartbeat(self._busy(), self.size, self._draining))
            await asyncio.sleep(every)

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                ref, data = p.split_module_frame(message.data)
                put_blob(self.store / "blobs", data)
                for job_id in self._lacking.pop(ref, []):
                    self._waiting.append(job_id)
                self._dispatch()
            elif message.type == aiohttp.WSMsgType.TEXT:
                command = p.decode(message.data, p.FROM_BROKER)
                if isinstance(command, p.Run):
                    self._accept(command.jobs)
                elif isinstance(command, p.Cancel):
                    self._cancel(command.id)
                elif isinstance(command, p.Drain):
                    self.drain()
                elif isinstance(command, p.Bye):
                    self.on_log(f"the broker closed the connection: {command.reason}")
                    return
            else:
                return

    def _send(self, message: Any) -> None:
        if self._ws is not None and not self._ws.closed:
            frame = p.encode(message)
            asyncio.get_running_loop().create_task(_quietly(self._ws.send_frame(frame, TEXT)))

    # Tasks ------------------------------------------------------------------------------------

    def _accept(self, jobs: list[p.Job]) -> None:
        for job in jobs:
            self._jobs[job.id] = _Running(job)
            if self._draining:
                self._decline(job.id)
            elif blob_path(self.store / "blobs", job.module).is_file():
                self._waiting.append(job.id)
            else:
                first = job.module not in self._lacking
                self._lacking.setdefault(job.module, []).append(job.id)
                if first:
                    self._send(p.Need(job.module))
        self._send_outcomes()
        self._dispatch()

    def _dispatch(self) -> None:
        if not self._waiting or not self._workers:
            return
        share = len(self._waiting) // len(self._workers)
        depth = PER_WORKER + min(BACKLOG_PER_WORKER - PER_WORKER, share // 2)
        for w in self._workers:
            batch = []
            while self._waiting and len(w.jobs) < depth:
                running = self._jobs.get(self._waiting.popleft())
                if running is None:
                    continue
                running.worker = w
                w.jobs.append(running.job.id)
                batch.append((running.job.id, self._spec(running)))
            if batch:
                try:
                    w.conn.send(("run", batch))
                except OSError:
                    self._worker_died(w)

    def _spec(self, running: _Running) -> TaskSpec:
        """What the worker runs; a job with files or a data file gets a fresh folder as `/`."""
        job = running.job
        dirs: tuple[Preopen, ...] = ()
        if job.files or job.datafile:
            root = self.store / "sandboxes"
            root.mkdir(parents=True, exist_ok=True)
            running.sandbox = Path(tempfile.mkdtemp(prefix=f"{job.id}-", dir=root))
            for name, data in job.files.items():
                relative = p.sandbox_name(name)
                if relative is not None:  # the broker refused others; a stray one is skipped
                    target = running.sandbox / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
            dirs = (Preopen(str(running.sandbox), "/", writable=True),)
        limits = job.limits
        return TaskSpec(
            module=job.module,
            args=tuple(job.args),
            env=tuple(job.env.items()),
            stdin=job.stdin,
            dirs=dirs,
            limits=Limits(limits.fuel, limits.memory, limits.timeout, limits.max_output or OUTPUT_CAP),
            name=job.name or job.module,
        )

    def _cancel(self, job_id: str) -> None:
        running = self._jobs.get(job_id)
        if running is None:
            return
        self._handing_back.discard(job_id)  # the broker's cancel: reported as cancelled
        if running.worker is not None:
            with contextlib.suppress(OSError):
                running.worker.conn.send(("cancel", job_id))
            return
        with contextlib.suppress(ValueError):
            self._waiting.remove(job_id)
        for waiting in self._lacking.values():
            with contextlib.suppress(ValueError):
                waiting.remove(job_id)
        self._report(job_id, TaskResult("cancelled", message="cancelled before it started"))

    def _on_readable(self, w: _Worker) -> None:
        try:
            while w.conn.poll():
                message = w.conn.recv()
                kind = message[0]
                if kind == "out":
                    self._output(message[1], message[2], message[3])
                elif kind == "started":
                    if (running := self._jobs.get(message[1])) is not None:
                        running.started = True
                elif kind == "done":
                    with contextlib.suppress(ValueError):
                        w.jobs.remove(message[1])
                    self._report(message[1], message[2])
        except (EOFError, OSError):
            self._worker_died(w)
        self._send_outcomes()
        self._dispatch()
        self._check_drained()

    def _output(self, job_id: str, stream: str, data: bytes) -> None:
        running = self._jobs.get(job_id)
        if running is None:
            return
        kept = running.stdout if stream == "stdout" else running.stderr
        cap = running.job.limits.max_output or OUTPUT_CAP
        kept += data[: max(0, cap - len(kept))]
        if running.job.stream:
            self._send(p.Output(job_id, running.job.attempt, stream, data))

    def _report(self, job_id: str, result: TaskResult) -> None:
        if job_id in self._handing_back:
            self._handing_back.discard(job_id)
            if result.kind == "cancelled":  # stopped because we drain: the broker runs it elsewhere
                self._decline(job_id)
                return
        running = self._jobs.pop(job_id, None)
        if running is None:
            return
        self.done += 1
        datafile = _take_datafile(running) if running.sandbox is not None else None
        self._outcomes.append(
            p.Outcome(
                job_id,
                running.job.attempt,
                result.kind,
                result.exit_code,
                result.message,
                result.duration_ms,
                result.fuel_used,
                bytes(running.stdout),
                bytes(running.stderr),
                datafile,
            )
        )

    def _decline(self, job_id: str) -> None:
        running = self._forget(job_id)
        if running is not None:
            self._outcomes.append(
                p.Outcome(job_id, running.job.attempt, "declined", message="provider draining")
            )

    def _forget(self, job_id: str) -> _Running | None:
        """Drop a job that ends without a result here, and its folder if it had one."""
        running = self._jobs.pop(job_id, None)
        if running is not None and running.sandbox is not None:
            shutil.rmtree(running.sandbox, ignore_errors=True)
        return running

    def _send_outcomes(self) -> None:
        if self._outcomes:
            outcomes, self._outcomes = self._outcomes, []
            self._send(p.Done(outcomes))

    def _drop_all(self) -> None:
        """The link broke: the broker has re-queued everything we held, so stop it all here."""
        for job_id in list(self._jobs):
            self._cancel(job_id)
        self._waiting.clear()
        self._lacking.clear()
        self._outcomes.clear()

    def _busy(self) -> int:
        return sum(min(len(w.jobs), 1) for w in self._workers)

    def _check_drained(self) -> None:
        if self._draining and not any(w.jobs for w in self._workers):
            self._send_outcomes()
            if self._ws is not None and not self._ws.closed:
                ws = self._ws
                asyncio.get_running_loop().call_later(
                    0.05, lambda: asyncio.ensure_future(_quietly(ws.close()))
                )
            self._stopped.set()

    # Worker processes -------------------------------------------------------------------------

    def _spawn(self) -> None:
        process, conn = spawn_worker(self.store)
        w = _Worker(process, conn)
        self._workers.append(w)
        assert self._loop is not None
        self._loop.add_reader(conn.fileno(), self._on_readable, w)

    def _worker_died(self, w: _Worker) -> None:
        assert self._loop is not None
        with contextlib.suppress(OSError, ValueError):
            self._loop.remove_reader(w.conn.fileno())
        with contextlib.suppress(ValueError):
            self._workers.remove(w)
        code = w.process.poll()
        w.conn.close()
        for job_id in w.jobs:
            running = self._forget(job_id)
            if running is not None:
                message = f"the worker process died (exit code {code})"
                self._outcomes.append(p.Outcome(job_id, running.job.attempt, "lost", message=message))
        self.on_log(f"a worker process died (exit code {code}); starting another")
        if not self._draining:
            self._spawn()

    def _stop_workers(self) -> None:
        assert self._loop is not None
        for w in self._workers:
            with contextlib.suppress(OSError, ValueError):
                self._loop.remove_reader(w.conn.fileno())
            with contextlib.suppress(OSError):
                w.conn.send(("stop",))
        # Blocking, briefly: this runs as the provider process ends.
        join_workers([(w.process, w.conn) for w in self._workers])
        self._workers.clear()


def _take_datafile(running: _Running) -> bytes | None:
    """The job's data file from its folder (None if the module left none), and the folder gone."""
    assert running.sandbox is not None
    try:
        name = p.sandbox_name(running.job.datafile) if running.job.datafile else None
        path = (running.sandbox / name).resolve() if name else None
        if path is None or not path.is_relative_to(running.sandbox.resolve()) or not path.is_file():
            return None
        with path.open("rb") as source:
            return source.read(running.job.limits.max_output or OUTPUT_CAP)
    finally:
        shutil.rmtree(running.sandbox, ignore_errors=True)


async def _handshake_message(ws: aiohttp.ClientWebSocketResponse) -> Any:
    message = await ws.receive(timeout=10)
    if message.type != aiohttp.WSMsgType.TEXT:
        raise p.ProtocolError(f"expected a text message in the handshake, got {message.type.name}")
    return p.decode(message.data, p.FROM_BROKER)


async def _quietly(coro: Any) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
        await coro


def worker_count(text: str) -> int:
    """`--workers N|max` -> a number of worker processes (`max`: one per core)."""
    if text == "max":
        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise BerthError(f"--workers {text!r} is not a positive number or 'max'.")
    return int(text)
