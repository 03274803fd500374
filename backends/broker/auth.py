"""Who may talk to the broker: tokens and their roles, browser origins, the Host a request names,
and how fast unknown provider keys may ask to join.

A token is `admin` (everything: pairing, unpairing, draining, disconnecting, provider logs and
lists, every task) or `client` (submit, and read or cancel only its own tasks and batches). A
broker without tokens answers loopback callers only, each as an admin; then the Host header must
name this machine too, so a web page whose name was pointed at 127.0.0.1 (DNS rebinding) gets
nothing. Any request that carries `Origin` (a browser) is refused unless that origin was allowed.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from backends.errors import Denied, Invalid

ADMIN = "admin"
CLIENT = "client"
ROLES = (ADMIN, CLIENT)
MAX_NAME = 64
"""Longest token name (it is the client name tasks are filed under)."""
MAX_TOKEN = 512


@dataclass(frozen=True)
class Token:
    """Whom a bearer token stands for: a client name and its role."""

    name: str
    role: str

    @property
    def admin(self) -> bool:
        """True for an admin token."""
        return self.role == ADMIN


def load_tokens(text: str, file: Path | None) -> dict[str, Token]:
    """The tokens of `--tokens TEXT` and of `--tokens-file FILE` together (see below)."""
    tokens = tokens_from(text)
    for token, who in (tokens_file(file) if file is not None else {}).items():
        if token in tokens:
            raise Invalid(f"The token of {who.name!r} is given twice.")
        tokens[token] = who
    return tokens


def tokens_from(text: str) -> dict[str, Token]:
    """Tokens from `ROLE:NAME=TOKEN,…` (a bare `NAME=TOKEN` is a client): token -> Token.

    Invalid names the entry at fault by its name, never by its token."""
    tokens: dict[str, Token] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        _add(tokens, item)
    return tokens


def tokens_file(path: Path) -> dict[str, Token]:
    """Tokens from a file of one `ROLE:NAME=TOKEN` a line (lines starting with `#` are comments).

    Denied when the file may be read or written by anyone but its owner."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise Invalid(f"Cannot read the tokens file {path}: {exc.strerror or exc}.") from None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            raise Denied(
                f"The tokens file {path} is open to other users (mode {mode:04o}): run chmod 600 {path}."
            )
        text = handle.read(1024 * 1024)
    tokens: dict[str, Token] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            _add(tokens, line.strip())
    return tokens


def _add(tokens: dict[str, Token], item: str) -> None:
    spec, sep, token = item.partition("=")
    role, colon, name = spec.rpartition(":")
    role, name = (role.strip().lower() if colon else CLIENT), name.strip()
    shown = printable(name)[:MAX_NAME] or "?"
    if not sep or not name:
        raise Invalid(f"Bad token entry for {shown!r}: write ROLE:NAME=TOKEN (ROLE admin or client).")
    if role not in ROLES:
        raise Invalid(f"Token {shown!r} has role {printable(role)[:20]!r}: use admin or client.")
    if len(name) > MAX_NAME or printable(name) != name or ":" in name:
        raise Invalid(f"Token name {shown!r} must be 1 to {MAX_NAME} printable characters, no ':'.")
    token = token.strip()
    if not 0 < len(token) <= MAX_TOKEN or not token.isascii() or not token.isprintable() or " " in token:
        raise Invalid(
            f"The token of {shown!r} must be 1 to {MAX_TOKEN} printable ASCII characters, no spaces."
        )
    if token in tokens:
        raise Invalid(f"The token of {shown!r} is given twice.")
    tokens[token] = Token(name, role)


def printable(text: str) -> str:
    """`text` without control or format characters (escape codes, bidi overrides, NUL…): what is
    safe to show on a terminal or in a table, whatever a peer sent."""
    return text if text.isprintable() else "".join(c for c in text if c.isprintable())


# Where requests come from ---------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True when a listen address only this machine can reach: a loopback IP or `localhost`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(header: str | None, listen_host: str) -> bool:
    """True when a Host header names this broker by address: an IP literal, a `localhost` name,
    or the host it listens on. A name from DNS (anything else) may have been rebound to us."""
    if header is None:
        return True  # not a browser: every browser sends Host
    name = header.strip().lower()
    if name.startswith("["):  # [v6]:port
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or name == listen_host.strip("[]").lower():
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    """True when a browser's Origin is one an admin allowed (compared without a trailing slash,
    case-insensitively, as browsers send scheme and host in lower case)."""
    return origin.strip().rstrip("/").lower() in allowed


def origins_from(items: list[str] | tuple[str, ...] | str) -> tuple[str, ...]:
    """Allowed origins from `--allow-origin` values or `BERTH_BROKER_ORIGINS` (comma-separated):
    each `scheme://host[:port]`; Invalid names one that is not."""
    parts = items.split(",") if isinstance(items, str) else [p for i in items for p in i.split(",")]
    found = []
    for part in filter(None, (p.strip() for p in parts)):
        scheme, sep, rest = part.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest or "/" in rest.rstrip("/"):
            raise Invalid(
                f"Origin {printable(part)[:100]!r} is not scheme://host[:port].",
                "For example --allow-origin https://app.example.org.",
            )
        found.append(part.rstrip("/").lower())
    return tuple(found)


# Keys that ask to join ------------------------------------------------------------------------


class NewKeyGate:
    """How many unknown provider keys a peer address may bring: `burst` at once, then one every
    `every` seconds (a token bucket per address, forgotten once full again)."""

    def __init__(self, burst: int = 10, every: float = 6.0) -> None:
        self.burst = burst
        self.every = every
        self._buckets: dict[str, tuple[float, float]] = {}  # peer -> (tokens, when counted)

    def allow(self, peer: str) -> bool:
        """True (and counted) when `peer` may add one more pending key now."""
        now = time.monotonic()
        if len(self._buckets) > 10_000:  # forget the peers whose bucket has filled up again
            full = self.burst * self.every
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
        tokens, then = self._buckets.get(peer, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) / self.every)
        if tokens < 1:
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - 1, now)
        return True
