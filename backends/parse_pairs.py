"""Pairs people write for a task: environment variables (`K=V`) and shared folders
(`HOST[:GUEST]`); one reader each for the command line's repeated flags and the forms' fields."""

from __future__ import annotations

import shlex
from pathlib import Path

from backends.errors import Invalid
from backends.units import Grammar


def parse_env_pair(text: str) -> tuple[str, str]:
    """(name, value) of one `NAME=value` (the value may be empty, or hold `=`); Invalid otherwise."""
    name, sep, value = text.partition("=")
    if not sep or not name or "\0" in text:
        raise ENV_PAIR.refuse(text)
    return name, value


ENV_PAIR: Grammar[tuple[str, str]] = Grammar("K=V pair", ("LANG=C.UTF-8", "DEBUG=1"), parse_env_pair)
"""One environment variable, as `--env` takes it."""


def parse_env(text: str) -> tuple[tuple[str, str], ...]:
    """The `NAME=value` pairs in `text`, shell words (quote a value with spaces); empty: none."""
    try:
        words = shlex.split(text)
    except ValueError as exc:  # an unclosed quote
        raise ENV.refuse(text, str(exc).lower()) from None
    return tuple(parse_env_pair(word) for word in words)


ENV: Grammar[tuple[tuple[str, str], ...]] = Grammar(
    "list of K=V pairs", ("LANG=C.UTF-8 DEBUG=1", "NAME='two words'"), parse_env
)
"""Environment variables in one field: K=V shell words."""


def parse_folder(text: str) -> tuple[str, str]:
    """(host folder, resolved; the path the task sees it at) of `HOST[:GUEST]`; the task sees the
    host's path when GUEST is left out. Invalid when HOST is no folder here."""
    host, _, guest = text.strip().partition(":")
    path = Path(host).expanduser()
    if not host or not path.is_dir():
        raise Invalid(f"No folder {host!r} to give the task.", FOLDER.hint)  # a path: never cut
    return str(path.resolve()), guest or host


FOLDER: Grammar[tuple[str, str]] = Grammar(
    "folder", ("./data", "./data:/data", "~/out:/out"), parse_folder, "GUEST: where the task sees it"
)
"""A folder of this machine given to a task, as `--dir` takes it."""


def parse_folders(text: str) -> tuple[tuple[str, str], ...]:
    """The `HOST[:GUEST]` folders in `text`, comma-separated (see `parse_folder`); empty: none."""
    return tuple(parse_folder(part) for part in text.split(",") if part.strip())


FOLDERS: Grammar[tuple[tuple[str, str], ...]] = Grammar(
    "list of folders",
    ("./data:/data", "./in:/in, ./more:/more"),
    parse_folders,
    "HOST[:GUEST], comma-separated",
)
"""Folders given to a task in one field."""
