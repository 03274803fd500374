"""Pulling an image from the images view (`p`): the reference asked in a form (the IMAGE_REF
grammar), then the pull as a job whose layers `:jobs` shows, on the host of the view (in the
all-hosts view, the host of the row under the cursor); the list is read again after."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backends.docker import short
from backends.docker_pull import PullProgress
from backends.parse_images import IMAGE_REF
from tui.acting import run_job
from tui.jobs import Job
from tui.pull_progress import layer_lines, pull_summary
from tui.screens.form import Field, FormScreen

if TYPE_CHECKING:
    from tui.panes.images_view import ImagesView

PULL_FIELDS = (Field("ref", "Image", grammar=IMAGE_REF, required=True),)


def ask_pull(view: ImagesView) -> None:
    """Ask for a reference and pull it on the view's host as a job."""
    acting = view.acting_backend()
    if acting is None:
        return
    feed, backend = acting
    host = feed.host.name

    def pull(values: Any) -> None:
        if not values:
            return
        ref = IMAGE_REF.parse(values["ref"])

        async def work(job: Job) -> None:
            def report(progress: PullProgress) -> None:
                job.progress(
                    progress.done, progress.total or None, pull_summary(progress), layer_lines(progress)
                )

            image_id = await backend.pull(ref, report)
            job.detail = f"{ref} is {short(image_id)} on {host}"

        run_job(
            view,
            f"pull {ref}",
            host,
            work,
            unit="bytes",
            done=f"Pulled {ref} on {host}.",
            after=view.reload,
        )

    view.app.push_screen(FormScreen(f"Pull an image on {host}", PULL_FIELDS, lambda v: v, "Pull"), pull)
