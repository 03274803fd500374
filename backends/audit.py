"""The audit log: one JSON line per action that changes or destroys something, who and where."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from backends.errors import BerthError
from backends.paths import open_private, private_dir, state_dir

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*):[^/\s]*@")
REDACTED = "***"


def audit_file() -> Path:
    """Where the audit log lives (XDG state dir)."""
    return state_dir() / "audit.jsonl"


def redact(text: str) -> str:
    """`text` with the password of every URL in it (`scheme://user:password@host`) replaced by ***.

    Everything that writes a URL to a log or the audit log passes it through here first.
    """
    return _URL_PASSWORD.sub(rf"\g<head>:{REDACTED}@", text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


def audit(host: str, action: str, targets: list[str], outcome: str = "ok", **details: Any) -> None:
    """Append one record; never raises (an unwritable log must not block the action itself).

    The log is 0600 in a 0700 folder, and passwords in URLs are redacted (see `redact`).
    """
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
        private_dir(path.parent)
        with os.fdopen(open_private(path), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_redacted(record), sort_keys=True) + "\n")
    except OSError:
        pass


def read_audit(limit: int = 100) -> list[dict[str, Any]]:
    """The last `limit` records, oldest first. Only the end of the file is read (it grows for
    ever), and a line that is not a JSON object (cut short by a full disk, say) is skipped."""
    try:
        with audit_file().open("rb") as fh:
            lines = _last_lines(fh, limit)
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _last_lines(fh: BinaryIO, limit: int, block: int = 1 << 16) -> list[bytes]:
    """The last `limit` non-blank lines of a file, read backwards a block at a time."""
    end = fh.seek(0, os.SEEK_END)
    data = b""
    position = end
    while position > 0 and data.count(b"\n") <= limit:
        step = min(block, position)
        position -= step
        fh.seek(position)
        data = fh.read(step) + data
    lines = data.split(b"\n")
    if position > 0:
        lines = lines[1:]  # the first one is cut: it began before the part read
    return [line for line in lines if line.strip()][-limit:] if limit > 0 else []


@contextmanager
def audited(host: str, action: str, targets: list[str], **details: Any) -> Iterator[None]:
    """Record the action wrapped in this block, with "failed: why" when it raised a BerthError and
    "interrupted" when it was cancelled while waiting (the engine may have done it all the same)."""
    try:
        yield
    except BerthError as exc:
        audit(host, action, targets, f"failed: {exc.message}", **details)
        raise
    except asyncio.CancelledError:
        audit(host, action, targets, "interrupted: berth stopped waiting; it may have happened", **details)
        raise
    audit(host, action, targets, **details)
