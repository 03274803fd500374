"""The `:` command line (k9s style): parsing typed commands and their aliases into verbs."""

from __future__ import annotations

from dataclasses import dataclass

from backends.errors import Invalid

# verb -> (the words that invoke it, what it does); the first word is the one shown in help.
VERBS: dict[str, tuple[tuple[str, ...], str]] = {
    "host": (("host", "hosts", "ctx"), "host NAME, `all` or `add` (none: pick)"),
    "theme": (("theme", "skin"), "switch theme and save it (no NAME: pick one)"),
    "quit": (("q", "quit", "q!", "exit"), "quit berth"),
    "help": (("help", "h", "?"), "show keys and commands"),
    "audit": (("audit", "aud"), "the audit log: every action that changed something, newest first"),
    "jobs": (("jobs", "job"), "long operations (moves, backups, imports, batches) with progress; c cancels"),
    "pane.containers": (("containers", "ctr", "docker", "dp"), "show the Containers pane, on its containers"),
    "view.images": (("images", "img"), "the Containers pane's images"),
    "view.volumes": (("volumes", "vol"), "the Containers pane's volumes"),
    "view.networks": (("networks", "net"), "the Containers pane's networks"),
    "df": (("df", "disk"), "disk usage of the hosts on show by kind, with what a prune gives back; P prunes"),
    "pane.members": (("members", "mem", "lxd"), "show the Members pane"),
    "pane.wasm": (("wasm", "tasks"), "show the Wasm tasks pane"),
    "pane.providers": (("providers", "prov", "broker"), "show the Providers pane"),
}
_ALIASES = {word: verb for verb, (words, _) in VERBS.items() for word in words}
_MAX_ARGS = {"host": 1, "theme": 1}


@dataclass(frozen=True)
class Command:
    """A parsed `:` command: the verb it stands for and its arguments."""

    verb: str
    args: tuple[str, ...] = ()


def parse_command(text: str) -> Command:
    """Parse `:host web-1` (leading colon optional) into a `Command`; `Invalid` if unknown."""
    words = text.strip().removeprefix(":").split()
    if not words:
        raise Invalid("Empty command.", "Type a command such as :host NAME, :theme NAME or :q.")
    verb = _ALIASES.get(words[0].lower())
    if verb is None:
        raise Invalid(f"Unknown command ':{words[0]}'.", "Type :help for the list of commands.")
    args = tuple(words[1:])
    if len(args) > _MAX_ARGS.get(verb, 0):
        raise Invalid(f"':{words[0]}' takes at most {_MAX_ARGS.get(verb, 0)} argument(s).")
    return Command(verb, args)


def completions() -> list[str]:
    """Every word the command line completes, as typed there: the prompt shows the colon, so its
    text (what a suggestion must start with) never holds one."""
    return [word for words, _ in VERBS.values() for word in words]
