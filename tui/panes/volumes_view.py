"""The volumes of the Containers pane's hosts (`v` from the images): a view over the pane's
Docker feeds, with the verbs that act on volumes."""

from __future__ import annotations

import time
from collections.abc import Sequence

from backends.docker import DockerBackend
from backends.docker_volumes import VolumeInfo
from tui.format import age, human_bytes, parse_bytes
from tui.panes.container_rows import text_number
from tui.panes.resource_view import ResourceView
from tui.verbs import bindings
from tui.widgets.table_model import Column, Row

VOLUME_COLUMNS: Sequence[Column] = (
    Column("name", "VOLUME"),
    Column("driver", "DRIVER", width=8),
    Column("size", "SIZE", width=9, justify="right", sort=text_number(parse_bytes)),
    Column("users", "USED BY"),
    Column("age", "CREATED", width=8, justify="right"),
    Column("labels", "LABELS"),
)


def volume_row(volume: VolumeInfo, host: str | None, now: float) -> Row:
    """One volume's row (a host cell in the all-hosts view)."""
    cells = {
        "name": volume.name,
        "driver": volume.driver,
        "size": "" if volume.size is None else human_bytes(volume.size),
        "users": ", ".join(volume.users),
        "age": age(now - volume.created) if volume.created else "",
        "labels": ", ".join(f"{k}={v}" for k, v in sorted(volume.labels.items())),
    }
    if host is not None:
        cells["host"] = host
    return Row(cells)


class VolumesView(ResourceView[DockerBackend, VolumeInfo]):
    """Every volume of the pane's hosts; read when shown and after each verb."""

    TABLE_ID = "volumes-table"
    COLUMNS = VOLUME_COLUMNS
    NOUN = "volumes"
    BINDINGS = bindings("volumes")

    async def read(self, backend: DockerBackend) -> dict[str, VolumeInfo]:
        """The host's volumes by name."""
        return {volume.name: volume for volume in await backend.volumes()}

    def row(self, item: VolumeInfo, host: str | None) -> Row:
        """One volume's row."""
        return volume_row(item, host, time.time())
