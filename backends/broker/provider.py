"""A provider: connects to a broker, proves its Ed25519 key, and runs the tasks it is handed on
its own wasm worker processes, sending results back in batches.

It reconnects with backoff when the broker goes away (or has not paired its key yet: the refusal
names the fingerprint and the pairing command, and it asks again every 2 s) and drains on SIGTERM:
the tasks running finish and are reported, those not started are handed back, then it exits.

A task's failure stays with that task: whatever goes wrong while the provider prepares its folder,
keeps its module, or reads back its data file ends that task alone, as kind "error" with the
reason, and its folder is removed. It never costs a worker, the connection, or another task's
result. No frame it sends is larger than the broker said it takes: results go in several `done`
frames when they must, and one too large on its own has its output cut to fit.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backends import __version__, paths
from backends.broker import keys
from backends.broker import protocol as p
from backends.errors import BerthError
from backends.wasm.blobs import blob_path, put_blob
from backends.wasm.fleet import FleetHooks, WorkerFleet
from backends.wasm.record import describe
from backends.wasm.spec import Limits, Preopen, TaskResult, TaskSpec

PER_WORKER = 2
"""Tasks a worker process holds at least: one running, the next one ready behind it (the broker
hands two per worker); more while a backlog waits, as `WorkerFleet` says."""
BACKOFF = (0.2, 8.0)
"""Seconds before reconnecting to a broker that could not be reached: the first, doubling to the last."""
REFUSED_RETRY = 2.0
"""Seconds before asking again after the broker refused the key (each ask is a write there)."""
JITTER = 0.5
"""Every pause is stretched by up to this share, so providers that lost one broker don't come back
in step."""
TEXT = aiohttp.WSMsgType.TEXT
OUTPUT_CAP = 1024 * 1024
"""Output bytes per stream a result carries when the task set no `max_output` of its own."""
ERROR = "error"
"""The result kind of a task that failed here rather than in its module (see backends.wasm.spec)."""
MESSAGE_CAP = 4096
"""Characters of a result's message or a log line sent to the broker."""
FRAME_SLACK = 4096
"""Bytes of a frame kept free below the broker's limit for the envelope and a result's fixed fields."""
CLIPPED = "(output cut to fit the broker's frame limit)"


def default_store() -> Path:
    """Where a provider keeps the modules it was sent."""
    return paths.data_dir() / "provider-modules"


@dataclass(eq=False)
class _Running:
    job: p.Job
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    sandbox: Path | None = None
    """The folder the module sees as `/`, when the job brings files or wants one back."""
    clipped: bool = False
    """Output was dropped to fit the broker's frame limit (not the task's own `max_output`)."""


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
        hooks = FleetHooks(self._spec_for, self._output, self._report, self._lost, settled=self._settled)
        self._fleet = WorkerFleet(hooks, self.size, self.store, PER_WORKER, self.on_log)
        self._jobs: dict[str, _Running] = {}  # each lacking its module, or in the fleet
        self._lacking: dict[str, list[str]] = {}  # module ref -> jobs waiting for its bytes
        self._outcomes: list[p.Outcome] = []
        self._handing_back: set[str] = set()  # not started when draining began: cancelled in the fleet
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._draining = False
        self._stopped = asyncio.Event()
        self._frame = p.MIN_FRAME - FRAME_SLACK  # most bytes a frame to the broker may hold

    def on_log(self, line: str) -> None:
        """Log a line here, and in the broker's log of this provider while connected."""
        self._on_log(line)
        self._send(p.Log(_bounded(line)))

    # Life cycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the broker until drained: connect, run tasks, reconnect when the link breaks."""
        backoff = BACKOFF[0]
        try:
            self._fleet.start()
            async with aiohttp.ClientSession() as session:
                while not self._draining:
                    refusals = self.refusals
                    try:
                        await self._session(session)
                    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                        self.on_log(f"cannot reach the broker at {self.url}: {exc or type(exc).__name__}")
                    except p.ProtocolError as exc:
                        self.on_log(f"the broker sent something unexpected: {exc.message}")
                    finally:
                        was_admitted = self.admitted.is_set()
                        self._ws = None
                        self.admitted.clear()
                        self._drop_all()
                    if self._draining:
                        break
                    # A refused key asks again every REFUSED_RETRY: it is admitted soon after an
                    # admin pairs it. An unreachable broker gets backoff, from the start again once
                    # a connection had been up.
                    if self.refusals > refusals:
                        pause, backoff = REFUSED_RETRY, BACKOFF[0]
                    else:
                        if was_admitted:
                            backoff = BACKOFF[0]
                        pause, backoff = backoff, min(backoff * 2, BACKOFF[1])
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopped.wait(), pause * (1 + JITTER * random.random()))
        finally:
            await self._fleet.stop()

    def drain(self) -> None:
        """Finish the running tasks, hand back the rest, then end `run()`."""
        if self._draining:
            return
        self._draining = True
        self.on_log("draining: finishing the running tasks, taking no new ones")
        # First, so the broker hands nothing more to us before it gets the tasks we hand back.
        self._send(p.Heartbeat(self._fleet.busy, self.size, draining=True))
        for job_ids in self._lacking.values():
            for job_id in job_ids:
                self._decline(job_id)
        self._lacking.clear()
        # Cancel what has not started, queued or behind a worker's running task, and hand it back
        # (`_report` turns its "cancelled" into "declined"), so draining waits for one task only.
        for job_id in self._fleet.unstarted():
            self._handing_back.add(job_id)
            self._fleet.cancel(job_id)
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
            self._frame = answer.max_frame - FRAME_SLACK
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
            self._send(p.Heartbeat(self._fleet.busy, self.size, self._draining))
            await asyncio.sleep(every)

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                self._module_arrived(message.data)
            elif message.type == aiohttp.WSMsgType.TEXT:
                try:
                    command = p.decode(message.data, p.FROM_BROKER)
                except p.ProtocolError as exc:
                    # One bad message costs that message, not the link and every task on it.
                    self.on_log(f"ignored a bad message from the broker: {exc.message}")
                    continue
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

    def _module_arrived(self, frame: bytes) -> None:
        """Keep a module the broker sent and start the tasks that waited for it; a module that
        does not match its ref, or cannot be kept, fails those tasks alone."""
        ref = frame[: p.REF_LENGTH].decode("ascii", "replace")
        try:
            ref, data = p.split_module_frame(frame)
            put_blob(self.store / "blobs", data)
        except p.ProtocolError as exc:
            self.on_log(exc.message)
            self._fail_lacking(ref, f"the module the broker sent for it does not match its ref {ref}")
        except OSError as exc:
            self._fail_lacking(ref, f"the provider cannot keep the module {ref}: {_why(exc)}")
        else:
            for job_id in self._lacking.pop(ref, []):
                self._fleet.run(job_id)
        self._send_outcomes()

    def _fail_lacking(self, ref: str, message: str) -> None:
        for job_id in self._lacking.pop(ref, []):
            self._fail(job_id, message)

    # Tasks ------------------------------------------------------------------------------------

    def _accept(self, jobs: list[p.Job]) -> None:
        for job in jobs:
            if job.id in self._jobs:  # the broker's mistake: the one running here goes on
                why = f"task {job.id} is already running on this provider"
                self._outcomes.append(p.Outcome(job.id, job.attempt, ERROR, message=_bounded(why)))
                continue
            self._jobs[job.id] = _Running(job)
            try:
                have = blob_path(self.store / "blobs", job.module).is_file()
            except (BerthError, OSError) as exc:  # a module ref that is none, a store we can't read
                self._fail(job.id, f"the provider cannot look up the module {job.module[:80]!r}: {_why(exc)}")
                continue
            if self._draining:
                self._decline(job.id)
            elif have:
                self._fleet.run(job.id)
            else:
                first = job.module not in self._lacking
                self._lacking.setdefault(job.module, []).append(job.id)
                if first:
                    self._send(p.Need(job.module))
        self._send_outcomes()

    def _spec_for(self, job_id: str) -> TaskSpec | None:
        """The task's spec, as the fleet hands it to a worker; None when it cannot be made: then
        the task has failed alone (its result says why, its folder is gone)."""
        running = self._jobs.get(job_id)
        if running is None:
            return None
        try:
            return self._spec(running)
        except _TaskFailed as exc:
            why = str(exc)
        except Exception as exc:  # a provider must outlive any one task
            why = f"the provider could not prepare the task: {exc!r}"
        self._fail(running.job.id, why)
        return None

    def _spec(self, running: _Running) -> TaskSpec:
        """What the worker runs; a job with files or a data file gets a fresh folder as `/`."""
        job = running.job
        dirs: tuple[Preopen, ...] = ()
        if job.files or job.datafile:
            root = self.store / "sandboxes"
            try:
                root.mkdir(parents=True, exist_ok=True)
                # Not named after the job: its id is the broker's text, not a safe file name.
                running.sandbox = Path(tempfile.mkdtemp(prefix="task-", dir=root))
            except OSError as exc:
                raise _TaskFailed(f"the provider cannot make the task's folder: {_why(exc)}") from None
            for name, data in job.files.items():
                relative = p.sandbox_name(name)
                if relative is not None:  # the broker refused others; a stray one is skipped
                    _put_file(running.sandbox, name, relative, data)
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
        if self._fleet.cancel(job_id):
            return
        for waiting in self._lacking.values():
            with contextlib.suppress(ValueError):
                waiting.remove(job_id)
        self._report(job_id, TaskResult("cancelled", message="cancelled before it started"))

    def _output(self, job_id: str, stream: str, data: bytes) -> None:
        running = self._jobs.get(job_id)
        if running is None:
            return
        kept = running.stdout if stream == "stdout" else running.stderr
        asked = running.job.limits.max_output or OUTPUT_CAP
        # No more than one frame's worth: a result never carries more than that.
        cap = min(asked, _raw_room(self._frame))
        if cap < asked and len(kept) + len(data) > cap:
            running.clipped = True
        kept += data[: max(0, cap - len(kept))]
        if running.job.stream:
            piece = max(1024, _raw_room(self._frame - 6 * len(job_id)))
            for start in range(0, len(data), piece):
                self._send(p.Output(job_id, running.job.attempt, stream, data[start : start + piece]))

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
        kind, message, datafile = result.kind, result.message, None
        if running.sandbox is not None:
            try:
                datafile = self._read_datafile(running)
            except OSError as exc:
                kind = ERROR
                message = (
                    f"the task ended ({describe(result)}) but the provider cannot read its data file "
                    f"{running.job.datafile[:80]!r}: {_why(exc)}"
                )
            finally:
                shutil.rmtree(running.sandbox, ignore_errors=True)
        if running.clipped:
            message = _noting_clipped(message)
        self._outcomes.append(
            p.Outcome(
                job_id,
                running.job.attempt,
                kind,
                result.exit_code,
                _bounded(message),
                result.duration_ms,
                result.fuel_used,
                bytes(running.stdout),
                bytes(running.stderr),
                datafile,
            )
        )

    def _read_datafile(self, running: _Running) -> bytes | None:
        """The job's data file from its folder (None if the module left none); OSError when it
        is there but cannot be read."""
        assert running.sandbox is not None
        name = p.sandbox_name(running.job.datafile) if running.job.datafile else None
        path = (running.sandbox / name).resolve() if name else None
        if path is None or not path.is_relative_to(running.sandbox.resolve()) or not path.is_file():
            return None
        limit = min(running.job.limits.max_output or OUTPUT_CAP, _raw_room(self._frame))
        with path.open("rb") as source:
            return source.read(limit)

    def _fail(self, job_id: str, why: str) -> None:
        """The task failed here, not in its module: report it alone, saying why; drop its folder."""
        running = self._forget(job_id)
        if running is None:
            return
        self.done += 1
        self._outcomes.append(p.Outcome(job_id, running.job.attempt, ERROR, message=_bounded(why)))

    def _lost(self, job_id: str, why: str) -> None:
        """Its worker died running it: the broker tries it elsewhere ("lost")."""
        running = self._forget(job_id)
        if running is not None:
            self._outcomes.append(p.Outcome(job_id, running.job.attempt, "lost", message=_bounded(why)))

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
        """Send the results gathered, in as few `done` frames as fit the broker's frame limit."""
        if not self._outcomes:
            return
        outcomes, self._outcomes = self._outcomes, []
        batch: list[p.Outcome] = []
        size = 0
        for outcome in outcomes:
            fitted = _fit(outcome, self._frame)
            cost = _encoded_bound(fitted)
            if batch and size + cost > self._frame:
                self._send(p.Done(batch))
                batch, size = [], 0
            batch.append(fitted)
            size += cost
        self._send(p.Done(batch))

    def _drop_all(self) -> None:
        """The link broke: the broker has re-queued everything we held, so stop it all here."""
        for job_id in list(self._jobs):
            self._cancel(job_id)
        self._lacking.clear()
        self._outcomes.clear()

    def _settled(self) -> None:
        """The fleet has read its workers: send the results gathered; end a drain that is done."""
        self._send_outcomes()
        self._check_drained()

    def _check_drained(self) -> None:
        if self._draining and not self._fleet.pending:
            self._send_outcomes()
            if self._ws is not None and not self._ws.closed:
                ws = self._ws
                asyncio.get_running_loop().call_later(
                    0.05, lambda: asyncio.ensure_future(_quietly(ws.close()))
                )
            self._stopped.set()


class _TaskFailed(Exception):
    """Preparing one task failed; the message says why, as its result will."""


def _put_file(folder: Path, name: str, relative: str, data: bytes) -> None:
    """Write one of a task's files into its folder; _TaskFailed names the file and why not."""
    target = folder / relative
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise _TaskFailed(
            f"the task's file {name[:80]!r} clashes with another of its files: "
            "one name cannot be both a file and a folder"
        ) from None
    except OSError as exc:
        raise _TaskFailed(f"the provider cannot write the task's file {name[:80]!r}: {_why(exc)}") from None


def _why(exc: BaseException) -> str:
    """An error's reason without the provider's own paths in it."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _bounded(text: str) -> str:
    """`text` cut to MESSAGE_CAP characters, with anything UTF-8 cannot carry replaced."""
    if len(text) > MESSAGE_CAP:
        text = text[: MESSAGE_CAP - 1] + "…"
    return text.encode("utf-8", "replace").decode("utf-8")


def _raw_room(encoded: int) -> int:
    """Most raw bytes whose base64 fits in `encoded` bytes."""
    return max(0, encoded) // 4 * 3


def _b64(size: int) -> int:
    return (size + 2) // 3 * 4


_json = msgspec.json.Encoder().encode


def _encoded_bound(outcome: p.Outcome) -> int:
    """At most how many bytes an outcome takes in a `done` frame: its strings as JSON, its bytes
    as base64, and 256 for the field names, numbers and punctuation."""
    text = sum(len(_json(s)) for s in (outcome.id, outcome.kind, outcome.message))
    data = _b64(len(outcome.stdout)) + _b64(len(outcome.stderr)) + _b64(len(outcome.datafile or b""))
    return text + data + 256


def _fit(outcome: p.Outcome, frame: int) -> p.Outcome:
    """`outcome`, its output and data file cut (the largest first) so it fits in one frame."""
    if _encoded_bound(outcome) <= frame:
        return outcome
    message = _noting_clipped(outcome.message)
    fixed = _encoded_bound(
        msgspec.structs.replace(outcome, message=message, stdout=b"", stderr=b"", datafile=None)
    )
    sizes = [len(outcome.stdout), len(outcome.stderr), len(outcome.datafile or b"")]
    keep = _share(sizes, _raw_room(frame - fixed) - 3 * 3)  # 3 * 3: base64's padding, per field
    return msgspec.structs.replace(
        outcome,
        message=message,
        stdout=outcome.stdout[: keep[0]],
        stderr=outcome.stderr[: keep[1]],
        datafile=None if outcome.datafile is None else outcome.datafile[: keep[2]],
    )


def _noting_clipped(message: str) -> str:
    return message if message.endswith(CLIPPED) else f"{message} {CLIPPED}".lstrip()


def _share(sizes: list[int], room: int) -> list[int]:
    """How much of each size to keep within `room` in all: the small ones whole, the rest evenly."""
    keep = [0] * len(sizes)
    left = max(0, room)
    for done, i in enumerate(sorted(range(len(sizes)), key=sizes.__getitem__)):
        keep[i] = min(sizes[i], left // (len(sizes) - done))
        left -= keep[i]
    return keep


async def _handshake_message(ws: aiohttp.ClientWebSocketResponse) -> Any:
    message = await ws.receive(timeout=10)
    if message.type != aiohttp.WSMsgType.TEXT:
        raise p.ProtocolError(f"expected a text message in the handshake, got {message.type.name}")
    return p.decode(message.data, p.FROM_BROKER)


async def _quietly(coro: Any) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
        await coro

