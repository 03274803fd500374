"""A private dockerd for tests: own data root, exec root, pidfile and unix socket, no network.

It is started with ``--bridge=none --iptables=false --ip6tables=false --ip-forward=false``, so it
creates no bridge, writes no firewall rule and changes no sysctl; its own containerd runs under
its exec root. It never touches ``/var/run/docker.sock`` or ``/var/lib/docker``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker

from engines import (
    EngineError,
    EngineRecord,
    descendants,
    find_binary,
    kill_leftovers,
    log_tail,
    pids_with_cmdline,
    popen_options,
    register,
    remove_root,
    snapshot,
    stop_process,
    unix_http_get,
    wait_for,
)

#: Override the dockerd binary (a path, or a name looked up on PATH).
DOCKERD_ENV = "BERTH_TEST_DOCKERD"
#: The Docker API version the test clients pin (dockerd 20.10 speaks 1.41).
API_VERSION = "1.41"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass
class DockerEngine:
    """A running test dockerd. ``url`` is what ``docker.DockerClient(base_url=...)`` wants."""

    root: Path
    socket: Path
    pid: int
    version: str
    argv: list[str] = field(repr=False)
    api_version: str = API_VERSION
    #: Id of the busybox image, once the ``docker_busybox`` fixture (or a test) imported it.
    busybox_image: str = ""
    start_seconds: float = 0.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _record: EngineRecord | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        """``unix:///tmp/bd-XXXX/docker.sock``."""
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        """dockerd's log file (stdout and stderr)."""
        return self.root / "dockerd.log"

    def client(self, timeout: int = 60) -> docker.DockerClient:
        """A Docker SDK client for this engine, with the API version pinned (no call in init)."""
        return docker.DockerClient(base_url=self.url, version=self.api_version, timeout=timeout)

    def ping(self) -> bool:
        """True when ``GET /_ping`` answers 200 right now."""
        try:
            status, body = unix_http_get(self.socket, "/_ping", timeout=2.0)
        except OSError:
            return False
        return status == 200 and body.strip() == b"OK"

    def alive(self) -> bool:
        """True while the dockerd process runs."""
        return self._proc is not None and self._proc.poll() is None

    def restart(self) -> float:
        """Stop this dockerd (SIGTERM) and start it again in place: same root, same socket.

        Containers keep their state on disk. Running ones are stopped by dockerd's shutdown
        (each gets its stop timeout, 10 s by default: a busybox ``sh`` as PID 1 ignores SIGTERM,
        so run such containers with ``init=True`` or ``stop_signal="SIGKILL"`` to restart fast)
        unless the engine was started with ``--live-restore``, when they keep running. Either
        way a log follow open across the restart ends (EOF) and must be reopened. Returns the
        seconds until ``/_ping`` answered again.
        """
        begin = time.monotonic()
        stop_process(self._proc, self.pid, STOP_TIMEOUT)
        if "--live-restore" not in self.argv:
            _wait_containerd_gone(self.root)
        self._launch()
        if self._record is not None:
            self._record.pid = self.pid
            self._record.restarts += 1
        return time.monotonic() - begin

    def stop(self) -> None:
        """Same as :func:`stop_dockerd`."""
        stop_dockerd(self)

    def _launch(self) -> None:
        """Start the process from ``argv`` and wait for ``/_ping``."""
        (self.root / "docker.pid").unlink(missing_ok=True)
        begin = time.monotonic()
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=_engine_env(),
                **popen_options(),
            )
        self.pid = self._proc.pid
        try:
            wait_for(self.ping, timeout=START_TIMEOUT, alive=self.alive, what="dockerd", logs=[self.log])
            status, body = unix_http_get(self.socket, "/version", timeout=5.0)
            self.version = str(json.loads(body)["Version"]) if status == 200 else "unknown"
        except (EngineError, OSError, ValueError, KeyError) as exc:
            code = self._proc.poll()
            stop_process(self._proc, self.pid, 5.0)
            exited = f" (exit code {code})" if code is not None else ""
            raise EngineError(f"dockerd did not start under {self.root}{exited}: {exc}") from exc
        self.start_seconds = time.monotonic() - begin


def _engine_env() -> dict[str, str]:
    """The environment for an engine: ours, without anything that points at another engine."""
    drop = {"DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "LXD_DIR"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _wait_containerd_gone(root: Path, timeout: float = 10.0) -> None:
    """Wait for the containerd that dockerd manages under ``root``; kill it past ``timeout``."""
    refs = snapshot(pids_with_cmdline(f"{root}/"))
    deadline = time.monotonic() + timeout
    while refs and time.monotonic() < deadline:
        refs = [ref for ref in refs if ref.alive()]
        time.sleep(0.05)
    kill_leftovers(refs)


def start_dockerd(root: Path, extra_args: Sequence[str] = ()) -> DockerEngine:
    """Start a dockerd whose every file lives under ``root`` and wait for ``/_ping`` (30 s).

    Raises :class:`engines.EngineError` when the binary is missing or it does not come up;
    the message carries the tail of ``root/dockerd.log``.
    """
    binary = find_binary("dockerd", DOCKERD_ENV)
    root.mkdir(parents=True, exist_ok=True)
    config = root / "daemon.json"
    config.write_text("{}\n")  # never read the host's /etc/docker/daemon.json
    sock = root / "docker.sock"
    if len(str(sock)) > 100:
        raise EngineError(f"socket path too long for a unix socket: {sock}")
    argv = [
        binary,
        "--config-file", str(config),
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "docker.pid"),
        "-H", f"unix://{sock}",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--shutdown-timeout", "5",
        *extra_args,
    ]  # fmt: skip
    engine = DockerEngine(root=root, socket=sock, pid=0, version="", argv=argv)
    engine._launch()
    engine._record = register(
        EngineRecord(
            "dockerd",
            f"dockerd {engine.version}",
            engine.pid,
            engine.start_seconds,
            stopper=lambda: stop_dockerd(engine),
        )
    )
    return engine


def _kill_running_containers(engine: DockerEngine) -> None:
    """SIGKILL whatever containers still run (they are throwaway), so dockerd stops at once
    instead of giving each one its 10 s stop timeout (busybox ``sh`` as PID 1 ignores SIGTERM).
    """
    try:
        client = engine.client(timeout=10)
        try:
            for container in client.containers.list(sparse=True):
                with contextlib.suppress(docker.errors.APIError):
                    container.kill()
        finally:
            client.close()
    except Exception:  # best effort; the PID-based stop still runs
        return


def _remove_networks(engine: DockerEngine) -> list[str]:
    """Remove the networks tests made on ``engine`` (their containers first): dockerd leaves a
    user network's Linux bridge (``br-<id>``, with its subnet) in the host's namespace when it
    stops, and enough of them use up every default address pool for the next engine. Returns
    the bridge names they had, to delete what is left after the stop."""
    bridges: list[str] = []
    try:
        client = engine.client(timeout=10)
        try:
            made = [n for n in client.networks.list() if n.name not in ("bridge", "host", "none")]
            if not made:
                return []
            bridges = [f"br-{n.id[:12]}" for n in made if n.attrs.get("Driver") == "bridge"]
            for container in client.containers.list(all=True, sparse=True):
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
            for network in made:
                with contextlib.suppress(docker.errors.APIError):
                    network.remove()
        finally:
            client.close()
    except Exception:  # best effort; the bridges named are deleted after the stop
        pass
    return bridges


def _delete_bridges(names: Sequence[str]) -> None:
    """Delete the Linux bridges of this engine's networks that outlived it."""
    for name in names:
        if Path(f"/sys/class/net/{name}").exists():
            subprocess.run(["ip", "link", "delete", name], capture_output=True, timeout=10, check=False)


def stop_dockerd(engine: DockerEngine, remove: bool = True) -> None:
    """Stop ``engine`` by PID (SIGTERM, SIGKILL after 15 s), make sure its containerd and shims
    are gone, unmount whatever is left under its root and (``remove``) delete the root.
    """
    if engine._record is not None and engine._record.stop_seconds is not None:
        return
    begin = time.monotonic()
    bridges: list[str] = []
    if engine.alive():
        _kill_running_containers(engine)
        bridges = _remove_networks(engine)
    family = snapshot(descendants([engine.pid]) | set(pids_with_cmdline(f"{engine.root}/")))
    stop_process(engine._proc, engine.pid, STOP_TIMEOUT)
    leftovers = snapshot(
        descendants(ref.pid for ref in family if ref.alive()) | set(pids_with_cmdline(f"{engine.root}/"))
    )
    kill_leftovers([*family, *leftovers])
    _delete_bridges(bridges)
    if remove:
        remove_root(engine.root)
    if engine._record is not None:
        engine._record.stop_seconds = time.monotonic() - begin


def dockerd_log_tail(engine: DockerEngine, lines: int = 40) -> str:
    """The last lines of the engine's log, for assertion messages."""
    return log_tail(engine.log, lines)
