"""The audit log: one JSON line per action that changes or destroys something, who and where."""

from __future__ import annotations

import getpass
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backends.errors import BerthError
from backends.paths import state_dir


def audit_file() -> Path:
    """Where the audit log lives (XDG state dir)."""
    return state_dir() / "audit.jsonl"


def audit(host: str, action: str, targets: list[str], outcome: str = "ok", **details: Any) -> None:
    """Append one record; never raises (an unwritable log must not block the action itself)."""
    record = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "user": getpass.getuser(),
        "pid": os.getpid(),
        "host": host,
        "action": action,
        "targets": targets,
        "outcome": outcome,
        **details,
    }
    try:
        path = audit_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
    except OSError:
        pass


def read_audit(limit: int = 100) -> list[dict[str, Any]]:
    """The last `limit` records, oldest first."""
    try:
        lines = audit_file().read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [json.loads(line) for line in lines[-limit:] if line.strip()]


@contextmanager
def audited(host: str, action: str, targets: list[str], **details: Any) -> Iterator[None]:
    """Record the action wrapped in this block, with "failed: why" when it raised a BerthError."""
    try:
        yield
    except BerthError as exc:
        audit(host, action, targets, f"failed: {exc.message}", **details)
        raise
    audit(host, action, targets, **details)
