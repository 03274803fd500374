"""The errors berth shows to people: a sentence saying what failed and what to do next.

Every backend raises a `BerthError` kind instead of leaking an SDK exception to the UI; the TUI and
CLI print `str(error)` and never a traceback.
"""

from __future__ import annotations


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
