"""The volumes of the Containers pane's hosts (`v` from the images): a view over the pane's
Docker feeds, with the verbs that act on volumes (inspect, remove, prune the unused)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from backends.docker import DockerBackend
from backends.docker_volumes import VolumeInfo
from tui.disk_words import nothing_to_prune, prune_preview, prune_question, prune_summary
from tui.format import age, human_bytes, parse_bytes
from tui.panes.container_rows import text_number, with_host
from tui.panes.resource_view import ResourceView
from tui.screens.confirm import ConfirmScreen
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
        "labels": volume.labels_text,
    }
    return Row(with_host(cells, host))


class VolumesView(ResourceView[DockerBackend, VolumeInfo]):
    """Every volume of the pane's hosts; read when shown and after each verb."""

    TABLE_ID = "volumes-table"
    COLUMNS = VOLUME_COLUMNS
    NOUN = "volumes"
    NOUN_ONE = "volume"
    BINDINGS = bindings("volumes")

    async def read(self, backend: DockerBackend) -> dict[str, VolumeInfo]:
        """The host's volumes by name."""
        return {volume.name: volume for volume in await backend.volumes()}

    def row(self, item: VolumeInfo, host: str | None) -> Row:
        """One volume's row."""
        return volume_row(item, host, time.time())

    # Verbs ---------------------------------------------------------------------------------------

    def label(self, item: VolumeInfo) -> str:
        """A volume is named by its name."""
        return item.name

    async def inspect_item(self, backend: DockerBackend, item: VolumeInfo) -> object:
        """The volume's inspect document."""
        return await backend.inspect_volume(item.name)

    def action_remove(self) -> None:
        """Remove the selected volumes, after asking (naming the containers that use each);
        refused while one is used, unless the question's force option is ticked (offered only
        when every user is stopped: a running one refuses even then)."""
        chosen = self.targets()
        if not chosen or any(self.pane.writable(f) is None for f, _v in chosen):
            return
        hosts = ", ".join(sorted({f.host.name for f, _v in chosen}))
        names = [
            f"{volume.name}  (used by {', '.join(volume.users)})" if volume.users else volume.name
            for _f, volume in chosen
        ]
        used = any(volume.users for _f, volume in chosen)
        running = any(volume.running for _f, volume in chosen)
        question = f"Remove {len(chosen)} volume(s) on {hosts}?"
        option = "Force: remove the stopped containers using it too"

        def answered(answer: tuple[bool, bool] | None) -> None:
            if not answer or not answer[0]:
                return

            async def job() -> None:
                went: list[str] = []
                try:
                    for feed, volume in chosen:
                        assert feed.backend is not None
                        went += await feed.backend.remove_volume(volume.name, force=answer[1])
                finally:
                    self.reload()
                also = f", and the containers {', '.join(went)} with them" if went else ""
                self.notify(f"Removed {len(chosen)} volume(s){also}.", timeout=5)

            self.run_call("remove volume", job)

        self.app.push_screen(
            ConfirmScreen(question, names, "Remove", option if used and not running else None),
            answered,
        )

    def action_prune(self) -> None:
        """Remove the unused volumes of the host under the cursor, after listing each with its size."""
        acting = self.acting_backend()
        if acting is None:
            return
        feed, backend = acting
        host = feed.host.name

        async def preview() -> None:
            unused = (await backend.disk_usage(fresh=True)).kinds["volumes"]
            if not unused.prunable:
                self.notify(nothing_to_prune(unused, host), timeout=3)
                return

            async def prune() -> None:
                try:
                    self.notify(prune_summary(await backend.prune(unused), host))
                finally:
                    self.reload()

            self.app.push_screen(
                ConfirmScreen(prune_question(unused, host), prune_preview(unused), "Prune"),
                lambda answer: self.run_call("prune volumes", prune) if answer and answer[0] else None,
            )

        self.run_call("prune volumes", preview)
