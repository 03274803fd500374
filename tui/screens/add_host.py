"""The "Add host" form: name, URL, identity and jump host, checked before it closes."""

from __future__ import annotations

from backends.config import HOST_NAME, Config, HostConfig, add_host
from backends.parse_addresses import HOST_URL
from tui.screens.form import Field, FormScreen

FIELDS = (
    Field("name", "Name", grammar=HOST_NAME, required=True),
    Field("url", "URL", grammar=HOST_URL),
    Field("identity", "Identity file (optional)", "~/.ssh/id_ed25519"),
    Field("jump", "Jump host (optional)", "an inventory name or ssh://user@bastion"),
)


def add_host_form(config: Config) -> FormScreen:
    """The form; it closes with `config` plus the new host (not yet saved), or None.

    A name already in use or a malformed URL is shown under the fields and the form stays open.
    """

    def submit(values: dict[str, str]) -> Config:
        host = HostConfig(
            values["name"],
            values["url"] or "local",
            identity=values["identity"] or None,
            jump=values["jump"] or None,
        )
        return add_host(config, host)

    return FormScreen("Add host", FIELDS, submit, verb="Add")
