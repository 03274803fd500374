"""Real engines for the tests: dockerd, LXD and OpenSSH's sshd, each started apart from the host's.

Every engine lives under its own short temporary directory (unix socket paths must stay under
108 bytes), is started by the tests as a child process and is stopped by its PID. Nothing here
touches a Docker or LXD the tests did not start, and no engine gets a network beyond loopback.

This module holds what the engine modules share: errors, binary lookup, process bookkeeping by
PID (with the process start time, so a recycled PID is never signalled), unmounting leftovers,
and the registry of engines started in this session that the terminal summary prints.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "EngineError",
    "EngineRecord",
    "ProcRef",
    "find_binary",
    "kill_leftovers",
    "log_tail",
    "make_root",
    "popen_options",
    "records",
    "remove_root",
    "stop_process",
    "unix_http_get",
    "unmount_under",
]


class EngineError(RuntimeError):
    """An engine could not be found or started; the message says why (and shows its log tail)."""


# --- binaries -----------------------------------------------------------------------------------


def find_binary(name: str, env_var: str | None = None) -> str:
    """Return the absolute path of ``name``, or of the override in ``env_var`` when that is set.

    Raises :class:`EngineError` naming the binary (and the override) when it is not there, so
    a test can skip, or fail under CI, with a reason that says what to install.
    """
    override = os.environ.get(env_var, "") if env_var else ""
    wanted = override or name
    if os.sep in wanted:
        path: str | None = wanted if os.access(wanted, os.X_OK) else None
    else:
        search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
        path = shutil.which(wanted, path=search)
    if path is None:
        how = f" (set by {env_var})" if override else ""
        raise EngineError(f"{wanted}{how} not found or not executable")
    return os.path.abspath(path)


# --- temporary roots ----------------------------------------------------------------------------


def make_root(prefix: str = "bd-") -> Path:
    """Create a short, private-ish temporary directory under /tmp for one engine.

    Mode 0711 so unprivileged container users can traverse it; the path stays short so the
    unix sockets inside it stay far under the 108-byte limit.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o711)
    return root


def remove_root(root: Path) -> None:
    """Unmount anything left under ``root`` and remove it."""
    unmount_under(root)
    shutil.rmtree(root, ignore_errors=True)


def _unescape_mount(path: str) -> str:
    """Undo the octal escapes (``\\040`` etc.) of /proc/self/mountinfo."""
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and i + 3 < len(path) and path[i + 1 : i + 4].isdigit():
            out.append(chr(int(path[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` in this process's mount namespace, deepest first."""
    prefix = str(root).rstrip("/")
    found: list[str] = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            point = _unescape_mount(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def unmount_under(root: Path) -> list[str]:
    """Lazily unmount every mount point below ``root``; return what was unmounted."""
    done: list[str] = []
    for _ in range(3):
        points = mounts_under(root)
        if not points:
            break
        for point in points:
            res = subprocess.run(["umount", "-l", point], capture_output=True, check=False)
            if res.returncode == 0:
                done.append(point)
    return done


# --- processes ----------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name, or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


@dataclass(frozen=True)
class ProcRef:
    """A process pinned by PID and start time, so a recycled PID is never mistaken for it."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> ProcRef | None:
        """Pin the running process ``pid``; None when it is gone."""
        fields = _stat_fields(pid)
        if fields is None:
            return None
        return cls(pid, int(fields[19]))

    def alive(self) -> bool:
        """True while the same process still exists and is not a zombie."""
        fields = _stat_fields(self.pid)
        return fields is not None and int(fields[19]) == self.start and fields[0] not in "ZX"

    def signal(self, sig: int) -> None:
        """Send ``sig`` if (and only if) this very process is still alive."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


def all_pids() -> list[int]:
    """Every PID visible in /proc."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/*/stat)."""
    kids = []
    for other in all_pids():
        fields = _stat_fields(other)
        if fields is not None and int(fields[1]) == pid:
            kids.append(other)
    return sorted(kids)


def descendants(pids: Iterable[int]) -> set[int]:
    """``pids`` and every process below them."""
    parent_of: dict[int, int] = {}
    for other in all_pids():
        fields = _stat_fields(other)
        if fields is not None:
            parent_of[other] = int(fields[1])
    found = set(pids)
    grew = True
    while grew:
        grew = False
        for child, parent in parent_of.items():
            if parent in found and child not in found:
                found.add(child)
                grew = True
    return found


def pids_with_cmdline(fragment: str) -> list[int]:
    """PIDs whose command line contains ``fragment`` (e.g. an engine's private root)."""
    hits = []
    for pid in all_pids():
        if pid == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if fragment.encode() in cmd:
            hits.append(pid)
    return hits


def netns_inode(pid: int) -> int | None:
    """Inode of the network namespace of ``pid``, or None when it is gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def pids_in_netns(inode: int) -> list[int]:
    """PIDs whose network namespace is ``inode``."""
    return [pid for pid in all_pids() if pid != os.getpid() and netns_inode(pid) == inode]


def snapshot(pids: Iterable[int]) -> list[ProcRef]:
    """Pin each PID that is still running."""
    refs = (ProcRef.of(pid) for pid in pids)
    return [ref for ref in refs if ref is not None]


def wait_gone(refs: Iterable[ProcRef], timeout: float) -> list[ProcRef]:
    """Wait up to ``timeout`` seconds for ``refs`` to exit; return those still alive."""
    pending = list(refs)
    deadline = time.monotonic() + timeout
    while True:
        pending = [ref for ref in pending if ref.alive()]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen[bytes] | None, pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM ``pid``, wait up to ``timeout`` s, then SIGKILL. True if it had to be killed.

    When ``proc`` (our own Popen of that PID) is given it is reaped, so no zombie stays.
    """
    ref = ProcRef.of(pid)
    if proc is not None and proc.poll() is not None:
        return False
    if ref is None or not ref.alive():
        if proc is not None:
            proc.wait()
        return False
    ref.signal(signal.SIGTERM)
    killed = False
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            ref.signal(signal.SIGKILL)
            proc.wait(10)
            killed = True
    elif wait_gone([ref], timeout):
        ref.signal(signal.SIGKILL)
        wait_gone([ref], 10)
        killed = True
    return killed


def kill_leftovers(refs: Iterable[ProcRef], grace: float = 2.0) -> list[int]:
    """SIGTERM then SIGKILL whichever of ``refs`` still run; return the PIDs that were signalled."""
    alive = [ref for ref in refs if ref.alive() and ref.pid != os.getpid()]
    for ref in alive:
        ref.signal(signal.SIGTERM)
    for ref in wait_gone(alive, grace):
        ref.signal(signal.SIGKILL)
    wait_gone(alive, 5)
    return [ref.pid for ref in alive]


def _set_parent_death_signal(prctl: Any, parent: int) -> None:
    """In the child before exec: get SIGTERM when the thread that started us dies."""
    prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def popen_options() -> dict[str, Any]:
    """Keyword arguments for ``subprocess.Popen`` of an engine.

    A new session, so a Ctrl-C in the terminal reaches pytest (which then stops the engine
    cleanly) and not the engine. Started from the main thread, the engine also gets SIGTERM
    from the kernel if pytest dies without cleaning up (even by SIGKILL). Not from other
    threads: the signal follows the starting *thread*, and a worker thread may end early.
    """
    opts: dict[str, Any] = {"start_new_session": True}
    if threading.current_thread() is threading.main_thread():
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not after fork
        opts["preexec_fn"] = functools.partial(_set_parent_death_signal, prctl, os.getpid())
    return opts


# --- small I/O helpers --------------------------------------------------------------------------


def log_tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file (empty when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def unix_http_get(sock_path: Path, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """A minimal HTTP/1.0 GET over a unix socket: (status, body). Raises OSError when refused."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(sock_path))
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: engine\r\n\r\n".encode())
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise OSError(f"bad HTTP answer from {sock_path}: {raw[:80]!r}")
    return int(status_line[1]), body


def logs_tail(logs: Iterable[Path], lines: int = 25) -> str:
    """The tails of several log files, each under its name; ``(empty log)`` when all are empty."""
    parts = [f"--- {path.name}\n{tail}" for path in logs if (tail := log_tail(path, lines))]
    return "\n".join(parts) if parts else "(empty log)"


def wait_for(
    check: Callable[[], bool],
    *,
    timeout: float,
    alive: Callable[[], bool],
    what: str,
    logs: Iterable[Path] = (),
) -> float:
    """Poll ``check`` until it is true; return the seconds it took.

    Raises :class:`EngineError` (with the tails of ``logs``) when ``alive`` turns false or the
    deadline passes.
    """
    start = time.monotonic()
    deadline = start + timeout
    delay = 0.02
    while True:
        if check():
            return time.monotonic() - start
        if not alive():
            raise EngineError(f"{what} exited while starting; log tail:\n{logs_tail(logs)}")
        if time.monotonic() >= deadline:
            raise EngineError(f"{what} not ready after {timeout:.0f} s; log tail:\n{logs_tail(logs)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


# --- registry for the terminal summary ----------------------------------------------------------


@dataclass
class EngineRecord:
    """One engine started in this session, for the terminal summary."""

    kind: str
    version: str
    pid: int
    start_seconds: float
    stop_seconds: float | None = None
    restarts: int = 0
    stopper: Callable[[], None] | None = field(default=None, repr=False)

    def describe(self) -> str:
        """``dockerd 20.10.24 (pid 123, up in 0.6 s, down in 2.2 s)``."""
        bits = [f"pid {self.pid}", f"up in {self.start_seconds:.1f} s"]
        if self.restarts:
            bits.append(f"restarted {self.restarts}x")
        if self.stop_seconds is not None:
            bits.append(f"down in {self.stop_seconds:.1f} s")
        else:
            bits.append("still running")
        return f"{self.version} ({', '.join(bits)})"


_RECORDS: list[EngineRecord] = []


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into KeyboardInterrupt, so pytest tears the engines down before it exits."""
    raise KeyboardInterrupt(f"signal {signum}")


def register(record: EngineRecord) -> EngineRecord:
    """Remember an engine that started; it is stopped at exit if nobody stopped it.

    The first time, a SIGTERM to this process (left at its default) is made to raise
    KeyboardInterrupt instead, so a terminated test run still stops its engines.
    """
    _RECORDS.append(record)
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    return record


def records() -> list[EngineRecord]:
    """Every engine started in this process so far, in start order."""
    return list(_RECORDS)


def summary_line() -> str:
    """One line naming each kind of engine started, its version, PID and timings."""
    if not _RECORDS:
        return "engines: none started"
    parts = []
    for kind in dict.fromkeys(rec.kind for rec in _RECORDS):
        same = [rec for rec in _RECORDS if rec.kind == kind]
        text = same[0].describe()
        if len(same) > 1:
            text += f" +{len(same) - 1} more"
        parts.append(text)
    return "engines: " + ", ".join(parts)


@atexit.register
def _stop_forgotten() -> None:
    """Safety net: stop engines that no fixture stopped (e.g. after an internal error)."""
    for rec in reversed(_RECORDS):
        if rec.stop_seconds is None and rec.stopper is not None:
            with contextlib.suppress(Exception):
                rec.stopper()
