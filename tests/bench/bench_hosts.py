"""Benchmark for hosts over SSH (issue 4), run against a private dockerd and sshd this script starts.

    cd /work/main && sudo /tmp/venv/bin/python -m tests.bench.bench_hosts [--json PATH] [--runs 50]

A private dockerd holds ~20 busybox containers; a private OpenSSH sshd listens on 127.0.0.1. The
container list (``all=True``, one request) is timed N times each way, in interleaved rounds so
that other work on the machine hits every way alike:

a. berth's ``DockerBackend`` on the engine's unix socket;
b. the same backend through berth's SSH tunnel (``HostSession`` forwarding the remote socket);
c. the docker CLI over SSH (``DOCKER_HOST=ssh://...`` -> ``ssh ... docker system dial-stdio``);
d. the docker CLI on the unix socket, for context.

Then tunnel/local (target <= 1.5x) and CLI-over-SSH/tunnel (target >= 10x). Diagnostics (skip
with ``--no-diagnostics``) explain the tunnel's cost: whether sshd's end of the connection has
TCP_NODELAY (read from sshd's own socket with pidfd_getfd), the same tunnel with asyncssh's
default cipher chacha20-poly1305 instead of the AES-GCM berth prefers (set in the private
``~/.ssh/config``, which berth reads and then leaves the ciphers alone), and a
bare asyncssh forward on a connection that never opened a session (sshd then leaves Nagle on).

Safety: the remote side of the CLI runs ``docker`` with ``DOCKER_HOST`` set by the test sshd's
``SetEnv`` to the private engine; that is checked over SSH before any docker command runs there,
and the CLI's list must name the private engine's containers. Nothing uses /var/run/docker.sock.
Network: 127.0.0.1 and unix sockets only. Figures go to stdout (and ``--json PATH``), progress
to stderr; everything started is stopped by PID before the script exits, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import math
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.bench.bench_containers import (
    BenchError,
    clean_env,
    code_version,
    fmt,
    load_average,
    machine_info,
    median,
    p95,
    print_table,
    progress,
    remove_containers,
    run_and_report,
    sdk_client,
    verdict,
    wait_quiet,
)

# Importing bench_containers put tests/ (for `engines`) and the repo on sys.path.

if TYPE_CHECKING:
    import asyncssh
    import docker
    from engines.dockerd import DockerEngine
    from engines.sshd import SshServer

    from backends.docker import DockerBackend
    from backends.hosts import HostSession

CONTAINER_PREFIX = "bench-h"
TUNNEL_TARGET = 1.5
"""Tunnel median over local median: at most this."""
CLI_TARGET = 10.0
"""docker CLI over SSH median over tunnel median: at least this."""
STALL_MS = 20.0
"""A call this slow counts as a stall (the local median is ~1 ms; a Nagle stall is ~40 ms)."""
WARMUP = 5
CHACHA = "chacha20-poly1305@openssh.com"
"""asyncssh's default cipher, which berth replaces with AES-GCM unless the SSH config names one."""
CHACHA_ALIAS = "bench-chacha"
"""A ``Host`` in the private ~/.ssh/config: 127.0.0.1 with ``Ciphers`` :data:`CHACHA`."""
SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture (since 5.6)


class Ways:
    """The names of the ways a container list is taken, as keys of the figures."""

    LOCAL = "berth backend, local socket"
    TUNNEL = "berth backend, SSH tunnel (HostSession)"
    CLI_SSH = "docker CLI, DOCKER_HOST=ssh://"
    CLI_LOCAL = "docker CLI, local socket"
    TUNNEL_CHACHA = "diag: SSH tunnel, chacha20-poly1305"
    RAW_NO_SESSION = "diag: asyncssh forward, no session"


@dataclass
class Timings:
    """Wall seconds of each call of one way, and what the bench learnt about that way."""

    way: str
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    """This process's CPU time per call (the backend ways: aiohttp, and asyncssh for a tunnel)."""
    notes: dict[str, Any] = field(default_factory=dict)

    def ms(self) -> list[float]:
        """The calls in milliseconds."""
        return [s * 1000 for s in self.seconds]

    def stalls(self) -> int:
        """Calls of at least :data:`STALL_MS`."""
        return sum(1 for x in self.ms() if x >= STALL_MS)

    def as_json(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        ms = self.ms()
        return {
            "way": self.way,
            "calls": len(ms),
            "median_ms": median(ms),
            "p95_ms": p95(ms),
            "min_ms": min(ms, default=math.nan),
            "max_ms": max(ms, default=math.nan),
            "stalls": self.stalls(),
            "cpu_median_ms": median([c * 1000 for c in self.cpu_seconds]),
            "notes": self.notes,
            "ms": ms,
        }


# --- the private home: berth's ~ and the ssh client's config ------------------------------------


@dataclass
class Home:
    """The bench's private folders: HOME for berth (known_hosts), the ssh client's config and
    wrapper, the docker CLI's config and the runtime folder for berth's forwarded sockets.
    """

    root: Path

    @property
    def home(self) -> Path:
        """``$HOME`` for this process and the docker CLI."""
        return self.root / "home"

    @property
    def bin(self) -> Path:
        """Put first on the CLI's PATH: holds the ``ssh`` wrapper."""
        return self.root / "bin"

    @property
    def ssh_config(self) -> Path:
        """The ssh client's only config file (``ssh -F``)."""
        return self.root / "ssh_config"

    @property
    def ssh_calls(self) -> Path:
        """The wrapper appends one line per ssh started, so calls per ``docker ps`` can be counted."""
        return self.root / "ssh-calls.log"

    @property
    def runtime(self) -> Path:
        """``XDG_RUNTIME_DIR``: berth's forwarded sockets go under it."""
        return self.root / "run"


def prepare_home(root: Path) -> Home:
    """Make the folders of :class:`Home` under ``root``."""
    home = Home(root)
    (home.home / ".ssh").mkdir(parents=True, mode=0o700)
    home.bin.mkdir(mode=0o700)
    home.runtime.mkdir(mode=0o700)
    return home


def trust_sshd(home: Home, ssh_binary: str, sshd: SshServer) -> None:
    """Write what berth and the ssh client need for ``sshd``: known_hosts, config, the wrapper.

    OpenSSH's client takes ``~`` from the password database, not from ``$HOME``, so a private
    HOME cannot redirect its config: the CLI finds a wrapper named ``ssh`` first on its PATH that
    runs the real one with ``-F`` (which also skips /etc/ssh/ssh_config and its SendEnv).
    """
    (home.home / ".ssh" / "known_hosts").write_text(sshd.known_hosts.read_text())
    # An alias only the cipher diagnostic uses: its own URL, so its own forwarded socket path.
    (home.home / ".ssh" / "config").write_text(
        f"Host {CHACHA_ALIAS}\n  HostName {sshd.host}\n  Ciphers {CHACHA}\n"
    )
    home.ssh_config.write_text(
        "Host *\n"
        f"  IdentityFile {sshd.client_key}\n"
        "  IdentitiesOnly yes\n"
        "  IdentityAgent none\n"
        f"  UserKnownHostsFile {sshd.known_hosts}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n"
        "  UpdateHostKeys no\n"
        "  BatchMode yes\n"
        "  ControlMaster no\n"
        "  ControlPath none\n"
        "  GSSAPIAuthentication no\n"
        "  ForwardAgent no\n"
        "  LogLevel ERROR\n"
    )
    wrapper = home.bin / "ssh"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {shlex.quote(str(home.ssh_calls))}\n'
        f'exec {shlex.quote(ssh_binary)} -F {shlex.quote(str(home.ssh_config))} "$@"\n'
    )
    wrapper.chmod(0o700)


def use_private_home(home: Home) -> None:
    """Point this process at the private home before berth reads anything from it.

    berth's SSH code reads ``~/.ssh/config`` and ``~/.ssh/known_hosts`` through ``$HOME``, puts
    its forwarded sockets under ``$XDG_RUNTIME_DIR`` and would offer keys from ssh-agent.
    """
    env = clean_env(home.home)
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
        os.environ[key] = env[key]
    os.environ["XDG_RUNTIME_DIR"] = str(home.runtime)
    for var in ("SSH_AUTH_SOCK", "DOCKER_HOST", "DOCKER_CONTEXT", "BERTH_CONFIG", "LXD_DIR"):
        os.environ.pop(var, None)


def cli_env(home: Home, docker_host: str | None) -> dict[str, str]:
    """Environment for the docker CLI: private config, the ssh wrapper first on PATH, no agent."""
    env = clean_env(home.home)
    env.pop("SSH_AUTH_SOCK", None)
    Path(env["DOCKER_CONFIG"]).mkdir(parents=True, exist_ok=True)
    env["PATH"] = f"{home.bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    if docker_host is not None:
        env["DOCKER_HOST"] = docker_host
    return env


# --- sshd's end of a connection ------------------------------------------------------------------


def sshd_nodelay(sshd: SshServer, client_port: int) -> bool | None:
    """Whether sshd's socket for the connection from ``client_port`` has TCP_NODELAY set.

    Reads the option from sshd's own socket: a duplicate is taken with pidfd_getfd (Linux 5.6+,
    needs ptrace rights: root). None when that is not possible.
    """
    from engines import children, descendants

    libc = ctypes.CDLL(None, use_errno=True)
    for pid in sorted(descendants(children(sshd.pid))):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            for name in fds:
                with contextlib.suppress(OSError):
                    if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                        continue
                dup = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
                if dup < 0:
                    continue
                with socket.socket(fileno=dup) as sock:
                    if sock.family != socket.AF_INET or sock.type != socket.SOCK_STREAM:
                        continue
                    with contextlib.suppress(OSError):
                        if sock.getsockname()[1] == sshd.port and sock.getpeername()[1] == client_port:
                            return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        finally:
            os.close(pidfd)
    return None


def connection_notes(conn: asyncssh.SSHClientConnection | None, sshd: SshServer) -> dict[str, Any]:
    """Cipher, compression and TCP_NODELAY on both ends of an asyncssh connection."""
    if conn is None:
        return {}
    sock = conn.get_extra_info("socket")
    notes: dict[str, Any] = {
        "cipher": conn.get_extra_info("send_cipher"),
        "compression": conn.get_extra_info("send_compression"),
    }
    if sock is not None:
        notes["client_nodelay"] = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        notes["sshd_nodelay"] = sshd_nodelay(sshd, int(sock.getsockname()[1]))
    return notes


# --- berth's backend: local, tunnelled, and the diagnostics --------------------------------------


async def open_session(
    sshd: SshServer, engine: DockerEngine, via: str | None = None
) -> tuple[HostSession, DockerBackend, float]:
    """A ``HostSession`` on the test sshd forwarding the test engine's socket, and its backend;
    the seconds until it was up (connect, authenticate, find the socket, forward). ``via``: a
    host name for the URL instead of sshd's address (an alias of the private ~/.ssh/config).
    """
    from backends.config import HostConfig
    from backends.docker import DockerBackend
    from backends.hosts import HostSession

    url = sshd.url if via is None else f"ssh://{sshd.user}@{via}:{sshd.port}"
    host = HostConfig("bench", url=url, identity=str(sshd.client_key), docker_socket=str(engine.socket))
    session = HostSession(host)
    start = time.perf_counter()
    try:
        backend = await DockerBackend.for_session(session)
    except BaseException:
        await session.close()
        raise
    return session, backend, time.perf_counter() - start


@dataclass
class Bare:
    """An asyncssh connection that only forwards the engine socket (never opens a session)."""

    conn: asyncssh.SSHClientConnection
    socket: Path

    async def close(self) -> None:
        """Close the connection and remove the forwarded socket file."""
        self.conn.close()
        with contextlib.suppress(Exception):
            await self.conn.wait_closed()
        self.socket.unlink(missing_ok=True)


async def open_bare_forward(sshd: SshServer, engine: DockerEngine, folder: Path) -> Bare:
    """The engine socket forwarded on a connection where no session (exec, shell) ever ran.

    sshd sets TCP_NODELAY on its socket when the first session starts; a connection used only for
    forwarding never gets it, which is what the "Seen on this machine" note measured.
    """
    import asyncssh

    conn = await asyncssh.connect(**sshd.asyncssh_options())
    local = folder / "bare-docker.sock"
    local.unlink(missing_ok=True)
    try:
        await conn.forward_local_path(str(local), str(engine.socket))
    except BaseException:
        conn.close()
        raise
    return Bare(conn, local)


async def response_bytes(backend: DockerBackend) -> int:
    """Size of one ``/containers/json?all=1`` answer body."""
    async with backend.http.request("GET", "/containers/json", "listing containers", params={"all": 1}) as r:
        return len(await r.read())


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds of one awaited call.

    ``containers()`` lists all, stopped ones too. The loop runs nothing else meanwhile, so the
    CPU is the call's own (for a tunnel: the HTTP client and the SSH forwarding together).
    """
    cpu = time.process_time()
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start, time.process_time() - cpu


async def measure_backends(
    args: argparse.Namespace, engine: DockerEngine, sshd: SshServer, home: Home, names: list[str]
) -> tuple[list[Timings], dict[str, Any]]:
    """Ways a and b (and the diagnostics): warm-up, then N interleaved rounds of list calls."""
    from backends.docker import DockerBackend

    info: dict[str, Any] = {}
    backends: dict[str, DockerBackend] = {}
    closers: list[Callable[[], Awaitable[None]]] = []
    timings: dict[str, Timings] = {}
    try:
        local = DockerBackend("local", str(engine.socket))
        closers.append(local.close)
        backends[Ways.LOCAL] = local
        progress("berth: opening the SSH session (HostSession)")
        session, tunnel, up = await open_session(sshd, engine)
        closers += [tunnel.close, session.close]
        backends[Ways.TUNNEL] = tunnel
        info["session_up_seconds"] = up
        timings[Ways.TUNNEL] = Timings(Ways.TUNNEL, notes=connection_notes(session._conn, sshd))
        if args.diagnostics:
            # berth reads ~/.ssh/config like OpenSSH does: a user could set this today.
            chacha_session, chacha_tunnel, _ = await open_session(sshd, engine, via=CHACHA_ALIAS)
            closers += [chacha_tunnel.close, chacha_session.close]
            backends[Ways.TUNNEL_CHACHA] = chacha_tunnel
            timings[Ways.TUNNEL_CHACHA] = Timings(
                Ways.TUNNEL_CHACHA, notes=connection_notes(chacha_session._conn, sshd)
            )
            bare = await open_bare_forward(sshd, engine, home.runtime)
            closers.append(bare.close)
            backends[Ways.RAW_NO_SESSION] = DockerBackend("bare", str(bare.socket))
            closers.append(backends[Ways.RAW_NO_SESSION].close)
            timings[Ways.RAW_NO_SESSION] = Timings(
                Ways.RAW_NO_SESSION, notes=connection_notes(bare.conn, sshd)
            )
        for way, backend in backends.items():
            listed = sorted(c.name for c in await backend.containers(all=True))
            if listed != names:
                raise BenchError(f"{way} listed {listed}, expected the bench's {names}")
            timings.setdefault(way, Timings(way))
        info["response_bytes"] = await response_bytes(local)
        ways = list(backends)
        progress(f"berth: {WARMUP} warm-up calls, then {args.runs} rounds of {len(ways)} ways")
        for _ in range(WARMUP):
            for way in ways:
                await backends[way].containers(all=True)
        for index in range(args.runs):
            # Rotate the order, so no way always runs right after another one.
            shift = index % len(ways)
            for way in ways[shift:] + ways[:shift]:
                wall, cpu = await timed(backends[way].containers)
                timings[way].seconds.append(wall)
                timings[way].cpu_seconds.append(cpu)
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()
    return [timings[w] for w in backends], info


# --- the docker CLI ------------------------------------------------------------------------------


def run_ssh(home: Home, sshd: SshServer, command: str) -> str:
    """Run ``command`` on the test sshd through the wrapper; its stdout (raises on failure)."""
    done = subprocess.run(
        [str(home.bin / "ssh"), "-p", str(sshd.port), f"{sshd.user}@{sshd.host}", command],
        capture_output=True, text=True, timeout=30, env=cli_env(home, None), check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"ssh {command!r} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def check_remote_docker(home: Home, sshd: SshServer, engine: DockerEngine) -> dict[str, str]:
    """Make sure a ``docker`` run over SSH talks to the private engine, before it runs at all."""
    wanted = f"unix://{engine.socket}"
    seen = run_ssh(home, sshd, "printenv DOCKER_HOST; printenv DOCKER_CONTEXT; exit 0").split("\n")
    if seen[0].strip() != wanted or any(line.strip() for line in seen[1:]):
        raise BenchError(
            f"over SSH, DOCKER_HOST is {seen[0].strip()!r} (DOCKER_CONTEXT {seen[1:]!r}), not {wanted!r}: "
            "the docker CLI would reach another engine; refusing to run it"
        )
    return {
        "remote_docker_host": wanted,
        "remote_docker": run_ssh(home, sshd, "command -v docker && docker --version").strip(),
    }


def cli_names(cli: str, env: dict[str, str]) -> list[str]:
    """Container names ``docker ps -a`` prints with that environment."""
    done = subprocess.run(
        [cli, "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, env=env, timeout=60
    )
    if done.returncode != 0:
        raise BenchError(f"docker ps -a failed ({done.returncode}): {done.stderr.strip()}")
    return sorted(done.stdout.split())


def cli_ps(cli: str, env: dict[str, str]) -> float:
    """Wall seconds of one ``docker ps -a`` (its table output read and dropped)."""
    start = time.perf_counter()
    try:
        subprocess.run([cli, "ps", "-a"], env=env, capture_output=True, check=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        raise BenchError(f"docker ps -a failed ({exc.returncode}): {exc.stderr.decode().strip()}") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchError("docker ps -a took over 60 s") from exc
    return time.perf_counter() - start


def measure_cli(
    args: argparse.Namespace,
    cli: str,
    engine: DockerEngine,
    sshd: SshServer,
    home: Home,
    names: list[str],
) -> tuple[list[Timings], dict[str, Any]]:
    """Ways c and d: check the CLI over SSH lists the private engine, then N interleaved rounds."""
    info = check_remote_docker(home, sshd, engine)
    envs = {
        Ways.CLI_SSH: cli_env(home, f"ssh://{sshd.user}@{sshd.host}:{sshd.port}"),
        Ways.CLI_LOCAL: cli_env(home, engine.url),
    }
    for way, env in envs.items():
        listed = cli_names(cli, env)
        if listed != names:
            raise BenchError(f"{way} listed {listed}, not the private engine's {names}")
    home.ssh_calls.write_text("")
    progress(f"docker CLI: {args.runs} rounds of {len(envs)} ways (~0.4 s per call over SSH)")
    timings = {way: Timings(way) for way in envs}
    for index in range(args.runs):
        ways = list(envs) if index % 2 == 0 else list(reversed(envs))
        for way in ways:
            timings[way].seconds.append(cli_ps(cli, envs[way]))
    calls = [line for line in home.ssh_calls.read_text().splitlines() if line.strip()]
    info["ssh_processes_per_ps"] = len(calls) / max(1, args.runs)
    info["ssh_command_line"] = calls[0] if calls else ""
    return list(timings.values()), info


# --- setting up ----------------------------------------------------------------------------------


def create_containers(client: docker.DockerClient, image: str, count: int) -> list[str]:
    """``count`` busybox containers, half of them running ``sleep``, half created only (ps -a)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int) -> str:
        container = client.api.create_container(
            image,
            ["sleep", "3600"],
            name=f"{CONTAINER_PREFIX}{index:02d}",
            host_config=client.api.create_host_config(network_mode="none"),
        )
        if index % 2 == 0:
            client.api.start(container["Id"])
        return str(container["Id"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def preflight() -> dict[str, str]:
    """Check root and the programs needed; return their paths. Raises BenchError saying what's missing."""
    if os.geteuid() != 0:
        raise BenchError(
            "run it as root: it starts its own dockerd and sshd (sudo /tmp/venv/bin/python -m ...)"
        )
    tools: dict[str, str] = {}
    docker_cli = (
        "/usr/local/bin/docker" if os.access("/usr/local/bin/docker", os.X_OK) else shutil.which("docker")
    )
    if docker_cli is None:
        raise BenchError("the docker CLI is not installed (apt-get install docker.io)")
    tools["docker"] = docker_cli
    ssh = shutil.which("ssh")
    if ssh is None:
        raise BenchError("the OpenSSH client is not installed (apt-get install openssh-client)")
    tools["ssh"] = os.path.abspath(ssh)
    return tools


@dataclass
class Started:
    """What the bench started and must stop, by PID, whatever happens."""

    engine: DockerEngine | None = None
    sshd: SshServer | None = None
    containers: list[str] = field(default_factory=list)


def stop_all(started: Started) -> None:
    """Remove the containers, stop sshd and dockerd (each by PID, each even if another fails)."""
    from engines.dockerd import stop_dockerd
    from engines.sshd import stop_sshd

    try:
        if started.sshd is not None:
            progress("stopping sshd")
            stop_sshd(started.sshd)
    finally:
        if started.engine is not None:
            if started.containers:
                progress(f"removing {len(started.containers)} containers")
                with contextlib.suppress(Exception):
                    client = sdk_client(started.engine)
                    remove_containers(client, started.containers)
                    client.close()
            progress("stopping dockerd")
            stop_dockerd(started.engine)


def run_bench(args: argparse.Namespace, tools: dict[str, str], root: Path) -> dict[str, Any]:
    """Start the engines, take every measurement, stop everything; return the figures."""
    from engines import EngineError, make_root
    from engines.dockerd import start_dockerd
    from engines.images import import_docker_busybox
    from engines.sshd import start_sshd

    report: dict[str, Any] = {"machine": machine_info(), "params": {"runs": args.runs}}
    report["params"].update(containers=args.containers, diagnostics=args.diagnostics, stall_ms=STALL_MS)
    report["machine"].update(load_average_start=load_average(), code=code_version())
    report["machine"]["busy_percent_before"] = wait_quiet(args.wait_quiet)
    home = prepare_home(root)
    use_private_home(home)
    started = Started()
    try:
        progress("starting a private dockerd")
        try:
            started.engine = engine = start_dockerd(make_root("bb-"))
        except EngineError as exc:
            raise BenchError(f"dockerd could not start: {exc}") from exc
        report["machine"]["dockerd"] = engine.version
        client = sdk_client(engine)
        try:
            image = import_docker_busybox(client)
            progress(f"creating {args.containers} busybox containers")
            started.containers = create_containers(client, image, args.containers)
        finally:
            client.close()
        names = sorted(f"{CONTAINER_PREFIX}{i:02d}" for i in range(args.containers))
        progress("starting a private sshd on 127.0.0.1")
        # The docker CLI's remote half (`docker system dial-stdio`) must reach the private
        # engine: sshd sets this for every session it starts, over anything the client sends.
        extra = [f"SetEnv DOCKER_HOST=unix://{engine.socket} DOCKER_CONFIG={root / 'remote-docker'}"]
        try:
            started.sshd = sshd = start_sshd(make_root("bs-"), extra_config=extra)
        except EngineError as exc:
            raise BenchError(f"sshd could not start: {exc}") from exc
        report["machine"]["sshd"] = sshd.version
        trust_sshd(home, tools["ssh"], sshd)
        import asyncssh

        report["machine"]["asyncssh"] = asyncssh.__version__
        report["machine"]["docker_cli"] = subprocess.run(
            [tools["docker"], "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        ways, info = asyncio.run(measure_backends(args, engine, sshd, home, names))
        cli_ways, cli_info = measure_cli(args, tools["docker"], engine, sshd, home, names)
        report["ways"] = [t.as_json() for t in [*ways, *cli_ways]]
        report["info"] = {**info, **cli_info}
    finally:
        try:
            stop_all(started)
        finally:
            report["machine"].update(load_average_end=load_average(), code_end=code_version())
    report["ratios"] = ratios(report["ways"])
    return report


# --- the report ---------------------------------------------------------------------------------


def ratios(ways: list[dict[str, Any]]) -> dict[str, float]:
    """Tunnel/local and CLI-over-SSH/tunnel, on medians (and p95 for the tunnel)."""
    by = {w["way"]: w for w in ways}
    out: dict[str, float] = {}

    def ratio(a: str, b: str, key: str = "median_ms") -> float:
        if a not in by or b not in by or not by[b][key]:
            return math.nan
        return float(by[a][key] / by[b][key])

    out["tunnel_over_local"] = ratio(Ways.TUNNEL, Ways.LOCAL)
    out["tunnel_over_local_p95"] = ratio(Ways.TUNNEL, Ways.LOCAL, "p95_ms")
    out["cli_ssh_over_tunnel"] = ratio(Ways.CLI_SSH, Ways.TUNNEL)
    out["cli_local_over_local"] = ratio(Ways.CLI_LOCAL, Ways.LOCAL)
    if Ways.TUNNEL_CHACHA in by:
        out["tunnel_chacha_over_local"] = ratio(Ways.TUNNEL_CHACHA, Ways.LOCAL)
    if Ways.RAW_NO_SESSION in by:
        out["bare_forward_over_local"] = ratio(Ways.RAW_NO_SESSION, Ways.LOCAL)
    return out


def _note(way: dict[str, Any]) -> str:
    notes = way["notes"]
    parts = [f"max {way['max_ms']:.1f} ms", f"{way['stalls']} of {way['calls']} >= {STALL_MS:.0f} ms"]
    if not math.isnan(way["cpu_median_ms"]):
        parts.append(f"our CPU {way['cpu_median_ms']:.2f} ms")
    if "cipher" in notes:
        parts.append(f"cipher {notes['cipher']}")
    if "sshd_nodelay" in notes:
        nodelay = notes["sshd_nodelay"]
        parts.append(f"sshd TCP_NODELAY {'?' if nodelay is None else ('on' if nodelay else 'OFF')}")
    return "; ".join(parts)


def report_text(report: dict[str, Any]) -> str:
    """The figures as text tables."""
    import io

    out = io.StringIO()
    m, info, r = report["machine"], report.get("info", {}), report["ratios"]
    print("berth bench: hosts over SSH (issue 4)", file=out)
    print(f"code: {m.get('code', '?')}", file=out)
    if m.get("code_end", m.get("code")) != m.get("code"):
        print(f"WARNING: the code changed during the run; at the end: {m['code_end']}", file=out)
    print(
        f"machine: {m['cpu_model']}, {m['cores']} cores, kernel {m['kernel']}, Python {m['python']}, "
        f"asyncssh {m.get('asyncssh', '?')}\nengines: dockerd {m.get('dockerd', '?')} (private, "
        f"--bridge=none), {m.get('sshd', '?')} (private, 127.0.0.1), CLI {m.get('docker_cli', '?')}\n"
        f"load average at start {m.get('load_average_start', '?')}, at end "
        f"{m.get('load_average_end', '?')}; all CPUs {fmt(m.get('busy_percent_before'), 0)} % busy just "
        "before the start",
        file=out,
    )
    n = report["params"]["containers"]
    rows = [
        (
            f"{w['way']} (N={w['calls']})",
            f"{w['median_ms']:7.2f} / {w['p95_ms']:7.2f} ms",
            _note(w),
        )
        for w in report["ways"]
    ]
    print_table(
        f"Container list, {n} containers, all=True ({fmt(info.get('response_bytes'), 0)} bytes of JSON): "
        "median / p95",
        rows,
        out,
    )
    ratio_rows = [
        (
            "tunnel / local (medians)",
            f"{r['tunnel_over_local']:.2f}x",
            f"target <= {TUNNEL_TARGET}x: {verdict(r['tunnel_over_local'] <= TUNNEL_TARGET)}; "
            f"p95s {r['tunnel_over_local_p95']:.2f}x",
        ),
        (
            "docker CLI over SSH / tunnel (medians)",
            f"{r['cli_ssh_over_tunnel']:.0f}x",
            f"target >= {CLI_TARGET:.0f}x: {verdict(r['cli_ssh_over_tunnel'] >= CLI_TARGET)}",
        ),
        ("docker CLI local / backend local (medians)", f"{r['cli_local_over_local']:.0f}x", "context"),
    ]
    if "tunnel_chacha_over_local" in r:
        ratio_rows.append(
            (
                "diag: chacha20 tunnel / local",
                f"{r['tunnel_chacha_over_local']:.2f}x",
                "asyncssh's default cipher",
            )
        )
    if "bare_forward_over_local" in r:
        ratio_rows.append(
            ("diag: forward without session / local", f"{r['bare_forward_over_local']:.2f}x", "Nagle at sshd")
        )
    print_table("Ratios", ratio_rows, out)
    other = [
        (
            "HostSession up",
            f"{info.get('session_up_seconds', math.nan) * 1000:.0f} ms",
            "connect, authenticate, find the socket (one exec), forward",
        ),
        (
            "ssh processes per docker ps",
            fmt(info.get("ssh_processes_per_ps"), 1),
            f"remote: {info.get('ssh_command_line', '?')}",
        ),
        (
            "remote docker",
            info.get("remote_docker", "?").replace("\n", " "),
            f"DOCKER_HOST there: {info.get('remote_docker_host', '?')}",
        ),
    ]
    print_table("Around the figures", other, out)
    print(
        "  The ways run in interleaved rounds (order rotated each round) after warm-up calls;\n"
        "  the backend ways share one event loop in this process; the CLI wall time includes\n"
        "  starting docker (and ssh, through a one-line sh wrapper that adds -F).",
        file=out,
    )
    return out.getvalue()


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--runs", type=int, default=50, help="calls per way (default 50)")
    parser.add_argument("--containers", type=int, default=20, help="containers on the engine (20)")
    parser.add_argument(
        "--no-diagnostics",
        dest="diagnostics",
        action="store_false",
        help="skip the chacha20 tunnel and the bare forward (the figures' explanations)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="wait up to this many seconds for other work on the machine to stop (default 0)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or not 1 <= args.containers <= 99:
        parser.error("--runs must be >= 1 and --containers 1-99")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; print the figures; 0 on success."""
    return run_and_report("bench_hosts", parse_args(argv), preflight, run_bench, report_text, "bbs-")


if __name__ == "__main__":
    sys.exit(main())
