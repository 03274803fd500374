"""The networks of the Containers pane's hosts (`v` from the volumes): a view over the pane's
Docker feeds, with the verbs that act on networks."""

from __future__ import annotations

from collections.abc import Sequence

from backends.docker import DockerBackend
from backends.docker_networks import NetworkInfo
from tui.panes.resource_view import ResourceView
from tui.verbs import bindings
from tui.widgets.table_model import Column, Row

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
    subnet = ", ".join(
        f"{s} via {g}" if g else s
        for s, g in zip(network.subnets, network.gateways + ("",) * len(network.subnets), strict=False)
    )
    flags = [f for f, on in (("internal", network.internal), ("attachable", network.attachable)) if on]
    cells = {
        "name": network.name,
        "driver": network.driver,
        "scope": network.scope,
        "subnet": subnet,
        "containers": ", ".join(network.containers),
        "flags": " ".join(flags),
        "id": network.id,
    }
    if host is not None:
        cells["host"] = host
    return Row(cells)


class NetworksView(ResourceView[DockerBackend, NetworkInfo]):
    """Every network of the pane's hosts; read when shown and after each verb."""

    TABLE_ID = "networks-table"
    COLUMNS = NETWORK_COLUMNS
    NOUN = "networks"
    BINDINGS = bindings("networks")

    async def read(self, backend: DockerBackend) -> dict[str, NetworkInfo]:
        """The host's networks by id."""
        return {network.id: network for network in await backend.networks()}

    def row(self, item: NetworkInfo, host: str | None) -> Row:
        """One network's row."""
        return network_row(item, host)
