"""Read-only mode: which verbs change state, and why berth may not run them here.

One catalogue for the whole console: binding ids of every verb that changes something (the same
verbs write the audit log). Panes and screens hide them from the footer through `check_action`
(`tui.acting.permitted`), the app refuses them with one notification when they are invoked anyway
(a remapped key, `App.run_action`), and the CLI refuses its own state-changing verbs with the same
sentence. No Textual here: the CLI imports it too.

Read-only comes from three places: `berth --read-only` and `[ui] read_only = true` (everything:
no engine, broker, task pool or config file is changed) and a host's `read_only = true` (only
that host's engines).
"""

from __future__ import annotations

from collections.abc import Sequence

from backends.config import Config, HostConfig

HOST = "host"
"""A verb that acts on an inventory host's engines: refused there when the host is read-only."""
CONSOLE = "console"
"""A verb that acts on berth's own task pool or broker: refused only when all of berth is read-only."""

# fmt: off
STATE_CHANGING: dict[str, str] = {
    # Containers (the images view shares `remove`; a shell can change anything in the container)
    "containers.stop": HOST, "containers.start": HOST, "containers.restart": HOST,
    "containers.pause": HOST, "containers.remove": HOST, "containers.exec": HOST,
    "containers.up": HOST, "containers.down": HOST, "containers.move": HOST, "containers.prune": HOST,
    # Members (a backup makes an LXD backup on the host; a shell can change anything)
    "members.new": HOST, "members.stop": HOST, "members.start": HOST, "members.restart": HOST,
    "members.freeze": HOST, "members.delete": HOST, "members.backup": HOST, "members.import": HOST,
    "members.shell": HOST,
    "keys.add": HOST, "keys.remove": HOST, "forwards.add": HOST, "forwards.remove": HOST,
    "snapshots.take": HOST, "snapshots.restore": HOST, "snapshots.delete": HOST, "snapshots.schedule": HOST,
    # Wasm tasks: they run in berth's own pool (or go to the broker) and change its history
    "wasm.new": CONSOLE, "wasm.rerun": CONSOLE, "wasm.cancel": CONSOLE, "wasm.drop": CONSOLE,
    # Providers: the broker's pairings and connections; `P` starts a process on the current host
    "providers.approve": CONSOLE, "providers.drain": CONSOLE, "providers.disconnect": CONSOLE,
    "providers.unpair": CONSOLE,
    "providers.start": HOST,
}
# fmt: on


def changes_state(binding_id: str | None) -> bool:
    """True for a binding that changes something (refused in read-only mode)."""
    return binding_id in STATE_CHANGING


def refusal(config: Config, hosts: Sequence[HostConfig] = (), *, flag: bool = False) -> str | None:
    """Why nothing may be changed, or None when it may.

    All of berth is read-only with `flag` (`--read-only`) or `[ui] read_only`; otherwise `hosts`
    (the hosts a verb would act on) refuse when every one of them is read-only. No hosts: only
    the global switch counts (berth's own pool, broker and config file).
    """
    if flag:
        return "berth runs read-only (--read-only)"
    if config.ui.read_only:
        return "berth runs read-only ([ui] read_only in the config)"
    if hosts and all(h.read_only for h in hosts):
        return f"{hosts[0].name} is read-only here (read_only = true in the config)"
    return None
