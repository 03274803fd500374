"""Tracebacks go to a file under the XDG state dir; people see a sentence and where the details are."""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

from backends import paths
from backends.audit import redact

logger = logging.getLogger("berth")


class _PrivateLog(logging.handlers.RotatingFileHandler):
    """A rotating log whose fresh file after a rollover is 0600 like the first one."""

    def doRollover(self) -> None:
        """Rotate, then make the new file private again."""
        super().doRollover()
        os.chmod(self.baseFilename, 0o600)


class _Redacting(logging.Formatter):
    """Passwords in URLs never reach the file (see `backends.audit.redact`)."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, tracebacks included, with URL passwords redacted."""
        return redact(super().format(record))


def setup_error_log() -> Path:
    """Send berth's log (tracebacks included) to `paths.error_log()` (0600 in a 0700 folder),
    rotating at 1 MB."""
    path = paths.error_log()
    if not any(isinstance(h, logging.FileHandler) for h in logger.handlers):
        paths.private_dir(path.parent)
        paths.private_file(path)  # the handler appends to it, keeping its mode
        handler = _PrivateLog(path, maxBytes=1_000_000, backupCount=3)
        handler.setFormatter(_Redacting("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return path


def log_unexpected(exc: BaseException) -> str:
    """Log `exc` with its traceback and return the sentence to show instead."""
    path = setup_error_log()
    logger.error("unexpected error", exc_info=exc)
    return f"Unexpected error: {exc.__class__.__name__}: {exc}. The details are in {path}."
