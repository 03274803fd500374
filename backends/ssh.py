"""SSH connections to inventory hosts, made the way the user's OpenSSH would make them.

Options come from `~/.ssh/config` (Host aliases, User, Port, IdentityFile, ProxyJump), keys from
ssh-agent and the identity files, and host keys are checked against `~/.ssh/known_hosts` (or the
config's UserKnownHostsFile). A key berth has never seen is reported with its SHA256 fingerprint
for the user to accept, then recorded; a key that differs from the recorded one is refused with
both fingerprints and never replaced by berth.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.encryption import get_default_encryption_algs

from backends.config import HostConfig
from backends.errors import (
    BerthError,
    Denied,
    HostKeyChanged,
    HostKeyUnknown,
    Invalid,
    Unreachable,
    connect_reason,
)

CONNECT_TIMEOUT = 10.0
RETRIES = "berth retries."
"""The console's advice on a host it cannot reach (it tries again with backoff); a one-shot
command does not retry, so it says `CHECK_HOST` or nothing instead."""
CHECK_HOST = "Check that the host is up and its SSH port open, then run the command again."
# A silent network (a cable pulled, a suspended VM) is noticed after interval * count seconds.
KEEPALIVE_SECONDS = 5.0
KEEPALIVE_COUNT = 3
MAX_JUMPS = 4
PREFERRED_CIPHERS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
"""AES-GCM before asyncssh's default chacha20-poly1305: one OpenSSL (AES-NI) call per packet
instead of several Python-level steps, ~0.1-0.2 ms less per small request through a tunnel here
(tests/bench/bench_hosts.py). A Ciphers line in the user's ~/.ssh/config still wins."""


@dataclass(frozen=True)
class Endpoint:
    """Where an SSH connection goes once `~/.ssh/config` is applied: for messages and known_hosts."""

    user: str
    host: str
    port: int

    @property
    def label(self) -> str:
        """`user@host` (with `:port` when it is not 22), as people write it."""
        return f"{self.user}@{self.host}" + (f":{self.port}" if self.port != 22 else "")

    @property
    def known_hosts_name(self) -> str:
        """The host's name in a known_hosts line: `host`, or `[host]:port` off port 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


class _KeyCatcher(asyncssh.SSHClient):
    """Keeps the host key asyncssh could not verify, so the user can be shown its fingerprint."""

    def __init__(self) -> None:
        self.presented: asyncssh.SSHKey | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Called only for keys that known_hosts does not list: remember it, trust nothing."""
        self.presented = key
        return False


def _known_hosts_files(options: asyncssh.SSHClientConnectionOptions) -> list[Path]:
    configured = options.known_hosts
    if isinstance(configured, list | tuple) and configured:
        return [Path(str(p)).expanduser() for p in configured]
    return [Path("~/.ssh/known_hosts").expanduser()]


def _known_fingerprints(files: list[Path], host: str, port: int) -> list[str]:
    """Fingerprints of the keys the known_hosts files list for this host (empty: never seen)."""
    existing = [str(p) for p in files if p.is_file()]
    if not existing:
        return []
    try:
        known = asyncssh.read_known_hosts(existing)
    except (OSError, ValueError):
        return []
    keys = known.match(host, "", None if port == 22 else port)[0]
    return [key.get_fingerprint("sha256") for key in keys]


def record_host_key(path: Path, endpoint: Endpoint, key: asyncssh.SSHKey) -> Path:
    """Append `key` for `endpoint` to the known_hosts file at `path` (made 0600 if new)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    kind, blob = key.export_public_key().decode().split()[:2]
    line = f"{endpoint.known_hosts_name} {kind} {blob}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(line)
    return path


def connect_arguments(host: HostConfig) -> dict[str, Any]:
    """Keyword arguments for `asyncssh.connect`: the host's URL and identity over `~/.ssh/config`."""
    target = host.ssh
    user_config = Path("~/.ssh/config").expanduser()
    arguments: dict[str, Any] = {
        "host": target.host,
        "config": [str(user_config)] if os.access(user_config, os.R_OK) else [],
        "connect_timeout": CONNECT_TIMEOUT,
        "keepalive_interval": KEEPALIVE_SECONDS,
        "keepalive_count_max": KEEPALIVE_COUNT,
    }
    if target.port is not None:
        arguments["port"] = target.port
    if target.user:
        arguments["username"] = target.user
    if host.identity:
        arguments["client_keys"] = [str(Path(host.identity).expanduser())]
    return arguments


def resolved_options(host: HostConfig, arguments: dict[str, Any]) -> asyncssh.SSHClientConnectionOptions:
    """The options those arguments come to once the SSH config is applied (raises `Invalid`)."""
    try:
        return asyncssh.SSHClientConnectionOptions(**arguments)
    except (OSError, ValueError, asyncssh.Error) as exc:
        raise Invalid(
            f"Cannot use the SSH settings of {host.name} ({host.url}): {exc}.",
            "Check its identity file and ~/.ssh/config.",
        ) from exc


async def connect(
    host: HostConfig,
    resolve: Callable[[str], HostConfig | None] = lambda _name: None,
    *,
    accept_new: bool = False,
    depth: int = 0,
) -> asyncssh.SSHClientConnection:
    """Open a verified SSH connection to `host` (through its jump host, if it names one).

    `resolve` turns a jump host's inventory name into its entry. With `accept_new`, a host key
    never seen before is recorded and the connection made; a changed key is always refused.
    """
    arguments = connect_arguments(host)
    options = resolved_options(host, arguments)
    if list(options.encryption_algs) == get_default_encryption_algs():  # the config set no Ciphers
        arguments["encryption_algs"] = PREFERRED_CIPHERS
        options = resolved_options(host, arguments)
    where = Endpoint(str(options.username), str(options.host), int(options.port))
    tunnel: asyncssh.SSHClientConnection | None = None
    if host.jump:
        if depth >= MAX_JUMPS:
            raise Invalid(f"The jump hosts of {host.name} go more than {MAX_JUMPS} deep (a loop?).")
        jump = resolve(host.jump) or HostConfig(f"{host.name}-jump", host.jump)
        tunnel = await connect(jump, resolve, accept_new=accept_new, depth=depth + 1)
    try:
        try:
            conn = await _connect_once(host, arguments, options, where, tunnel)
        except HostKeyUnknown as unknown:
            if not accept_new:
                raise
            unknown.record()
            conn = await _connect_once(host, arguments, options, where, tunnel)
    except BaseException:
        if tunnel is not None:
            tunnel.close()
        raise
    if tunnel is not None:
        # asyncssh does not own a tunnel it was handed: close it with the connection it carries.
        closer = asyncio.create_task(_close_when_closed(conn, tunnel))
        _TUNNEL_CLOSERS.add(closer)
        closer.add_done_callback(_TUNNEL_CLOSERS.discard)
    return conn


_TUNNEL_CLOSERS: set[asyncio.Task[None]] = set()


async def _close_when_closed(
    conn: asyncssh.SSHClientConnection, tunnel: asyncssh.SSHClientConnection
) -> None:
    await conn.wait_closed()
    tunnel.close()


async def _connect_once(
    host: HostConfig,
    arguments: dict[str, Any],
    options: asyncssh.SSHClientConnectionOptions,
    where: Endpoint,
    tunnel: asyncssh.SSHClientConnection | None,
) -> asyncssh.SSHClientConnection:
    catcher = _KeyCatcher()
    try:
        conn = await asyncssh.connect(
            **arguments, client_factory=lambda: catcher, tunnel=tunnel if tunnel is not None else ()
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise await _key_error(where, options, catcher.presented, tunnel) from exc
    except asyncssh.PermissionDenied as exc:
        named = f" ({host.name})" if host.name != where.label else ""  # an inventory name says more
        raise Denied(
            f"Permission denied for {where.label}{named}.",
            "Check the user and the key: identity in the inventory, IdentityFile, or ssh-agent.",
        ) from exc
    except asyncssh.KeyExchangeFailed as exc:
        if _known_fingerprints(_known_hosts_files(options), where.host, where.port):
            raise await _key_error(where, options, None, tunnel) from exc
        raise Unreachable(f"SSH to {where.label} failed: {exc.reason}.") from exc
    except asyncssh.Error as exc:
        raise Unreachable(f"SSH to {where.label} failed: {exc.reason}.", RETRIES, "") from exc
    except TimeoutError as exc:
        raise Unreachable(
            f"{where.label} did not answer within {CONNECT_TIMEOUT:g} s.", RETRIES, CHECK_HOST
        ) from exc
    except OSError as exc:
        # asyncio words a refused connection "Connect call failed (addr)": say what happened instead.
        raise Unreachable(f"Cannot reach {where.label}: {connect_reason(exc)}.", RETRIES, CHECK_HOST) from exc
    return conn


async def _key_error(
    where: Endpoint,
    options: asyncssh.SSHClientConnectionOptions,
    presented: asyncssh.SSHKey | None,
    tunnel: asyncssh.SSHClientConnection | None,
) -> BerthError:
    """HostKeyUnknown or HostKeyChanged for a key asyncssh refused."""
    if presented is None:
        # The server offered no key of a type known_hosts has; ask for whatever it has now.
        try:
            presented = await asyncio.wait_for(
                asyncssh.get_server_host_key(
                    where.host, where.port, tunnel=tunnel if tunnel is not None else ()
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError, asyncssh.Error):
            presented = None
    if presented is None:
        return Unreachable(f"{where.label} did not show its host key.", RETRIES, "")
    files = _known_hosts_files(options)
    fingerprint = presented.get_fingerprint("sha256")
    known = _known_fingerprints(files, where.host, where.port)
    if known:
        return HostKeyChanged(where.label, fingerprint, known, [p for p in files if p.is_file()])
    key = presented
    return HostKeyUnknown(where.label, fingerprint, lambda: record_host_key(files[0], where, key))
