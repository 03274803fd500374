"""The errors berth shows to people: a sentence saying what failed and what to do next.

Every backend raises a `BerthError` kind instead of leaking an SDK exception to the UI; the TUI and
CLI print `str(error)` and never a traceback.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path


class BerthError(Exception):
    """A failure the user can act on: `message` says what failed, `hint` what to do about it.

    `cli_hint` is the advice for the command line where it differs from the console's (a one-shot
    command does not retry and has no list to refresh; it takes flags): `str()` is the console's
    sentence, `for_cli()` the command line's.
    """

    kind = "error"

    def __init__(self, message: str, hint: str = "", cli_hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.cli_hint = hint if cli_hint is None else cli_hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip() if self.hint else self.message

    def for_cli(self) -> str:
        """The sentence the `berth` command prints: what failed, and what to do at the shell."""
        return f"{self.message} {self.cli_hint}".strip() if self.cli_hint else self.message


class Unreachable(BerthError):
    """A host, socket or engine that could not be reached (the console retries these)."""

    kind = "unreachable"


def connect_reason(exc: BaseException) -> str:
    """Why a connection failed, in the system's words ("Connection refused", "No such file or
    directory"), never a library's own text such as aiohttp's "Cannot connect to host …
    ssl:default [Connect call failed …]"; an answer that broke HTTP says how (backends/http1.py's
    ProtocolError: "a malformed status line …")."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    found: BaseException | None = exc
    while found is not None and not (isinstance(found, OSError) and found.errno):
        found = getattr(found, "os_error", None) or found.__cause__  # aiohttp (the broker) keeps the OSError
    code = found.errno if isinstance(found, OSError) else None
    if code is not None and code in errno.errorcode:
        return os.strerror(code)
    return str(exc) or type(exc).__name__


class NotFound(BerthError):
    """A named thing (container, instance, image, host, theme, task) that does not exist."""

    kind = "not found"


class Conflict(BerthError):
    """The request clashes with what exists: a duplicate name, a port in use, a busy instance."""

    kind = "conflict"


class Invalid(BerthError):
    """Input that is malformed: a config file, a key, a module, a limit out of range."""

    kind = "invalid"


class Denied(BerthError):
    """The engine or host refused: permission denied, unpaired key, read-only mode."""

    kind = "denied"


class HostKeyUnknown(Denied):
    """The host presented a key that no known_hosts file lists for it: the user must decide."""

    def __init__(self, label: str, fingerprint: str, record: Callable[[], Path]) -> None:
        super().__init__(
            f"The host key of {label} is not known: {fingerprint}.",
            "Check it with the host's admin, then accept it (--accept-new on the command line).",
            "Check it with the host's admin, then run the command again with --accept-new.",
        )
        self.label = label
        self.fingerprint = fingerprint
        self.record = record


class HostKeyChanged(Denied):
    """The host presented a key other than the one recorded for it: refused, never overridden."""

    def __init__(self, label: str, fingerprint: str, known: list[str], where: list[Path]) -> None:
        files = ", ".join(str(p) for p in where)
        super().__init__(
            f"The host key of {label} has CHANGED: it is now {fingerprint}, "
            f"but {files} has {', '.join(known)}. This may be an attack; berth refuses to connect.",
            "If the host was really reinstalled, remove its old line from known_hosts yourself.",
        )
        self.fingerprint = fingerprint
        self.known = known
