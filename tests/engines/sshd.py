"""A private OpenSSH sshd for tests on ``127.0.0.1:<free port>``.

Its config, host key, client key, authorized_keys and known_hosts all live under its root; it
accepts only the generated client key, for the user running the tests.
"""

from __future__ import annotations

import functools
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines import (
    EngineError,
    EngineRecord,
    children,
    descendants,
    find_binary,
    kill_leftovers,
    log_tail,
    popen_options,
    register,
    remove_root,
    snapshot,
    stop_process,
    wait_for,
)

#: Override the sshd binary (must be an absolute path for sshd's re-exec; names are looked up).
SSHD_ENV = "BERTH_TEST_SSHD"
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


@dataclass
class SshServer:
    """A running test sshd and everything a client needs to log in to it."""

    root: Path
    host: str
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    host_key_pub: str
    pid: int
    version: str
    banner: str = ""
    start_seconds: float = 0.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _record: EngineRecord | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        """``ssh://user@127.0.0.1:port``, the form berth's hosts inventory uses."""
        return f"ssh://{self.user}@{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        """sshd's log (``-e`` sends it to stderr, which goes here)."""
        return self.root / "sshd.log"

    @property
    def config(self) -> Path:
        """The sshd_config it runs with."""
        return self.root / "sshd_config"

    def alive(self) -> bool:
        """True while the listening sshd runs."""
        return self._proc is not None and self._proc.poll() is None

    def asyncssh_options(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncssh.connect(**opts)``: this host, key and known_hosts,
        and no ssh-agent or ~/.ssh/config from the user running the tests.
        """
        return {
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "client_keys": [str(self.client_key)],
            "known_hosts": str(self.known_hosts),
            "agent_path": None,
            "config": None,
        }

    def session_children(self) -> list[int]:
        """Same as :func:`session_children`."""
        return session_children(self)

    def stop(self) -> None:
        """Same as :func:`stop_sshd`."""
        stop_sshd(self)


def session_children(server: SshServer) -> list[int]:
    """PIDs of the per-connection sshd processes (children of the listener), oldest first.

    Killing one (SIGKILL) drops the client connection it serves.
    """
    return children(server.pid)


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def read_banner(host: str, port: int, timeout: float = 2.0) -> str | None:
    """The SSH identification line the server sends (``SSH-2.0-OpenSSH_9.2p1 ...``), or None."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            data = b""
            while b"\n" not in data and len(data) < 512:
                chunk = conn.recv(256)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    line = data.split(b"\n", 1)[0].strip().decode(errors="replace")
    return line if line.startswith("SSH-") else None


def keygen(path: Path, comment: str) -> str:
    """Make an ed25519 key pair at ``path`` (no passphrase); return the public line sans comment."""
    ssh_keygen = find_binary("ssh-keygen")
    subprocess.run(
        [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    kind, blob = path.with_name(path.name + ".pub").read_text().split()[:2]
    return f"{kind} {blob}"


def _config_text(root: Path, port: int, extra_config: Sequence[str] = ()) -> str:
    lines = [
        f"ListenAddress {HOST}",
        f"Port {port}",
        f"HostKey {root / 'host_ed25519'}",
        f"AuthorizedKeysFile {root / 'authorized_keys'}",
        f"PidFile {root / 'sshd.pid'}",
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "AllowStreamLocalForwarding yes",
        "AllowTcpForwarding yes",
        "StreamLocalBindUnlink yes",
        "PermitRootLogin prohibit-password",
        "PermitTTY yes",
        "UseDNS no",
        "PrintMotd no",
        "MaxStartups 100",
        "MaxSessions 100",
        "LogLevel VERBOSE",
    ]
    if os.access(SFTP_SERVER, os.X_OK):
        lines.append(f"Subsystem sftp {SFTP_SERVER}")
    lines.extend(extra_config)  # last: sshd keeps the first value of a keyword, so extras only add
    return "\n".join(lines) + "\n"


def start_sshd(root: Path, port: int | None = None, extra_config: Sequence[str] = ()) -> SshServer:
    """Start ``sshd -D -e -f root/sshd_config`` on 127.0.0.1 and wait until it sends its banner.

    With no ``port`` a free one is picked (and another tried if it was taken meanwhile).
    ``extra_config`` lines are appended to the generated sshd_config (e.g. ``SetEnv ...``);
    they cannot override a keyword the generated part already sets.
    Raises :class:`engines.EngineError` with the log tail when it does not come up.
    """
    binary = find_binary("sshd", SSHD_ENV)
    root.mkdir(parents=True, exist_ok=True)
    user = pwd.getpwuid(os.geteuid()).pw_name
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
    host_pub = keygen(root / "host_ed25519", "berth-test-host")
    client_pub = keygen(root / "client_ed25519", "berth-test-client")
    (root / "authorized_keys").write_text(client_pub + " berth-test-client\n")
    attempts = 1 if port is not None else 3
    last: EngineError | None = None
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        try:
            server = _launch(binary, root, chosen, user, host_pub, extra_config)
        except EngineError as exc:
            last = exc
            if "Address already in use" not in str(exc):
                break
            continue
        server._record = register(
            EngineRecord(
                "sshd",
                server.version,
                server.pid,
                server.start_seconds,
                stopper=functools.partial(stop_sshd, server),
            )
        )
        return server
    assert last is not None
    raise last


def _launch(
    binary: str, root: Path, port: int, user: str, host_pub: str, extra_config: Sequence[str] = ()
) -> SshServer:
    config = root / "sshd_config"
    config.write_text(_config_text(root, port, extra_config))
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[{HOST}]:{port} {host_pub}\n")
    log = root / "sshd.log"
    begin = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [binary, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            **popen_options(),
        )
    banner: list[str] = []

    def ready() -> bool:
        line = read_banner(HOST, port)
        if line:
            banner.append(line)
        return bool(line)

    try:
        wait_for(
            ready,
            timeout=START_TIMEOUT,
            alive=lambda: proc.poll() is None,
            what=f"sshd on {HOST}:{port}",
            logs=[log],
        )
    except EngineError:
        stop_process(proc, proc.pid, 5.0)
        raise
    # The readiness probe was a connection too: let its sshd child go before handing over,
    # so session_children() lists only the caller's connections.
    settle = time.monotonic() + 2.0
    while children(proc.pid) and time.monotonic() < settle:
        time.sleep(0.01)
    software = banner[0].split("-", 2)[-1]  # "OpenSSH_9.2p1 Debian-2+deb12u10"
    return SshServer(
        root=root,
        host=HOST,
        port=port,
        user=user,
        client_key=root / "client_ed25519",
        known_hosts=known_hosts,
        host_key_pub=host_pub,
        pid=proc.pid,
        version=software.split()[0],
        banner=banner[0],
        start_seconds=time.monotonic() - begin,
        _proc=proc,
    )


def stop_sshd(server: SshServer, remove: bool = True) -> None:
    """Stop the listener by PID, end the per-connection children it leaves, delete the root."""
    if server._record is not None and server._record.stop_seconds is not None:
        return
    begin = time.monotonic()
    # The listener does not take its per-connection children with it: pin them, end them too.
    family = snapshot(descendants(children(server.pid))) if server.alive() else []
    stop_process(server._proc, server.pid, STOP_TIMEOUT)
    kill_leftovers(family, grace=1.0)
    if remove:
        remove_root(server.root)
    if server._record is not None:
        server._record.stop_seconds = time.monotonic() - begin


def sshd_log_tail(server: SshServer, lines: int = 40) -> str:
    """The last lines of the server's log, for assertion messages."""
    return log_tail(server.log, lines)
