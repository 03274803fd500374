"""A private LXD for tests, in its own network and mount namespaces.

LXD 5.0.2 looks up images.linuxcontainers.org as it starts, so the test daemon runs under
``unshare --net --mount --propagation private``: its network is a loopback of its own (nothing can
leave the machine) and the mounts it makes die with it. Its unix socket sits on the ordinary
filesystem under ``LXD_DIR``, so it is reachable from outside. Proxy devices listen inside that
namespace: reach them with :meth:`LxdEngine.netns`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pylxd

from engines import (
    EngineError,
    EngineRecord,
    ProcRef,
    descendants,
    find_binary,
    kill_leftovers,
    logs_tail,
    netns_inode,
    pids_in_netns,
    pids_with_cmdline,
    popen_options,
    register,
    remove_root,
    snapshot,
    stop_process,
    unix_http_get,
    wait_for,
)
from engines.images import lxd_busybox_image

#: Override the lxd binary (a path, or a name looked up on PATH).
LXD_ENV = "BERTH_TEST_LXD"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

PRESEED = """\
config:
  images.auto_update_interval: "0"
storage_pools:
- name: default
  driver: dir
  description: berth test pool
profiles:
- name: default
  description: berth test profile, no network
  devices:
    root:
      path: /
      pool: default
      type: disk
"""


@dataclass
class LxdEngine:
    """A running test LXD: its ``LXD_DIR``, unix socket, PID and version."""

    root: Path
    lxd_dir: Path
    socket: Path
    pid: int
    version: str
    netns_inode: int
    image_fingerprint: str = ""
    start_seconds: float = 0.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _record: EngineRecord | None = field(default=None, repr=False, compare=False)

    @property
    def log(self) -> Path:
        """LXD's own log file (``--logfile``)."""
        return self.lxd_dir / "lxd.log"

    @property
    def env(self) -> dict[str, str]:
        """An environment whose ``LXD_DIR`` points the ``lxd``/``lxc`` commands at this engine."""
        return {**os.environ, "LXD_DIR": str(self.lxd_dir)}

    def client(self, timeout: float | None = 60) -> pylxd.Client:
        """A pylxd client talking to this engine's unix socket."""
        return pylxd.Client(endpoint=str(self.socket), timeout=timeout)

    def netns(self, argv: list[str]) -> list[str]:
        """``argv`` wrapped to run in LXD's network namespace (where proxy devices listen)."""
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", *argv]

    def alive(self) -> bool:
        """True while the lxd process runs."""
        return self._proc is not None and self._proc.poll() is None

    def ready(self) -> bool:
        """True once ``GET /internal/ready`` answers 200."""
        try:
            status, _ = unix_http_get(self.socket, "/internal/ready", timeout=2.0)
        except OSError:
            return False
        return status == 200

    def stop(self) -> None:
        """Same as :func:`stop_lxd`."""
        stop_lxd(self)


def start_lxd(root: Path, import_image: bool = True) -> LxdEngine:
    """Start LXD with ``LXD_DIR=root/lxd`` in fresh net+mount namespaces, wait until it is
    ready, preseed a ``dir`` pool named default and a network-less default profile, and
    (``import_image``) import the busybox image under the alias ``busybox``.

    Raises :class:`engines.EngineError` (with the log tail) when any step fails.
    """
    binary = find_binary("lxd", LXD_ENV)
    unshare = find_binary("unshare")
    ip = find_binary("ip")
    find_binary("nsenter")
    lxd_dir = root / "lxd"
    lxd_dir.mkdir(parents=True, exist_ok=True)
    lxd_dir.chmod(0o711)
    sock = lxd_dir / "unix.socket"
    if len(str(sock)) > 90:
        raise EngineError(f"socket path too long for a unix socket: {sock}")
    logfile = lxd_dir / "lxd.log"
    script = '"$1" link set lo up && exec "$2" --group root --logfile "$3"'
    argv = [
        unshare, "--net", "--mount", "--propagation", "private", "--",
        "sh", "-c", script, "lxd-netns", ip, binary, str(logfile),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in {"LXD_CONF", "LXD_SOCKET"}}
    env["LXD_DIR"] = str(lxd_dir)
    begin = time.monotonic()
    with open(root / "lxd.out", "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
            **popen_options(),
        )
    engine = LxdEngine(
        root=root, lxd_dir=lxd_dir, socket=sock, pid=proc.pid, version="", netns_inode=0,
        _proc=proc,
    )  # fmt: skip
    try:
        logs = [logfile, root / "lxd.out"]
        wait_for(engine.ready, timeout=START_TIMEOUT, alive=engine.alive, what="lxd", logs=logs)
        engine.netns_inode = netns_inode(proc.pid) or 0
        if engine.netns_inode == netns_inode(os.getpid()):
            raise EngineError("lxd is not in a network namespace of its own")
        _, body = unix_http_get(sock, "/1.0", timeout=5.0)
        meta = json.loads(body)["metadata"]
        engine.version = str(meta["environment"]["server_version"])
        engine.start_seconds = time.monotonic() - begin
        init = subprocess.run(
            [binary, "init", "--preseed"],
            input=PRESEED.encode(),
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        if init.returncode != 0:
            raise EngineError(f"lxd init --preseed failed: {init.stderr.decode(errors='replace')}")
        if import_image:
            engine.image_fingerprint = lxd_busybox_image(engine.client(), alias="busybox")
    except Exception as exc:
        code = proc.poll()
        _stop(engine, remove=False)
        exited = f" (exit code {code})" if code is not None else ""
        if isinstance(exc, EngineError):
            raise EngineError(f"lxd did not start under {root}{exited}: {exc}") from exc
        tail = logs_tail([logfile, root / "lxd.out"])
        raise EngineError(
            f"lxd did not start under {root}{exited}: {type(exc).__name__}: {exc}; log tail:\n{tail}"
        ) from exc
    engine._record = register(
        EngineRecord(
            "lxd",
            f"lxd {engine.version}",
            engine.pid,
            time.monotonic() - begin,
            stopper=lambda: stop_lxd(engine),
        )
    )
    return engine


def _force_stop_instances(engine: LxdEngine) -> None:
    """Force-stop whatever instances still run (they are throwaway), so shutdown is quick."""
    try:
        client = engine.client(timeout=10)
        for inst in client.instances.all():
            if inst.status != "Stopped":
                inst.stop(force=True, wait=True)
    except Exception:  # best effort; the PID-based stop below still runs
        return


def _family(engine: LxdEngine) -> set[int]:
    """Every process that belongs to this LXD: its tree, its netns, its monitors and theirs."""
    pids = {engine.pid}
    if engine.netns_inode:
        pids |= set(pids_in_netns(engine.netns_inode))
    pids |= set(pids_with_cmdline(f"{engine.lxd_dir}/"))
    return descendants(pids)


def _stop(engine: LxdEngine, remove: bool) -> None:
    family: list[ProcRef] = snapshot(_family(engine)) if engine.alive() else []
    if engine.alive():
        _force_stop_instances(engine)
        lxd = find_binary("lxd", LXD_ENV)
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [lxd, "shutdown", "--timeout", "20"],
                env=engine.env,
                capture_output=True,
                timeout=30,
                check=False,
            )
    stop_process(engine._proc, engine.pid, STOP_TIMEOUT)
    kill_leftovers([*family, *snapshot(_family(engine) - {engine.pid})])
    if remove:
        remove_root(engine.root)


def stop_lxd(engine: LxdEngine, remove: bool = True) -> None:
    """Stop ``engine``: force-stop its instances, ``lxd shutdown``, then SIGTERM/SIGKILL by PID,
    end any monitor or proxy process it left, unmount leftovers under its root and (``remove``)
    delete the root.
    """
    if engine._record is not None and engine._record.stop_seconds is not None:
        return
    begin = time.monotonic()
    _stop(engine, remove)
    if engine._record is not None:
        engine._record.stop_seconds = time.monotonic() - begin


def launch_busybox(engine: LxdEngine, name: str, start: bool = True) -> Any:
    """Create (and ``start``) a container from the ``busybox`` alias; return the pylxd instance."""
    client = engine.client()
    config = {"name": name, "source": {"type": "image", "alias": "busybox"}}
    inst = client.instances.create(config, wait=True)
    if start:
        inst.start(wait=True)
    return inst


_NETNS_ECHO = r"""
import socket, sys, time
port, message = int(sys.argv[1]), sys.argv[2].encode() + b"\n"
deadline = time.monotonic() + 15
while True:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(message)
            got = b""
            while not got.endswith(b"\n"):
                chunk = conn.recv(64)
                if not chunk:
                    break
                got += chunk
        if got:
            print(got.decode().strip())
            sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"no answer on 127.0.0.1:{port} in LXD's network namespace")
    time.sleep(0.1)
"""


def echo_in_netns(engine: LxdEngine, port: int, message: str) -> subprocess.CompletedProcess[str]:
    """Send `message` to 127.0.0.1:`port` inside LXD's network namespace (where proxy devices
    listen), retrying for 15 s; what came back is on stdout."""
    return subprocess.run(
        engine.netns([sys.executable, "-c", _NETNS_ECHO, str(port), message]),
        capture_output=True,
        text=True,
        timeout=30,
    )
