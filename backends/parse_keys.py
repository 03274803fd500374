"""SSH public keys as people give them: one line, a pasted block, a .pub or authorized_keys file.

One reader for the command line (`--key FILE`, `member keys --add FILE`) and the forms (a key
pasted, or paths of .pub files): blank lines and `#` comments are skipped, each key is checked,
and a bad one is named by its line (and file).
"""

from __future__ import annotations

from pathlib import Path

from backends.errors import Invalid
from backends.units import Grammar, quoted

KEY_PREFIXES = ("ssh-", "ecdsa-", "sk-")
"""How a public key line starts (its type: ssh-ed25519, ecdsa-sha2-nistp256, sk-ssh-…)."""

_KEY_HINT = "Give the line from a .pub file, like `ssh-ed25519 AAAA… you@laptop`."


def check_key(line: str, where: str = "") -> str:
    """One SSH public key line (`ssh-ed25519 AAAA… comment`), stripped; Invalid when it is not one.

    `where` says where the line came from ("on line 3 of alice.pub"), for the error.
    """
    import asyncssh  # loaded only when keys are handled: it is slow to import

    text = line.strip()
    at = f" {where}" if where else ""
    if not text or "\n" in text:
        raise Invalid(f"Not one SSH public key{at}: {quoted(text)}.", "Give one line from a .pub file.")
    try:
        asyncssh.import_public_key(text)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise Invalid(f"Not an SSH public key{at}: {quoted(text)} ({exc}).", _KEY_HINT) from None
    return text


def key_lines(text: str, source: str = "") -> list[str]:
    """The keys in `text` (a pasted block or a file's content), one a line, each checked; blank
    lines and `#` comments are skipped. `source` names the file in errors."""
    of = f" of {source}" if source else ""
    lines = text.splitlines()
    keys = [
        check_key(line, f"on line {number}{of}" if len(lines) > 1 or source else "")
        for number, line in enumerate(lines, 1)
        if line.strip() and not line.strip().startswith("#")
    ]
    if not keys:
        raise Invalid(f"{source or 'That'} holds no SSH public key.", "Give a .pub file, or paste its line.")
    return keys


def read_key_file(path: Path) -> list[str]:
    """The keys in a .pub or authorized_keys file (see `key_lines`)."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Invalid(
            f"No key file {str(path)!r}.", "Paste the key itself, or give .pub files.", "Give a .pub file."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise Invalid(f"Could not read {path}: {why}.") from None
    return key_lines(text, str(path))


def is_pasted(text: str) -> bool:
    """True when `text` is keys themselves (a key line, a comment, several lines), not paths."""
    return "\n" in text.strip() or text.lstrip().startswith(("#", *KEY_PREFIXES))


def read_keys(text: str) -> tuple[str, ...]:
    """The keys a form field holds: pasted keys (see `key_lines`), or comma-separated paths of
    .pub files, each read with `read_key_file`. Empty: none."""
    if not text.strip():
        return ()
    if is_pasted(text):
        return tuple(key_lines(text))
    return tuple(key for part in text.split(",") if part.strip() for key in read_key_file(Path(part.strip())))


KEYS: Grammar[tuple[str, ...]] = Grammar(
    "SSH public key",
    ("ssh-ed25519 AAAA… me@laptop", "~/.ssh/id_ed25519.pub"),
    read_keys,
    "pasted keys one a line, # comments and blank lines skipped; or .pub files, comma-separated",
)
"""Keys pasted or in .pub files, as a form field takes them."""
