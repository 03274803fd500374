"""The networks of the Containers pane's hosts (`v` from the volumes): a view over the pane's
Docker feeds, with the verbs that act on networks (inspect, create, remove, connect and
disconnect containers, prune the unused).

Connect and disconnect take the containers marked in the containers view (on the network's
host); with none marked, a list of that host's containers to pick one from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from backends.docker import DockerBackend
from backends.docker_models import ContainerInfo
from backends.docker_networks import NetworkInfo, refused_joining, refused_removal
from backends.errors import Invalid
from backends.parse_networks import GATEWAY, NETWORK_NAME, SUBNET, check_gateway
from backends.units import field_error
from tui.panes.container_rows import with_host
from tui.panes.resource_view import ResourceView
from tui.screens.confirm import ConfirmScreen
from tui.verbs import bindings
from tui.widgets.table_model import Column, Row

if TYPE_CHECKING:
    from tui.panes.containers import ContainersPane

NETWORK_COLUMNS: Sequence[Column] = (
    Column("name", "NETWORK"),
    Column("driver", "DRIVER", width=8),
    Column("scope", "SCOPE", width=6),
    Column("subnet", "SUBNET / GATEWAY"),
    Column("containers", "CONTAINERS"),
    Column("flags", "FLAGS"),
)


def network_row(network: NetworkInfo, host: str | None) -> Row:
    """One network's row (a host cell in the all-hosts view)."""
    cells = {
        "name": network.name,
        "driver": network.driver,
        "scope": network.scope,
        "subnet": network.addresses,
        "containers": ", ".join(network.containers),
        "flags": network.flags,
        "id": network.id,
    }
    return Row(with_host(cells, host))


class NetworksView(ResourceView[DockerBackend, NetworkInfo]):
    """Every network of the pane's hosts; read when shown and after each verb."""

    TABLE_ID = "networks-table"
    COLUMNS = NETWORK_COLUMNS
    NOUN = "networks"
    NOUN_ONE = "network"
    BINDINGS = bindings("networks")

    async def read(self, backend: DockerBackend) -> dict[str, NetworkInfo]:
        """The host's networks by id, each with the containers attached."""
        return {network.id: network for network in await backend.networks()}

    def row(self, item: NetworkInfo, host: str | None) -> Row:
        """One network's row."""
        return network_row(item, host)

    # Where the verbs act -----------------------------------------------------------------------

    def marked_containers(self) -> dict[str, list[ContainerInfo]]:
        """The containers marked in the containers view, by host."""
        listing = cast("ContainersPane", self.pane).listing
        marked: dict[str, list[ContainerInfo]] = {}
        for key in self.pane.table.marked_ids():
            if key in listing.containers:
                marked.setdefault(listing.where[key], []).append(listing.containers[key])
        return marked

    # Verbs ---------------------------------------------------------------------------------------

    def label(self, item: NetworkInfo) -> str:
        """A network is named by its name."""
        return item.name

    async def inspect_item(self, backend: DockerBackend, item: NetworkInfo) -> object:
        """The network's inspect document."""
        return await backend.inspect_network(item.id)

    def action_create(self) -> None:
        """Make a network on the cursor row's host from a form: name, driver, subnet, gateway."""
        acting = self.acting_backend()
        if acting is None:
            return
        feed, backend = acting
        host = feed.host.name

        async def ask() -> None:
            drivers = await backend.network_drivers()  # the form's Driver field reads this engine's
            from tui.screens.form import Field, FormScreen

            fields = [
                Field("name", "Name", grammar=NETWORK_NAME, required=True),
                Field("driver", "Driver (default: bridge)", grammar=drivers),
                Field("subnet", "Subnet (optional: the engine picks one)", grammar=SUBNET),
                Field("gateway", "Gateway (optional: the subnet's first address)", grammar=GATEWAY),
            ]
            self.app.push_screen(FormScreen(f"New network on {host}", fields, checked, "Create"), made)

        def checked(values: dict[str, str]) -> dict[str, str]:
            subnet = values["subnet"]
            try:
                check_gateway(SUBNET.parse(subnet) if subnet else None, values["gateway"] or None)
            except Invalid as exc:
                raise field_error("Gateway", exc) from None
            return values

        def made(values: dict[str, str] | None) -> None:
            if values is None:
                return
            name = values["name"]

            async def create() -> None:
                await backend.create_network(
                    name,
                    values["driver"] or "bridge",
                    subnet=values["subnet"] or None,
                    gateway=values["gateway"] or None,
                )
                self.notify(f"Created network {name} on {host}.", timeout=3)
                self.reload()

            self.run_call(f"create network {name}", create)

        self.run_call("new network", ask)

    def action_remove(self) -> None:
        """Remove the selected networks, after asking; the engine's own networks and those with
        containers attached are refused at once, in one sentence naming them."""
        chosen = self.targets()
        if not chosen or any(self.pane.writable(f) is None for f, _n in chosen):
            return
        for feed, network in chosen:
            if refusal := refused_removal(network, feed.host.name):
                self.notify(str(refusal), severity="warning")
                return
        hosts = ", ".join(sorted({f.host.name for f, _n in chosen}))

        async def job() -> None:
            try:
                for feed, network in chosen:
                    assert feed.backend is not None
                    await feed.backend.remove_network(network.id)
            finally:
                self.reload()
            self.notify(f"Removed {', '.join([n.name for _f, n in chosen])}.", timeout=3)

        self.app.push_screen(
            ConfirmScreen(
                f"Remove {len(chosen)} network(s) on {hosts}?", [n.name for _f, n in chosen], "Remove"
            ),
            lambda answer: self.run_call("remove network", job) if answer and answer[0] else None,
        )

    def action_connect(self) -> None:
        """Attach the containers marked in the containers view to the network under the cursor,
        after asking (the marks are not on show here); with none marked, one picked from its
        host's containers."""
        self._join(connect=True)

    def action_disconnect(self) -> None:
        """Detach the marked containers that are attached to the network under the cursor, after
        asking; with none marked, one picked from those attached."""
        self._join(connect=False)

    def _join(self, *, connect: bool) -> None:
        chosen = self.cursor_target()
        if chosen is None:
            return
        feed, network = chosen
        backend = self.pane.writable(feed)
        if backend is None:
            return
        host = feed.host.name
        if refusal := refused_joining(network, host):
            self.notify(str(refusal), severity="warning")
            return
        marked = self.marked_containers()
        on_host = [c.name for c in marked.get(host, ())]
        # Connect who is not attached yet; disconnect who is.
        wanted = [name for name in on_host if (name in network.containers) != connect]

        def run(names: list[str]) -> None:
            async def job() -> None:
                try:
                    for name in names:
                        if connect:
                            await backend.connect_network(network.id, name)
                        else:
                            await backend.disconnect_network(network.id, name)
                finally:
                    self.reload()
                done = "Connected" if connect else "Disconnected"
                self.notify(
                    f"{done} {', '.join(names)} {'to' if connect else 'from'} {network.name}.", timeout=3
                )

            self.run_call(f"{'connect to' if connect else 'disconnect from'} {network.name}", job)

        if marked and not wanted:
            self.notify(self._nothing_marked(network, host, bool(on_host), connect), severity="warning")
        elif wanted:
            verb, way = ("Connect", "to") if connect else ("Disconnect", "from")
            self.app.push_screen(
                ConfirmScreen(
                    f"{verb} the {len(wanted)} container(s) marked in the containers view {way} "
                    f"{network.name} on {host}?",
                    wanted,
                    verb,
                ),
                lambda answer: run(wanted) if answer and answer[0] else None,
            )
        else:
            self._pick(network, host, connect, run)

    def _nothing_marked(self, network: NetworkInfo, host: str, on_host: bool, connect: bool) -> str:
        """Why the marked containers give nothing to connect or disconnect."""
        if not on_host:
            return f"The marked containers are not on {host}, where network {network.name} is."
        if connect:
            return f"The marked containers are all attached to {network.name} already."
        return f"None of the marked containers is attached to {network.name}."

    def _pick(self, network: NetworkInfo, host: str, connect: bool, run: Callable[[list[str]], None]) -> None:
        """With no container marked: pick one of the host's (to connect) or of those attached."""
        listing = cast("ContainersPane", self.pane).listing
        names = sorted(c.name for c in listing.of_host(host) if (c.name in network.containers) != connect)
        if not names:
            self.notify(
                f"No container on {host} to connect to {network.name}: mark some in the containers view."
                if connect
                else f"No container is attached to {network.name}.",
                severity="warning",
            )
            return
        from tui.screens.picker import PickerScreen

        title = f"Connect to {network.name}" if connect else f"Disconnect from {network.name}"
        self.app.push_screen(
            PickerScreen(title, [(name, name) for name in names]),
            lambda picked: run([picked]) if picked else None,
        )

    def action_prune(self) -> None:
        """Remove the unused networks of the cursor row's host, after listing exactly those."""
        acting = self.acting_backend()
        if acting is None:
            return
        feed, backend = acting
        host = feed.host.name

        async def preview() -> None:
            unused = await backend.unused_networks()
            if not unused:
                self.notify(f"No unused networks on {host}: nothing to prune.", timeout=3)
                return

            async def prune() -> None:
                try:
                    removed, kept = await backend.prune_networks(unused)
                finally:
                    self.reload()
                said = f"Pruned {len(removed)} network(s) on {host}" + (
                    f": {', '.join(removed)}." if removed else "."
                )
                if kept:
                    said += f" Kept {', '.join(kept)}: in use or gone since the list was read."
                self.notify(said, timeout=5)

            self.app.push_screen(
                ConfirmScreen(
                    f"Remove the {len(unused)} unused network(s) on {host}?",
                    [n.name for n in unused],
                    "Prune",
                ),
                lambda answer: self.run_call("prune networks", prune) if answer and answer[0] else None,
            )

        self.run_call("prune networks", preview)
