"""Read-only mode: which verbs change state, and why berth may not run them here.

The verbs that change something (the same verbs write the audit log) are those `tui.verbs`
declares with `changes` (HOST or CONSOLE). Panes and screens hide them from the footer through
`check_action` (`tui.acting.permitted`), the app refuses them with one notification when they are
invoked anyway (a remapped key, `App.run_action`), and the CLI refuses its own state-changing verbs
with the same sentence. No Textual here: the CLI imports it too.

Read-only comes from three places: `berth --read-only` and `[ui] read_only = true` (everything:
no engine, broker, task pool or config file is changed) and a host's `read_only = true` (only
that host's engines).
"""

from __future__ import annotations

from collections.abc import Sequence

from backends.config import Config, HostConfig
from tui.verbs import Scope, all_verbs, find


def state_changing() -> dict[str, Scope]:
    """Binding id -> HOST or CONSOLE for every verb that changes something (the registry says)."""
    return {verb.id: verb.changes for verb in all_verbs() if verb.changes}


def scope_of(binding_id: str | None) -> Scope | None:
    """HOST or CONSOLE for a binding that changes something (refused read-only), else None."""
    verb = find(binding_id)
    return verb.changes if verb is not None else None


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
