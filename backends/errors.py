"""The errors berth shows to people: a sentence saying what failed and what to do next.

Every backend raises a `BerthError` kind instead of leaking an SDK exception to the UI; the TUI and
CLI print `str(error)` and never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


class BerthError(Exception):
    """A failure the user can act on: `message` says what failed, `hint` what to do about it."""

    kind = "error"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip() if self.hint else self.message


class Unreachable(BerthError):
    """A host, socket or engine that could not be reached (berth retries these)."""

    kind = "unreachable"


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
