"""Hosts berth manages and how to reach their engines.

A host is `local` or `ssh://user@host[:port]`. A `HostSession` turns either into local unix
sockets for its Docker and LXD (an SSH host's forwarded through one connection), so every backend
runs the same code here and far away. Probes are one small HTTP request per socket, so the header
can say which engines are up without loading an SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from backends import paths
from backends.config import Config, HostConfig
from backends.errors import BerthError, HostKeyChanged, HostKeyUnknown, NotFound, Unreachable

if TYPE_CHECKING:
    import asyncssh

DOCKER_SOCKETS = ("/var/run/docker.sock",)
LXD_SOCKETS = (
    "/var/lib/lxd/unix.socket",
    "/var/snap/lxd/common/lxd/unix.socket",
    "/var/lib/incus/unix.socket",
)
PROBE_TIMEOUT = 2.0


@dataclass
class EngineState:
    """What a probe found for one engine on one host."""

    engine: str
    state: str  # "up", "down" (socket there, no answer) or "absent" (no socket)
    socket: str | None = None
    latency_ms: float | None = None
    detail: str = ""


@dataclass
class HostState:
    """A host's reachability and its engines, as last probed."""

    name: str
    url: str
    state: str  # a HostSession state; a local host is "online" when an engine answers
    engines: list[EngineState] = field(default_factory=list)
    detail: str = ""

    @property
    def latency_ms(self) -> float | None:
        """The quickest engine ping (through the tunnel for SSH hosts), if any answered."""
        times = [e.latency_ms for e in self.engines if e.latency_ms is not None]
        return min(times) if times else None


def docker_socket_candidates(host: HostConfig) -> list[str]:
    """Where the Docker socket may be for `host`: the inventory's, then `DOCKER_HOST`, then default."""
    if host.docker_socket:
        return [host.docker_socket]
    env = os.environ.get("DOCKER_HOST", "")
    if env.startswith("unix://"):
        return [env.removeprefix("unix://")]
    return list(DOCKER_SOCKETS)


def lxd_socket_candidates(host: HostConfig) -> list[str]:
    """Where the LXD socket may be for `host`: the inventory's, then `LXD_DIR`, then the defaults."""
    if host.lxd_socket:
        return [host.lxd_socket]
    env = os.environ.get("LXD_DIR")
    return [str(Path(env) / "unix.socket")] if env else list(LXD_SOCKETS)


async def _http_status(socket_path: str, request_path: str) -> int:
    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        writer.write(f"GET {request_path} HTTP/1.0\r\nHost: berth\r\n\r\n".encode())
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    parts = status_line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


async def probe_engine(engine: str, candidates: list[str], request_path: str) -> EngineState:
    """Ping the first socket of `candidates` that exists with one GET of `request_path`."""
    for socket_path in candidates:
        if not Path(socket_path).exists():
            continue
        started = time.perf_counter()
        try:
            status = await asyncio.wait_for(_http_status(socket_path, request_path), PROBE_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            return EngineState(engine, "down", socket_path, detail=reason)
        latency = (time.perf_counter() - started) * 1000
        if status == 200:
            return EngineState(engine, "up", socket_path, round(latency, 1))
        return EngineState(engine, "down", socket_path, detail=f"HTTP {status}")
    return EngineState(engine, "absent", detail="no socket at " + ", ".join(candidates))


RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds between connection attempts: capped exponential backoff, quick at first."""
REMOTE_PROBE_TIMEOUT = 10.0
_FIND_SOCKETS = 'for p in "$@"; do [ -S "$p" ] && echo "$p"; done; exit 0'


@dataclass
class CommandResult:
    """What a command run on a host returned: its exit status and its output (stderr folded in)."""

    returncode: int
    output: str


class _LineReader(Protocol):
    async def readline(self) -> bytes:
        """The next line, or b"" at the end."""
        ...


@dataclass
class Spawned:
    """A command started with `HostSession.spawn`: its output lines, and how to end it."""

    output: _LineReader
    stop: Callable[[], object]
    _wait: Callable[[], Awaitable[object]]

    async def lines(self) -> AsyncIterator[str]:
        """Its output (stdout and stderr together), line by line, until it ends."""
        while line := await self.output.readline():
            yield line.decode("utf-8", "replace").rstrip("\r\n")

    async def wait(self) -> None:
        """Until it has ended."""
        await self._wait()


class HostSession:
    """A host's engines as local unix sockets, and a way to run commands there.

    For `local` the engines' own sockets are used. For an SSH host, **one** connection is kept
    open; the remote Docker and LXD sockets are forwarded to private sockets in berth's runtime
    folder (0600 in a 0700 folder) whose paths never change, so a backend made once keeps working
    across reconnects. When the connection drops the session turns "reconnecting" and tries again
    with capped exponential backoff. States: local, connecting, online, offline (never connected
    yet, retrying), reconnecting, untrusted (an unknown host key waits for the user's `trust()`)
    and refused (the host key changed; no retries).
    """

    def __init__(
        self,
        host: HostConfig,
        resolve: Callable[[str], HostConfig | None] = lambda _name: None,
        *,
        accept_new: bool = False,
    ) -> None:
        self.host = host
        self.state = "local" if host.is_local else "connecting"
        self.error: BerthError | None = None
        self.version = 0  # counts state changes, so a waiter cannot miss one
        self.connects = 0
        self._resolve = resolve
        self._accept_new = accept_new
        self._conn: asyncssh.SSHClientConnection | None = None
        self._remote: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed: asyncio.Event | None = None
        self._trusted: asyncio.Event | None = None
        self._listeners: list[Callable[[HostSession], None]] = []
        self._runtime: Path | None = None
        self._prefix = f"{os.getpid()}-{hashlib.sha1(host.url.encode()).hexdigest()[:12]}"

    # State -------------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[HostSession], None]) -> Callable[[], None]:
        """Call `listener(session)` on every state change; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _set(self, state: str, error: BerthError | None = None) -> None:
        self.state, self.error = state, error
        self.version += 1
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()
        for listener in list(self._listeners):
            listener(self)

    async def changed(self, since: int | None = None) -> None:
        """Wait until the state changes after `version` was `since` (default: from now on)."""
        seen = self.version if since is None else since
        while self.version == seen:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    @property
    def online(self) -> bool:
        """True for a local host, and for an SSH host while its connection is up."""
        return self.state in ("local", "online")

    def start(self) -> None:
        """Begin connecting (SSH hosts) in the background; calling it again does nothing."""
        if self.host.is_local or self._task is not None:
            return
        self._runtime = paths.runtime_dir()
        sweep_stale_sockets(self._runtime)
        self._task = asyncio.create_task(self._supervise(), name=f"ssh {self.host.name}")

    async def ready(self) -> None:
        """Wait for the connection's first outcome; raise the error when it is not up."""
        self.start()
        while self.state == "connecting" or (self.state == "reconnecting" and self.error is None):
            await self.changed()
        if not self.online:
            raise self.error or Unreachable(f"{self.host.name} is {self.state}.")

    def trust(self) -> None:
        """Record the unknown host key the user has accepted and connect again."""
        if isinstance(self.error, HostKeyUnknown) and self._trusted is not None:
            self.error.record()
            self._trusted.set()

    # Connection --------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        # asyncssh loads only when a host is remote: local-only runs start faster without it.
        from backends.ssh import connect

        attempt = 0
        while True:
            try:
                conn = await connect(self.host, self._resolve, accept_new=self._accept_new)
                try:
                    await self._forward(conn)
                except BaseException:
                    conn.close()
                    raise
            except HostKeyUnknown as exc:
                self._trusted = asyncio.Event()
                self._set("untrusted", exc)
                await self._trusted.wait()
                self._set("connecting")
                continue
            except HostKeyChanged as exc:
                self._set("refused", exc)
                return
            except BerthError as exc:
                self._set("reconnecting" if self.connects else "offline", exc)
                await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
                attempt += 1
                continue
            attempt = 0
            self.connects += 1
            self._conn = conn
            self._set("online")
            await conn.wait_closed()
            self._conn = None
            self._set("reconnecting")

    async def _forward(self, conn: asyncssh.SSHClientConnection) -> None:
        """Find the engine sockets on the host and forward each to its fixed local path."""
        import asyncssh

        wanted = {engine: socket_candidates(self.host, engine) for engine in ("docker", "lxd")}
        everything = [path for paths_ in wanted.values() for path in paths_]
        # This exec must stay the connection's first session: sshd turns TCP_NODELAY on when the
        # first session starts and never for a forward-only connection, where ~10 % of engine
        # calls stall ~44 ms (tests/bench/bench_hosts.py, "forward-only").
        try:
            result = await asyncio.wait_for(
                conn.run(shlex.join(["sh", "-c", _FIND_SOCKETS, "sh", *everything]), check=False),
                REMOTE_PROBE_TIMEOUT,
            )
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise Unreachable(f"{self.host.name} did not answer a command over SSH: {exc}.") from exc
        present = set(str(result.stdout or "").split())
        remote: dict[str, str] = {}
        for engine, candidates in wanted.items():
            found = next((c for c in candidates if c in present), None)
            if found is None:
                continue
            local = self.local_socket(engine)
            local.unlink(missing_ok=True)  # asyncssh never removes a socket file it listened on
            try:
                await conn.forward_local_path(str(local), found)
            except (OSError, asyncssh.Error) as exc:
                raise Unreachable(f"Could not forward {engine} from {self.host.name}: {exc}.") from exc
            local.chmod(0o600)
            remote[engine] = found
        self._remote = remote

    def local_socket(self, engine: str) -> Path:
        """Where `engine`'s forwarded socket lives here (the same path across reconnects)."""
        if self._runtime is None:
            self._runtime = paths.runtime_dir()  # made (0700) once, not on every call
        return self._runtime / f"{self._prefix}-{engine}.sock"

    async def socket(self, engine: str) -> str:
        """A unix socket here that reaches `engine` ("docker" or "lxd") on this host."""
        if self.host.is_local:
            candidates = socket_candidates(self.host, engine)
            return next((c for c in candidates if Path(c).exists()), candidates[0])
        await self.ready()
        if engine not in self._remote:
            looked = ", ".join(socket_candidates(self.host, engine))
            raise NotFound(
                f"No {engine} socket on {self.host.name} (looked at {looked}).",
                f"Set {engine}_socket for this host in the inventory if it lives elsewhere.",
            )
        return str(self.local_socket(engine))

    async def remote_socket(self, engine: str) -> str:
        """`engine`'s socket as the host itself sees it (for commands run there)."""
        local = await self.socket(engine)
        return local if self.host.is_local else self._remote[engine]

    async def run(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
    ) -> CommandResult:
        """Run `argv` on the host (here, or over the SSH connection) and collect its output."""
        if self.host.is_local:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env={**os.environ, **(env or {})},
                cwd=cwd if cwd and Path(cwd).is_dir() else None,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await proc.communicate()
            return CommandResult(proc.returncode or 0, out.decode("utf-8", "replace"))
        import asyncssh

        await self.ready()
        assert self._conn is not None
        command = shlex.join(argv)
        if env:
            command = f"env {shlex.join(f'{k}={v}' for k, v in env.items())} {command}"
        if cwd:
            command = f"cd {shlex.quote(cwd)} 2>/dev/null; {command}"
        try:
            result = await self._conn.run(command, check=False, stderr=asyncssh.STDOUT)
        except (OSError, asyncssh.Error) as exc:
            raise Unreachable(f"Lost {self.host.name} while running {argv[0]}: {exc}.") from exc
        code = result.exit_status if result.exit_status is not None else 255
        return CommandResult(code, str(result.stdout or ""))

    async def forward_back(self, port: int) -> int:
        """Make our loopback `port` reachable from the host: the port on the host's 127.0.0.1 that
        leads here (a reverse tunnel over the SSH connection; `port` itself for `local`)."""
        if self.host.is_local:
            return port
        import asyncssh

        await self.ready()
        assert self._conn is not None
        try:
            listener = await self._conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", port)
        except (OSError, asyncssh.Error) as exc:
            raise Unreachable(f"{self.host.name} refused a port forward back to berth: {exc}.") from exc
        return int(listener.get_port())

    async def spawn(self, argv: Sequence[str]) -> Spawned:
        """Start a long-running command on the host; it ends with `Spawned.stop()` or the connection.

        Over SSH it gets a terminal, so the host ends it (SIGHUP) when berth goes away.
        """
        if self.host.is_local:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            assert proc.stdout is not None
            return Spawned(proc.stdout, proc.terminate, proc.wait)
        import asyncssh

        await self.ready()
        assert self._conn is not None
        try:
            remote = await self._conn.create_process(shlex.join(argv), term_type="dumb", encoding=None)
        except (OSError, asyncssh.Error) as exc:
            raise Unreachable(f"Lost {self.host.name} while starting {argv[0]}: {exc}.") from exc
        return Spawned(remote.stdout, remote.close, remote.wait_closed)

    async def close(self) -> None:
        """Drop the connection and remove the forwarded sockets."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._conn is not None:
            self._conn.close()
            with contextlib.suppress(Exception):
                await self._conn.wait_closed()
            self._conn = None
        if not self.host.is_local:
            for engine in ("docker", "lxd"):
                self.local_socket(engine).unlink(missing_ok=True)


def socket_candidates(host: HostConfig, engine: str) -> list[str]:
    """Where `engine`'s socket may be on `host`: the inventory's first, then the usual places.

    Only a local host looks at this process's `DOCKER_HOST` and `LXD_DIR`.
    """
    if host.is_local:
        return docker_socket_candidates(host) if engine == "docker" else lxd_socket_candidates(host)
    configured = host.docker_socket if engine == "docker" else host.lxd_socket
    return [configured] if configured else list(DOCKER_SOCKETS if engine == "docker" else LXD_SOCKETS)


def sweep_stale_sockets(folder: Path) -> None:
    """Remove forwarded sockets left by berth processes that are gone (they crashed or were killed)."""
    for path in folder.glob("*.sock"):
        pid = path.name.split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:
            continue


class Sessions:
    """One `HostSession` per inventory host, made on first use and shared by every pane and verb."""

    def __init__(self, config: Config, *, accept_new: bool = False) -> None:
        self.config = config
        self.accept_new = accept_new
        self._sessions: dict[tuple[str, str], HostSession] = {}

    def get(self, host: HostConfig) -> HostSession:
        """The session of `host`, connecting in the background if it is new."""
        key = (host.name, host.url)
        session = self._sessions.get(key)
        if session is None:
            session = HostSession(host, self.config.host, accept_new=self.accept_new)
            self._sessions[key] = session
        session.start()
        return session

    async def close(self) -> None:
        """Close every session."""
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions))


def _what_failed(error: BerthError | None) -> str:
    return error.message if error is not None else ""


async def probe_host(session: HostSession, *, wait: bool = True) -> HostState:
    """The host's state and its engines' (each pinged through its socket, concurrently).

    With `wait`, an SSH host's connection attempt in progress is waited for; without, a host that
    is not connected is reported as it stands (for a UI that probes again on every change).
    """
    host = session.host
    if not session.online:
        if not wait:
            # What failed, without the advice: a header and a one-shot `berth hosts` show it alike.
            return HostState(host.name, host.url, session.state, detail=_what_failed(session.error))
        try:
            await session.ready()
        except BerthError as exc:
            return HostState(host.name, host.url, session.state, detail=_what_failed(exc))

    async def engine(name: str, request_path: str) -> EngineState:
        try:
            path = await session.socket(name)
        except NotFound as exc:
            return EngineState(name, "absent", detail=exc.message)
        except BerthError as exc:
            return EngineState(name, "down", detail=exc.message)
        return await probe_engine(name, [path], request_path)

    engines = list(await asyncio.gather(engine("docker", "/_ping"), engine("lxd", "/1.0")))
    if host.is_local:
        state = "online" if any(e.state == "up" for e in engines) else "offline"
    else:
        state = session.state
    return HostState(host.name, host.url, state, engines)
