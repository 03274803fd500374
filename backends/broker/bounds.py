"""What a task may bring and ask for, checked before the broker accepts it: each bound is a field
of `BrokerSettings` (and a flag of `berth broker serve`); a task past one is refused with
`OutOfBounds`, an HTTP 400 whose message names the field and the bound. A task that sets no memory,
wall-time or output limit gets the broker's defaults, so every task runs bounded.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import msgspec

from backends.broker import protocol as p
from backends.broker.tasks import TaskRequest
from backends.errors import Invalid

if TYPE_CHECKING:
    from backends.broker.core import BrokerSettings

NAME_MAX = 255
"""Bytes of one part of a file name (a folder or the file itself): the file system's own limit."""


class OutOfBounds(Invalid):
    """A task field past one of the broker's bounds (HTTP 400): `field` names it (`limits.fuel`,
    `tasks[3].args[0]`), `detail` says what is wrong with it."""

    def __init__(self, field: str, message: str, setting: str = "") -> None:
        flag, env = f"--{setting.replace('_', '-')}", f"BERTH_BROKER_{setting.upper()}"
        hint = f"Ask for less, or raise {flag} ({env}) on the broker." if setting else ""
        super().__init__(f"{field}: {message}", hint)
        self.field = field
        self.detail = message


def check_task(
    request: TaskRequest,
    settings: BrokerSettings,
    where: str = "",
    known: dict[p.Limits, p.Limits] | None = None,
) -> TaskRequest:
    """`request` with the broker's default limits filled in; OutOfBounds naming the first field
    past its bound (`where` goes before the field's name: `tasks[3].`). `known` keeps limits
    already checked (and settled), for a batch of tasks that ask for the same."""
    limits = known.get(request.limits) if known is not None else None
    if limits is None:
        limits = _check_limits(request.limits, settings, where)
        if known is not None:
            known[request.limits] = limits
    _check_argv(request, settings, where)
    if len(request.stdin) > settings.max_stdin:
        raise _over(where + "stdin", len(request.stdin), settings.max_stdin, "max_stdin", "bytes")
    if request.files or request.datafile:
        check_files(request.files, request.datafile, settings, where)
    return msgspec.structs.replace(request, limits=limits)


def settled(limits: p.Limits, settings: BrokerSettings) -> p.Limits:
    """`limits` with the defaults filled in and each one held within its bound: how a task the
    store kept from before (accepted under other settings) runs now."""
    fuel = None if limits.fuel is None else min(max(1, limits.fuel), settings.max_fuel)
    memory = min(max(1, limits.memory or settings.default_memory), settings.max_memory)
    timeout = limits.timeout if limits.timeout and math.isfinite(limits.timeout) else settings.default_timeout
    output = min(max(1, limits.max_output or settings.default_output), settings.max_output)
    return p.Limits(fuel, memory, min(max(timeout, 0.001), settings.max_timeout), output)


def own_bytes(request: TaskRequest) -> int:
    """What a task holds in memory besides its files: stdin, arguments, environment, name."""
    size = len(request.stdin) + len(request.name) + len(request.datafile)
    if request.args:
        size += sum(map(len, request.args))
    if request.env:
        size += sum(len(k) + len(v) for k, v in request.env.items())
    return size


def check_files(files: dict[str, bytes], datafile: str, settings: BrokerSettings, where: str = "") -> None:
    """OutOfBounds for too many files or bytes, a name that leaves the task's folder or is too
    long or deep, or two names that clash (the same path, or a file that is another's folder)."""
    if len(files) > settings.max_files:
        raise _over(where + "files", len(files), settings.max_files, "max_files", "files")
    total = sum(len(data) for data in files.values())
    if total > settings.max_files_bytes:
        raise _over(where + "files", total, settings.max_files_bytes, "max_files_bytes", "bytes together")
    paths: dict[str, str] = {}
    for name in files:
        path = _path(name, f"{where}files[{_shown(name)}]", settings)
        if path in paths:
            raise OutOfBounds(
                f"{where}files[{_shown(name)}]", f"names the same file as {_shown(paths[path])}."
            )
        paths[path] = name
    for path, name in paths.items():
        folder = path.rpartition("/")[0]
        while folder:
            if folder in paths:
                raise OutOfBounds(
                    f"{where}files[{_shown(paths[folder])}]",
                    f"is a file, and {_shown(name)} needs it to be a folder.",
                )
            folder = folder.rpartition("/")[0]
    if datafile:
        _path(datafile, where + "datafile", settings)


def check_text(field: str, value: str, limit: int, setting: str) -> int:
    """The UTF-8 size of `value`; OutOfBounds when it is longer than `limit` bytes, holds a NUL,
    or is no text (a lone surrogate)."""
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise OutOfBounds(field, "is not valid text (it holds a lone UTF-16 surrogate).") from None
    if size > limit:
        raise _over(field, size, limit, setting, "bytes")
    if "\0" in value:
        raise OutOfBounds(field, "holds a NUL character, which no program can be given.")
    return size


def _check_limits(limits: p.Limits, settings: BrokerSettings, where: str) -> p.Limits:
    field = where + "limits."
    _in_range(field + "fuel", limits.fuel, settings.max_fuel, "max_fuel")
    _in_range(field + "memory", limits.memory, settings.max_memory, "max_memory", " bytes")
    _in_range(field + "max_output", limits.max_output, settings.max_output, "max_output", " bytes")
    timeout = limits.timeout
    if timeout is not None and not 0 < timeout <= settings.max_timeout:  # NaN fails it too
        raise OutOfBounds(
            field + "timeout",
            f"is {timeout:g} s; this broker takes more than 0 and at most {settings.max_timeout:g} s "
            "(max_timeout).",
            "max_timeout",
        )
    return settled(limits, settings)


def _in_range(field: str, value: int | None, high: int, setting: str, unit: str = "") -> None:
    if value is not None and not 1 <= value <= high:
        raise OutOfBounds(
            field, f"is {value:,}{unit}; this broker takes 1 to {high:,}{unit} ({setting}).", setting
        )


def _check_argv(request: TaskRequest, settings: BrokerSettings, where: str) -> None:
    if len(request.args) > settings.max_args:
        raise _over(where + "args", len(request.args), settings.max_args, "max_args", "arguments")
    if len(request.env) > settings.max_env:
        raise _over(where + "env", len(request.env), settings.max_env, "max_env", "variables")
    limit, used = settings.max_argv_bytes, 0
    # Field names are made only for a refusal: most tasks of a big batch pass, and fast.
    texts: list[tuple[str, Any, str]] = [("name", None, request.name)] if request.name else []
    texts += [("args", i, arg) for i, arg in enumerate(request.args)]
    for key, value in request.env.items():
        if not key or "=" in key:
            raise OutOfBounds(f"{where}env[{_shown(key)}]", "is no variable name (it is empty or holds '=').")
        texts.append(("env", key, key + "=" + value))
    for kind, at, text in texts:
        size = _text_size(text)
        used += size if size is not None else 0
        if size is None or used > limit:
            field = where + (kind if at is None else f"{kind}[{at if kind == 'args' else _shown(at)}]")
            check_text(field, text, limit, "max_argv_bytes")  # says what is wrong with the text itself
            raise OutOfBounds(
                field,
                f"brings the name, arguments and environment to {used:,} bytes; this broker takes "
                f"at most {limit:,} together (max_argv_bytes).",
                "max_argv_bytes",
            )


def _text_size(text: str) -> int | None:
    """The UTF-8 size of `text`; None when it holds a NUL or is no text (a lone surrogate)."""
    if "\0" in text:
        return None
    if text.isascii():
        return len(text)
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return None


def _path(name: str, field: str, settings: BrokerSettings) -> str:
    """The file name as a path in the task's folder, checked against the name bounds."""
    check_text(field, name, settings.max_file_name, "max_file_name")
    path = p.sandbox_name(name)
    if path is None:
        raise OutOfBounds(field, "leaves the task's folder; use a path like data/in.csv.")
    parts = path.split("/")
    if len(parts) > settings.max_file_depth:
        raise _over(field, len(parts), settings.max_file_depth, "max_file_depth", "parts")
    if any(len(part.encode()) > NAME_MAX for part in parts):
        raise OutOfBounds(field, f"has a part longer than {NAME_MAX} bytes, the file system's limit.")
    return path


def _over(field: str, value: int, limit: int, setting: str, unit: str) -> OutOfBounds:
    return OutOfBounds(
        field, f"has {value:,} {unit}; this broker takes at most {limit:,} ({setting}).", setting
    )


def _shown(name: str) -> str:
    """A name as a message shows it: quoted, escaped, cut to 80 characters."""
    return repr(name[:80])
