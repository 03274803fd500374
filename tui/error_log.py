"""Tracebacks go to a file under the XDG state dir; people see a sentence and where the details are."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from backends import paths

logger = logging.getLogger("berth")


def setup_error_log() -> Path:
    """Send berth's log (tracebacks included) to `paths.error_log()`, rotating at 1 MB."""
    path = paths.error_log()
    if not any(isinstance(h, logging.FileHandler) for h in logger.handlers):
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=3)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return path


def log_unexpected(exc: BaseException) -> str:
    """Log `exc` with its traceback and return the sentence to show instead."""
    path = setup_error_log()
    logger.error("unexpected error", exc_info=exc)
    return f"Unexpected error: {exc.__class__.__name__}: {exc}. The details are in {path}."
