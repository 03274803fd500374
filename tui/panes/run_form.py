"""The form that runs a container from an image (`n` in the images view): the settings `docker
run` takes, each field read by its grammar, run on the host of the image under the cursor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backends.docker_run import RunSpec
from backends.parse_container import (
    COMMAND,
    CONTAINER_NAME,
    CPUS,
    MOUNTS,
    PORT_MAPPINGS,
    RESTART_POLICY,
)
from backends.parse_images import IMAGE_REF
from backends.parse_networks import NETWORK_NAME
from backends.parse_pairs import ENV
from backends.units import SIZE
from tui.acting import run_job
from tui.jobs import Job
from tui.screens.form import Field, FormScreen

if TYPE_CHECKING:
    from tui.panes.images_view import ImagesView


def run_fields(image: str) -> tuple[Field, ...]:
    """The form's fields, the image prefilled."""
    return (
        Field("image", "Image", value=image, grammar=IMAGE_REF, required=True),
        Field("name", "Name (optional: Docker picks one)", grammar=CONTAINER_NAME),
        Field("command", "Command (optional: the image's own)", grammar=COMMAND),
        Field("env", "Env (K=V, one a line or space-separated)", grammar=ENV, lines=2),
        Field("ports", "Ports (one a line or comma-separated)", grammar=PORT_MAPPINGS, lines=2),
        Field("mounts", "Mounts (one a line or comma-separated)", grammar=MOUNTS, lines=2),
        Field("network", "Network (optional: the engine's default)", grammar=NETWORK_NAME),
        Field("restart", "Restart policy (optional: no)", grammar=RESTART_POLICY),
        Field("memory", "Memory limit (optional)", grammar=SIZE),
        Field("cpus", "CPUs (optional)", grammar=CPUS),
    )


def run_spec(values: dict[str, str]) -> RunSpec:
    """The form's values (each already read by its field's grammar) as what to run."""
    return RunSpec(
        IMAGE_REF.parse(values["image"]),
        name=CONTAINER_NAME.parse(values["name"]) if values["name"] else "",
        command=COMMAND.parse(values["command"]),
        env=ENV.parse(values["env"]),
        ports=PORT_MAPPINGS.parse(values["ports"]),
        mounts=MOUNTS.parse(values["mounts"]),
        network=NETWORK_NAME.parse(values["network"]) if values["network"] else "",
        restart=RESTART_POLICY.parse(values["restart"]) if values["restart"] else None,
        memory=SIZE.parse(values["memory"]) if values["memory"] else None,
        cpus=CPUS.parse(values["cpus"]) if values["cpus"] else None,
    )


def ask_run(view: ImagesView) -> None:
    """Open the form for the image under the cursor (empty on an empty list) and run the
    container it describes on that image's host (the pane's host when there is none), as a job."""
    pane = view.pane
    key = view.table.cursor_id()
    feed = pane.feeds.get((view.host_of(key) if key else None) or pane.host.name) or pane.home
    backend = pane.writable(feed)
    if backend is None:
        return
    image = view.items.get(key) if key else None
    host = feed.host.name

    def chosen(spec: RunSpec | None) -> None:
        if spec is None:
            return
        what = spec.name or spec.image

        async def work(job: Job) -> None:
            job.detail = (await backend.run(spec)).removeprefix("sha256:")[:12]

        run_job(view, f"run {what} on {host}", host, work, done=f"{what} runs on {host}.")

    prefill = (image.tags[0] if image.tags else image.id) if image is not None else ""
    view.app.push_screen(
        FormScreen(f"Run a container on {host}", run_fields(prefill), run_spec, "Run"), chosen
    )
