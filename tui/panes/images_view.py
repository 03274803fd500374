"""The images of the Containers pane's hosts (`v` shows them): a view over the pane's Docker
feeds, with the verbs that act on images (move to another host, remove, prune the dangling)."""

from __future__ import annotations

from typing import Any

from backends.docker import DockerBackend
from backends.docker_models import ImageInfo
from tui.acting import run_job
from tui.format import human_bytes
from tui.jobs import Job
from tui.models.host_feed import HostFeed
from tui.panes.container_rows import IMAGE_COLUMNS, image_label, image_row
from tui.panes.resource_view import ResourceView
from tui.screens.confirm import ConfirmScreen
from tui.verbs import bindings
from tui.widgets.table_model import Row

ImageFeed = HostFeed[DockerBackend, Any]


class ImagesView(ResourceView[DockerBackend, ImageInfo]):
    """Every image of the pane's hosts; read when shown and after each verb."""

    TABLE_ID = "images-table"
    COLUMNS = IMAGE_COLUMNS
    NOUN = "images"
    NOUN_ONE = "image"
    BINDINGS = bindings("images")

    async def read(self, backend: DockerBackend) -> dict[str, ImageInfo]:
        """The host's images by id, each with how many containers use it."""
        return {image.id: image for image in await backend.images()}

    def row(self, item: ImageInfo, host: str | None) -> Row:
        """One image's row."""
        return image_row(item, host=host)

    def label(self, item: ImageInfo) -> str:
        """An image is named by its first tag, else its short id."""
        return image_label(item)

    async def inspect_item(self, backend: DockerBackend, item: ImageInfo) -> object:
        """The image's inspect document."""
        return await backend.inspect_image(item.id)

    # Verbs ---------------------------------------------------------------------------------------

    def action_move(self) -> None:
        """Stream the selected image(s) to another host of the inventory, each by its repo:tags
        (all of them, so it arrives tagged as it is here; an untagged one by its id)."""
        chosen = [(feed, image) for feed, image in self.targets() if feed.backend is not None]
        if not chosen:
            return
        pane = self.pane
        sources = {f.host.name for f, _i in chosen}
        others = [(h.name, f"{h.name}  {h.url}") for h in pane.config.hosts if h.name not in sources]
        if not others:
            self.notify("The inventory has no other host to move images to.", severity="warning")
            return

        def picked(name: str | None) -> None:
            target_host = pane.config.host(name) if name else None
            if target_host is None:
                return

            for feed, image in chosen:
                refs = list(image.tags) or [image.id]
                what = image_label(image)

                async def move(job: Job, feed: ImageFeed = feed, refs: list[str] = refs) -> None:
                    assert feed.backend is not None
                    target = await DockerBackend.for_session(pane.sessions.get(target_host))
                    try:
                        moved = await feed.backend.move_image(
                            refs,
                            target,
                            lambda sent, size: job.progress(sent, size, f"{human_bytes(sent)} sent"),
                        )
                    finally:
                        await target.close()
                    job.detail = f"now {moved.removeprefix('sha256:')[:12]} on {target_host.name}"

                run_job(
                    self,
                    f"move image {what} to {target_host.name}",
                    feed.host.name,
                    move,
                    unit="bytes",
                    done=f"{what} is now on {target_host.name}.",
                )

        from tui.screens.picker import PickerScreen

        self.app.push_screen(PickerScreen("Move image to host", others), picked)

    def action_run(self) -> None:
        """Run a container from the image under the cursor, from a form (tui/panes/run_form.py)."""
        from tui.panes.run_form import ask_run

        ask_run(self)

    def action_pull(self) -> None:
        """Pull an image by its reference on the host of the view, as a job (tui/panes/pull_form.py)."""
        from tui.panes.pull_form import ask_pull

        ask_pull(self)

    def ask_remove(self) -> None:
        """Remove the selected images, after asking (naming them)."""
        chosen = self.targets()
        if not chosen or any(self.pane.writable(f) is None for f, _i in chosen):
            return
        names = [image_label(image) for _f, image in chosen]
        hosts = ", ".join(sorted({f.host.name for f, _i in chosen}))

        async def job() -> None:
            for feed, image in chosen:
                assert feed.backend is not None
                await feed.backend.remove_image(image.id)
            self.notify(f"Removed {len(chosen)} image(s).", timeout=3)
            self.reload()

        self.app.push_screen(
            ConfirmScreen(f"Remove {len(chosen)} image(s) on {hosts}?", names, "Remove"),
            lambda answer: self.run_call("remove image", job) if answer and answer[0] else None,
        )

    def action_prune(self) -> None:
        """Remove dangling images of the host under the cursor, after asking."""
        pane = self.pane
        acting = self.acting_backend()
        if acting is None:
            return
        feed, backend = acting
        dangling = [
            k.rpartition("/")[2] if pane.all_hosts else k
            for k, row in self.table.rows.items()
            if not row.cells.get("tags") and (not pane.all_hosts or k.startswith(f"{feed.host.name}/"))
        ]

        async def job() -> None:
            count, reclaimed = await backend.prune_images()
            self.notify(
                f"Pruned {count} dangling image(s) on {feed.host.name}, {human_bytes(reclaimed)} reclaimed."
            )
            self.reload()

        self.app.push_screen(
            ConfirmScreen(
                f"Remove the dangling images on {feed.host.name}?",
                [d.removeprefix("sha256:")[:12] for d in dangling] or ["(none listed)"],
                "Prune",
            ),
            lambda answer: self.run_call("prune", job) if answer and answer[0] else None,
        )
