"""berth's config file and hosts inventory: load (tomllib), validate into typed objects, save (tomli-w).

A config that fails to load is reported with its file, line and key path and is never overwritten:
`save_config` re-reads what is on disk first and refuses to replace a file it could not load.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from backends import paths
from backends.errors import Conflict, Invalid
from backends.parse_addresses import SshTarget, host_url_problem, parse_host_url, parse_listen
from backends.units import Grammar

KeyPath = tuple[str | int, ...]
_T = typing.TypeVar("_T")

RESERVED_NAMES = ("all", "add")
"""Host names the CLI and the `:host` command use as words."""
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def host_name_problem(name: str) -> str | None:
    """What is wrong with a host name, as a fragment the config's errors put after the key
    ("expected letters, digits…"); None for a good one."""
    if not _HOST_NAME.match(name):
        return "expected letters, digits, '.', '_' or '-' (at most 63), starting with a letter or digit"
    if name in RESERVED_NAMES:
        return f"{name!r} is reserved (`--host all`, `:host add`)"
    return None


def parse_host_name(text: str) -> str:
    """A name for a host of the inventory, as written; Invalid otherwise (the Add host form and
    `berth hosts add` name their field before the sentence)."""
    problem = host_name_problem(text)
    if problem is None:
        return text
    if text in RESERVED_NAMES:  # the problem names it already
        raise Invalid(f"Not a host name: {problem}.", HOST_NAME.hint)
    raise HOST_NAME.refuse(text, problem)


HOST_NAME: Grammar[str] = Grammar("host name", ("web-1", "db.lan", "build_2"), parse_host_name)
"""What a host of the inventory is called."""


@dataclass
class UiConfig:
    """The `[ui]` table: look and feel of the console."""

    theme: str = "berth-dark"
    read_only: bool = False
    keymap: dict[str, str] = field(default_factory=dict)


@dataclass
class HostConfig:
    """One `[[hosts]]` entry: a machine berth manages, here (`local`) or over SSH."""

    name: str
    url: str = "local"
    identity: str | None = None
    jump: str | None = None
    docker_socket: str | None = None
    lxd_socket: str | None = None
    read_only: bool = False

    @property
    def is_local(self) -> bool:
        """True for the machine berth runs on."""
        return self.url == "local"

    @property
    def ssh(self) -> SshTarget:
        """The SSH user, host and port of a remote host (raises `Invalid` for `local`)."""
        try:
            target = parse_host_url(self.url)
        except Invalid:
            target = None
        if target is None:
            raise Invalid(f"host {self.name!r} has no ssh:// URL (it is {self.url!r}).")
        return target


@dataclass
class BrokerConfig:
    """The `[broker]` table: a remote broker to use, or how to run the embedded one."""

    url: str | None = None
    token: str | None = None
    listen: str = "127.0.0.1:4080"
    data_dir: str | None = None
    tokens: list[str] = field(default_factory=list)


def _default_hosts() -> list[HostConfig]:
    return [HostConfig(name="local", url="local")]


@dataclass
class Config:
    """Everything in `config.toml`, validated. `path` is where it was read from (or will go)."""

    ui: UiConfig = field(default_factory=UiConfig)
    hosts: list[HostConfig] = field(default_factory=_default_hosts)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    path: Path | None = field(default=None, compare=False)

    def host(self, name: str) -> HostConfig | None:
        """The inventory entry called `name`, if there is one."""
        return next((h for h in self.hosts if h.name == name), None)


def format_key_path(key_path: KeyPath) -> str:
    """Render ("hosts", 2, "url") as `hosts[2].url`."""
    out = ""
    for part in key_path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = f'"{part}"' if "." in part or " " in part else part
        out += f".{name}" if out else name
    return out


class _Problem(Exception):
    """A validation failure at a key path, turned into an `Invalid` with file and line later."""

    def __init__(self, key_path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.key_path = key_path
        self.message = message


_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list of strings"
    if origin is dict:
        return "a table of strings"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    return _TYPE_NAMES.get(tp, str(tp))


def _toml_type(value: Any) -> str:
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _check_value(tp: Any, value: Any, key_path: KeyPath) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _check_value(inner[0], value, key_path)
    if origin is list:
        if not isinstance(value, list):
            raise _Problem(key_path, f"expected {_describe(tp)}, got {_toml_type(value)}")
        return [_check_value(str, v, (*key_path, i)) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Problem(key_path, f"expected {_describe(tp)}, got {_toml_type(value)}")
        return {k: _check_value(str, v, (*key_path, k)) for k, v in value.items()}
    # bool is an int subclass in Python; TOML keeps them apart, and so do we.
    if type(value) is not tp:
        raise _Problem(key_path, f"expected {_describe(tp)}, got {_toml_type(value)}")
    return value


def _build(cls: type[_T], table: Any, key_path: KeyPath) -> _T:
    """Make a dataclass from a TOML table, checking every key's presence and type."""
    if not isinstance(table, dict):
        raise _Problem(key_path, f"expected a table, got {_toml_type(table)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}  # type: ignore[arg-type]
    for key in table:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise _Problem((*key_path, key), f"unknown key (known keys: {known})")
    values: dict[str, Any] = {}
    for name, fld in fields.items():
        if name in table:
            values[name] = _check_value(hints[name], table[name], (*key_path, name))
        elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
            raise _Problem((*key_path, name), "is required")
    return cls(**values)


def _validate_host(host: HostConfig, index: int) -> None:
    where: KeyPath = ("hosts", index)
    problem = host_name_problem(host.name)
    if problem:
        raise _Problem((*where, "name"), problem)
    problem = host_url_problem(host.url)
    if problem:
        raise _Problem((*where, "url"), problem)
    if host.is_local and (host.identity or host.jump):
        key = "identity" if host.identity else "jump"
        raise _Problem((*where, key), "only applies to ssh:// hosts")


def _from_data(data: dict[str, Any]) -> Config:
    allowed = {"ui", "hosts", "broker"}
    for key in data:
        if key not in allowed:
            raise _Problem((key,), f"unknown table (known: {', '.join(sorted(allowed))})")
    ui = _build(UiConfig, data.get("ui", {}), ("ui",))
    broker = _build(BrokerConfig, data.get("broker", {}), ("broker",))
    try:
        parse_listen(broker.listen)
    except Invalid:
        raise _Problem(("broker", "listen"), f"expected HOST:PORT, got {broker.listen!r}") from None
    raw_hosts = data.get("hosts")
    if raw_hosts is None:
        hosts = _default_hosts()
    else:
        if not isinstance(raw_hosts, list):
            raise _Problem(("hosts",), "expected an array of tables ([[hosts]])")
        hosts = []
        seen: dict[str, int] = {}
        for i, raw in enumerate(raw_hosts):
            host = _build(HostConfig, raw, ("hosts", i))
            _validate_host(host, i)
            if host.name in seen:
                raise _Problem(
                    ("hosts", i, "name"),
                    f"duplicate host name {host.name!r} (first used by hosts[{seen[host.name]}])",
                )
            seen[host.name] = i
            hosts.append(host)
        for i, host in enumerate(hosts):
            if host.jump and host.jump not in seen and not _is_ssh_url(host.jump):
                raise _Problem(
                    ("hosts", i, "jump"),
                    f"expected the name of another host or ssh://user@host[:port], got {host.jump!r}",
                )
            if host.jump == host.name:
                raise _Problem(("hosts", i, "jump"), "a host cannot jump through itself")
    return Config(ui=ui, hosts=hosts, broker=broker)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


_KEY_PART = re.compile(r'\s*("[^"]*"|\'[^\']*\'|[^.]+)\s*(?:\.|$)')


def _split_dotted(key: str) -> list[str]:
    """Split a TOML dotted key, keeping quoted parts (`"app.quit"`) whole."""
    return [m[1].strip().strip("\"'") for m in _KEY_PART.finditer(key.strip()) if m[1].strip()]


def locate(text: str, key_path: KeyPath) -> int | None:
    """The 1-based line of `key_path` in TOML `text`, or of its nearest enclosing table.

    A line scanner rather than a parser: tomllib keeps no positions, and berth's config only uses
    tables, arrays of tables and plain keys, which this follows.
    """
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    array_counts: dict[KeyPath, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = tuple(_split_dotted(header[2]))
            if header[1] == "[[":
                index = array_counts.get(name, -1) + 1
                array_counts[name] = index
                table = (*name, index)
            else:
                table = name
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            lines.setdefault((*table, *_split_dotted(assign[1])), number)
    for end in range(len(key_path), 0, -1):
        if key_path[:end] in lines:
            return lines[key_path[:end]]
    return None


def _invalid(path: Path, line: int | None, detail: str) -> Invalid:
    where = f"{path}, line {line}" if line else str(path)
    return Invalid(f"{where}: {detail}.", "Fix the file and start berth again; it was left as it is.")


def parse_config(text: str, path: Path) -> Config:
    """Validate TOML `text` (read from `path`, used in messages) into a `Config`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(match[1]) if match else None
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise _invalid(path, line, f"not valid TOML: {reason}") from None
    try:
        config = _from_data(data)
    except _Problem as problem:
        line = locate(text, problem.key_path)
        raise _invalid(path, line, f"{format_key_path(problem.key_path)}: {problem.message}") from None
    config.path = path
    return config


def load_config(path: Path | None = None) -> Config:
    """Read the config file (default location from `backends.paths`); defaults if there is none."""
    path = path or paths.config_file()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config(path=path)
    except OSError as exc:
        raise Invalid(f"{path}: cannot be read ({exc.strerror}).") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid(path, None, "not UTF-8 text") from None
    return parse_config(text, path)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def to_toml(config: Config) -> str:
    """The TOML text `save_config` writes for `config`: tables first, then one `[[hosts]]` each."""
    head = _drop_none({"ui": dataclasses.asdict(config.ui), "broker": dataclasses.asdict(config.broker)})
    parts = [tomli_w.dumps(head)]
    # tomli-w writes arrays of tables inline; a `[[hosts]]` block per host reads (and diffs) better.
    parts += [f"[[hosts]]\n{tomli_w.dumps(_drop_none(dataclasses.asdict(h)))}" for h in config.hosts]
    return "\n".join(parts)


def save_config(config: Config, path: Path | None = None) -> Path:
    """Write `config` atomically (temp file + rename, mode 0600), keeping the old file as `.bak`
    (0600 too: it holds the same hosts and tokens).

    Refuses to replace a file on disk that does not load: that file holds the user's work. A
    config that is a symlink (into a dotfiles checkout, say) is written through to its target,
    which keeps its `.bak` beside it; the link stays a link.
    """
    path = path or config.path or paths.config_file()
    target = Path(os.path.realpath(path))
    if path.exists():
        try:
            load_config(path)
        except Invalid as exc:
            raise Invalid(
                f"Not saving: {exc.message}",
                "berth never overwrites a config it could not read; fix it first.",
            ) from None
    text = to_toml(config)
    parse_config(text, path)  # never write something we could not read back
    if not target.parent.exists():
        paths.private_dir(target.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)  # made 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        if target.exists():
            _backup(target)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    config.path = path
    return path


def _backup(path: Path) -> None:
    """Copy `path` to `path.bak` as a 0600 file, replacing the last one whatever its mode was."""
    backup = path.with_name(path.name + ".bak")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{backup.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(path.read_bytes())
        os.replace(tmp_name, backup)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _is_ssh_url(url: str) -> bool:
    return url != "local" and host_url_problem(url) is None


def _checked(host: HostConfig, index: int) -> None:
    try:
        _validate_host(host, index)
    except _Problem as problem:
        raise Invalid(f"{format_key_path(problem.key_path)}: {problem}") from None


def adhoc_host(url: str) -> HostConfig:
    """A host from a `ssh://user@host[:port]` URL given on the command line, named after it."""
    try:
        _validate_host(HostConfig("adhoc", url), 0)  # the URL is all there is to check
    except _Problem as problem:
        raise Invalid(f"Not a host URL: {problem}.", "Use ssh://user@host[:port].") from None
    return HostConfig(url.removeprefix("ssh://").rstrip("/"), url)


def add_host(config: Config, host: HostConfig) -> Config:
    """`config` with `host` appended, after the checks loading would make (name, URL, jump)."""
    if config.host(host.name) is not None:
        raise Conflict(f"There is already a host called {host.name!r}.", "Choose another name.")
    if host.jump and config.host(host.jump) is None and not _is_ssh_url(host.jump):
        raise Invalid(f"Jump host {host.jump!r} is neither in the inventory nor an ssh:// URL.")
    _checked(host, len(config.hosts))
    return dataclasses.replace(config, hosts=[*config.hosts, host])
