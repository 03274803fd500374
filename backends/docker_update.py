"""Docker updating a container to a newly pulled image: recreate safely, swap back on failure.

The container's image reference (its `Config.Image`) is pulled. When that gives another image, a
new container is made from it with the old one's settings (watchtower's rule: a setting equal to
the old image's default is left for the new image to give), first under a name of its own, so a
setting the engine refuses costs nothing. Then the old container is stopped and renamed aside,
the new one takes its name and starts, and the old one is removed only once the new one stays up
(and is healthy, when it has a health check). Otherwise the new one goes, the old one gets its
name back and runs again, and one sentence says why. A compose service is updated through compose
instead (`pull SERVICE`, then `up -d SERVICE`), which recreates it from its own files.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from backends.audit import audit, audited
from backends.compose import run_compose
from backends.docker_calls import EngineCalls
from backends.docker_logs import LogRequest, follow_logs
from backends.docker_models import PROJECT_LABEL, SERVICE_LABEL, ComposeProject, ContainerInfo
from backends.docker_pull import PullProgress
from backends.engine_http import json_filter
from backends.errors import BerthError, Invalid
from backends.hosts import HostSession

STAY_UP = 3.0
"""Seconds the new container must keep running (without a restart) before the old one goes: a
command that exits at once is caught, even under a restart policy that starts it again."""
POLL = 0.25
"""Seconds between looks at the new container while it has to prove itself."""
HEALTH_WAIT_MAX = 300.0
"""The longest wait for a health check to say healthy, whatever its own timings allow."""
OLD_SUFFIX = ".berth-old"
"""The old container's name while it is set aside: `NAME.berth-old-<short id>`."""
NEW_SUFFIX = ".berth-new"
"""The new container's name until it takes the old one's."""
NUMBER_LABEL = "com.docker.compose.container-number"
NO_HEALTHCHECK = ("NONE",)
LAST_LINE_CHARS = 160

UpdateProgress = Callable[[str, PullProgress | None], None]
"""Called as an update goes: what it does now ("pulling …", "starting the new container"), and
the pull's progress while it pulls."""


def _short(ref: str) -> str:
    return ref.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class UpdateResult:
    """How one container's update went: its ids and image ids before and after (the same when
    its image was up to date)."""

    name: str
    ref: str
    """The image reference that was pulled."""
    old_id: str
    new_id: str
    old_image: str
    new_image: str
    compose: bool = False
    """Done through compose (the container is a compose service)."""

    @property
    def updated(self) -> bool:
        """True when a new container replaced the old one."""
        return self.new_id != self.old_id

    def sentence(self) -> str:
        """What happened, as the toast and the command line say it."""
        if not self.updated:
            return f"{self.name} is up to date ({self.ref} is still image {_short(self.new_image)})."
        return (
            f"{self.name} updated: {_short(self.old_id)} → {_short(self.new_id)} "
            f"(image {_short(self.old_image)} → {_short(self.new_image)})."
        )

    def to_json(self, host: str) -> dict[str, Any]:
        """The result as `berth --json update` prints it."""
        return {
            "host": host,
            "name": self.name,
            "image": self.ref,
            "updated": self.updated,
            "old_id": self.old_id,
            "new_id": self.new_id,
            "old_image": self.old_image,
            "new_image": self.new_image,
            "compose": self.compose,
        }


@dataclass
class _Swap:
    """Where a replacement stands, so a failure at any point can undo exactly what was done."""

    name: str
    old_id: str
    new_id: str
    aside: str
    was_running: bool
    stopped: bool = False
    renamed: bool = False


class UpdateCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""

    pull: Callable[[str, Callable[[PullProgress], None] | None], Awaitable[str]]
    """`PullCalls.pull`, the sibling base's: the pull an update begins with."""

    async def update(
        self,
        container: str,
        progress: UpdateProgress | None = None,
        *,
        session: HostSession | None = None,
    ) -> UpdateResult:
        """Pull the image reference of `container` (a name or id) and, when that gave a new image,
        replace the container by one made from it with the same settings; see the module's
        docstring for the order that keeps the old one safe. `session` (the host's) is what a
        compose service is updated through.

        Raises a `BerthError` saying why when the new container did not stay up (the old one then
        runs again under its name), or when the container cannot be updated this way at all.
        """
        step = progress or (lambda _stage, _pull: None)
        info = await self._inspect(container)
        name = str(info["Name"]).lstrip("/")
        labels = info["Config"].get("Labels") or {}
        if PROJECT_LABEL in labels and SERVICE_LABEL in labels:
            return await self._update_service(info, session, step)
        ref = self._reference(info, name)
        if (info.get("HostConfig") or {}).get("AutoRemove"):
            raise Invalid(
                f"{name} was started with --rm: stopping it would remove it, leaving nothing to go "
                "back to, so berth does not update it.",
                "Recreate it yourself from the new image.",
            )
        try:
            image = await self.http.get_json(f"/images/{info['Image']}/json", "reading the old image")
        except BerthError:
            image = {}  # gone: no default to leave out, everything is kept as the container has it
        if image and not image.get("RepoDigests"):
            # Built or imported here: its name would send the pull to a registry (Docker Hub for
            # a bare name) that never had it.
            raise Invalid(
                f"{name}'s image {ref} was built or imported on {self.host_name}, not pulled: "
                "there is no registry to update it from."
            )
        step(f"pulling {ref}", None)
        new_image = await self.pull(ref, lambda state: step(f"pulling {ref}", state))
        result = UpdateResult(name, ref, info["Id"], info["Id"], info["Image"], new_image)
        if new_image == info["Image"]:
            return result
        body, others = self._recreated(info, image, ref)
        step("creating the new container", None)
        try:
            created = await self.http.post(
                "/containers/create", f"creating the new {name}", {"name": name + NEW_SUFFIX}, body
            )
        except BerthError as exc:
            raise BerthError(
                f"{name} was not updated: {exc.message.rstrip('.')}; nothing was changed.", exc.hint
            ) from exc
        swap = _Swap(
            name,
            info["Id"],
            str(created["Id"]),
            f"{name}{OLD_SUFFIX}-{_short(info['Id'])}",
            bool(info["State"].get("Running")),
        )
        fields = {"names": [name], "new_id": swap.new_id, "image": ref, "old_image": info["Image"]}
        with audited(self.host_name, "container.update", [swap.old_id], new_image=new_image, **fields):
            await self._replace(swap, others, step)
        return UpdateResult(name, ref, swap.old_id, swap.new_id, info["Image"], new_image)

    async def _inspect(self, container: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.http.get_json(
            f"/containers/{container}/json", f"inspecting {_short(container)}"
        )
        return found

    @staticmethod
    def _reference(info: dict[str, Any], name: str) -> str:
        """The image reference the container was made from; refused when it was an image id."""
        ref = str(info["Config"].get("Image") or "")
        bare = ref.removeprefix("sha256:")
        if not ref or ref.startswith("sha256:") or (len(bare) == 64 and bare.isalnum()):
            raise Invalid(
                f"{name} was made from image id {_short(ref or info['Image'])}, not from a "
                "reference: there is nothing to pull.",
                "Recreate it from an image name and tag.",
            )
        return ref

    # Making the new container --------------------------------------------------------------------

    @staticmethod
    def _recreated(
        info: dict[str, Any], image: dict[str, Any], ref: str
    ) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        """The create body of the new container (config, host config, its first network) and the
        other networks to connect it to before it starts (API 1.41 creates with one network);
        `image` is the old image's inspection (empty when it is gone)."""
        config = _own_settings(dict(info["Config"]), image.get("Config") or {}, info["Id"])
        config["Image"] = ref
        host_config = dict(info.get("HostConfig") or {})
        host_config["Links"] = _create_links(host_config.get("Links"))
        host_config["Binds"] = (host_config.get("Binds") or []) + _anonymous_volumes(info, host_config)
        for port in host_config.get("PortBindings") or {}:
            config.setdefault("ExposedPorts", {})[port] = {}
        networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        mode = str(host_config.get("NetworkMode") or "default")
        endpoints = {net: _endpoint(settings, info["Id"]) for net, settings in networks.items()}
        if mode in ("host", "none") or mode.startswith("container:") or not endpoints:
            return {**config, "HostConfig": host_config}, []
        first = mode if mode in endpoints else ("bridge" if "bridge" in endpoints else next(iter(endpoints)))
        body = {
            **config,
            "HostConfig": host_config,
            "NetworkingConfig": {"EndpointsConfig": {first: endpoints[first]}},
        }
        return body, [(net, endpoint) for net, endpoint in endpoints.items() if net != first]

    # Replacing the old one -------------------------------------------------------------------------

    async def _replace(
        self, swap: _Swap, others: list[tuple[str, dict[str, Any]]], step: UpdateProgress
    ) -> None:
        """Put the created container in the old one's place; swap back and raise when it does not
        stay up. The old one is removed last, its volumes kept (the new one uses them)."""
        try:
            why = await self._swap_in(swap, others, step)
        except asyncio.CancelledError:
            await self._swap_back(swap)
            raise
        if why is not None:
            back = await self._swap_back(swap)
            raise BerthError(
                f"{swap.name} was not updated: the new container {why}; {back}.",
                "Check the new image (its command, health check and settings).",
            )
        step("removing the old container", None)
        await self.http.delete(f"/containers/{swap.old_id}", f"removing the old {swap.name}", {"v": 0})

    async def _swap_in(
        self, swap: _Swap, others: list[tuple[str, dict[str, Any]]], step: UpdateProgress
    ) -> str | None:
        """Connect the new container, stop the old, rename both, start the new one (when the old
        one ran) and watch it: why it failed, or None."""
        http, name = self.http, swap.name
        try:
            for net, endpoint in others:
                await http.post(
                    f"/networks/{net}/connect",
                    f"connecting the new {name} to {net}",
                    body={"Container": swap.new_id, "EndpointConfig": endpoint},
                )
            if swap.was_running:
                step("stopping the old container", None)
                await http.post(f"/containers/{swap.old_id}/stop", f"stopping {name}")
                swap.stopped = True
            await http.post(f"/containers/{swap.old_id}/rename", f"renaming {name}", {"name": swap.aside})
            swap.renamed = True
            await http.post(f"/containers/{swap.new_id}/rename", f"naming the new {name}", {"name": name})
            if not swap.was_running:
                return None  # it stays made, not started, as the old one was
            step("starting the new container", None)
            await http.post(f"/containers/{swap.new_id}/start", f"starting the new {name}")
        except BerthError as exc:
            return f"could not take its place ({exc.message.rstrip('.')})"
        step("waiting for the new container to stay up", None)
        return await self._why_not_up(swap.new_id)

    async def _why_not_up(self, container: str) -> str | None:
        """Watch a container just started: None once it ran `STAY_UP` seconds without a restart
        (and its health check, if any, says healthy); else why not, in words."""
        clock = time.monotonic
        started = clock()
        info = await self._inspect(container)
        check = (info.get("Config") or {}).get("Healthcheck") or {}
        checked = bool(check.get("Test")) and tuple(check["Test"][:1]) != NO_HEALTHCHECK
        deadline = started + max(STAY_UP, _health_wait(check) if checked else 0.0)
        while True:
            state = info.get("State") or {}
            if state.get("Restarting") or state.get("RestartCount") or not state.get("Running"):
                return await self._exit_reason(info)
            health = state.get("Health") or {}
            status = str(health.get("Status") or "")
            if checked and status == "unhealthy":
                return f"was unhealthy{_last_check(health)}"
            up_long_enough = clock() - started >= STAY_UP
            if up_long_enough and (not checked or status == "healthy"):
                return None
            if clock() >= deadline:
                return f"was not healthy after {clock() - started:.0f} s ({status or 'no check yet'})"
            await asyncio.sleep(POLL)
            info = await self._inspect(container)

    async def _exit_reason(self, info: dict[str, Any]) -> str:
        """Why a container is not running: its exit code, the engine's error, its last log line."""
        state = info.get("State") or {}
        code = state.get("ExitCode")
        restarts = bool(state.get("Restarting") or state.get("RestartCount"))
        why = f"kept restarting (exit code {code})" if restarts else f"exited with code {code}"
        if error := str(state.get("Error") or "").strip():
            why += f" ({error.rstrip('.')})"
        if line := await self._last_line(info):
            why += f", its last line: “{line}”"
        return why

    async def _last_line(self, info: dict[str, Any]) -> str:
        """The container's last non-blank log line (shortened), or "" when it wrote none."""

        async def stopped() -> bool:
            return False

        last = ""
        with contextlib.suppress(BerthError):
            async for batch in follow_logs(
                self.http,
                info["Id"],
                LogRequest(tail=5),
                tty=bool((info.get("Config") or {}).get("Tty")),
                is_running=stopped,
                now=time.time,
            ):
                for line in batch:
                    if line.text.strip():
                        last = line.text.strip()
        return last if len(last) <= LAST_LINE_CHARS else last[: LAST_LINE_CHARS - 1] + "…"

    async def _swap_back(self, swap: _Swap) -> str:
        """Undo a replacement: the new container goes, the old one gets its name back and runs
        again if it ran; where the old one is now, in words."""
        http, name = self.http, swap.name
        with contextlib.suppress(BerthError):
            await http.delete(f"/containers/{swap.new_id}", f"removing the new {name}", {"force": 1, "v": 0})
        try:
            if swap.renamed:
                await http.post(f"/containers/{swap.old_id}/rename", f"renaming {name} back", {"name": name})
            if swap.stopped:
                await http.post(f"/containers/{swap.old_id}/start", f"starting the old {name} again")
        except BerthError as exc:
            where = swap.aside if swap.renamed else name
            return (
                f"putting the old one back failed too ({exc.message.rstrip('.')}): it is stopped, "
                f"named {where}"
            )
        return f"the old one is back as {name}" + (", running" if swap.stopped else "")

    # Compose services ------------------------------------------------------------------------------

    async def _update_service(
        self, info: dict[str, Any], session: HostSession | None, step: UpdateProgress
    ) -> UpdateResult:
        """`compose pull SERVICE`, then `compose up -d SERVICE`: compose recreates the service's
        container from its own files when the image changed."""
        name = str(info["Name"]).lstrip("/")
        labels = info["Config"].get("Labels") or {}
        project_name, service = labels[PROJECT_LABEL], labels[SERVICE_LABEL]
        if session is None:
            raise Invalid(
                f"{name} is service {service} of compose project {project_name}: it is updated "
                "through compose, on its host's session.",
                "Update it from the console or the berth command.",
            )
        listed = await self.http.get_json(
            "/containers/json", f"listing {name}", {"all": 1, "filters": json_filter({"id": [info["Id"]]})}
        )
        project = ComposeProject(project_name, tuple(ContainerInfo.from_api(item) for item in listed))
        step(f"compose pull {service}", None)
        await run_compose(session, project, "pull", service)
        step(f"compose up -d {service}", None)
        await run_compose(session, project, "up", service)
        now = await self._service_container(project_name, service, labels.get(NUMBER_LABEL))
        ref = str(info["Config"].get("Image") or "")
        result = UpdateResult(name, ref, info["Id"], now["Id"], info["Image"], now["Image"], compose=True)
        if result.updated:
            audit(
                self.host_name,
                "container.update",
                [result.old_id],
                names=[name],
                new_id=result.new_id,
                image=result.ref,
                old_image=result.old_image,
                new_image=result.new_image,
                compose=project_name,
                service=service,
            )
        return result

    async def _service_container(self, project: str, service: str, number: str | None) -> dict[str, Any]:
        """The container of compose `service` (with `number`, when it has several) after `up`."""
        wanted = [f"{PROJECT_LABEL}={project}", f"{SERVICE_LABEL}={service}"]
        if number:
            wanted.append(f"{NUMBER_LABEL}={number}")
        params: dict[str, str | int] = {"all": 1, "filters": json_filter({"label": wanted})}
        listed = await self.http.get_json("/containers/json", f"finding service {service}", params)
        if not listed:
            raise BerthError(
                f"compose up of service {service} left no container of it.", "See `berth` error log."
            )
        return await self._inspect(str(listed[0]["Id"]))


def _own_settings(config: dict[str, Any], image: dict[str, Any], container_id: str) -> dict[str, Any]:
    """The container's `Config` less what it only has from its old image (watchtower's rule), so
    the new image's defaults apply: equal env entries, labels, volumes, exposed ports, command,
    entrypoint, working dir, user, health check and stop signal; and the hostname Docker made of
    the old id."""
    if config.get("Hostname") == container_id[:12]:
        config.pop("Hostname")
    for key in ("WorkingDir", "User", "Healthcheck", "StopSignal"):
        if key in config and config[key] == image.get(key):
            config.pop(key)
    if config.get("Entrypoint") == image.get("Entrypoint"):
        config.pop("Entrypoint", None)
        if config.get("Cmd") == image.get("Cmd"):
            config.pop("Cmd", None)
    image_env = set(image.get("Env") or ())
    config["Env"] = [entry for entry in config.get("Env") or () if entry not in image_env]
    image_labels = image.get("Labels") or {}
    config["Labels"] = {k: v for k, v in (config.get("Labels") or {}).items() if image_labels.get(k) != v}
    for key in ("Volumes", "ExposedPorts"):
        theirs = image.get(key) or {}
        config[key] = {k: v for k, v in (config.get(key) or {}).items() if k not in theirs}
    return config


def _create_links(links: list[str] | None) -> list[str] | None:
    """Links as inspect writes them (`/db:/web/db`) in the form create takes (`db:db`)."""
    if not links:
        return links
    split = (link.partition(":") for link in links)
    return [f"{target.lstrip('/')}:{alias.rpartition('/')[2]}" for target, _, alias in split]


def _anonymous_volumes(info: dict[str, Any], host_config: dict[str, Any]) -> list[str]:
    """The container's anonymous volumes (its image's VOLUMEs, `-v /path`) as binds of the same
    volumes, so the new container keeps their data instead of getting empty ones."""
    named = {bind.split(":")[1] for bind in host_config.get("Binds") or () if ":" in bind}
    named |= {str(mount.get("Target")) for mount in host_config.get("Mounts") or ()}
    return [
        f"{mount['Name']}:{mount['Destination']}" + ("" if mount.get("RW", True) else ":ro")
        for mount in info.get("Mounts") or ()
        if mount.get("Type") == "volume" and mount.get("Name") and mount.get("Destination") not in named
    ]


def _endpoint(settings: dict[str, Any], container_id: str) -> dict[str, Any]:
    """A network's settings of the old container as the new one is connected with: its fixed
    addresses, links and aliases, less the alias Docker made of the old id."""
    aliases = [a for a in settings.get("Aliases") or () if a != container_id[:12]]
    return {
        "IPAMConfig": settings.get("IPAMConfig"),
        "Links": settings.get("Links"),
        "Aliases": aliases or None,
        "DriverOpts": settings.get("DriverOpts"),
    }


def _health_wait(check: dict[str, Any]) -> float:
    """How long a health check may take to say healthy, from its own timings (Docker's defaults
    where unset: 30 s interval and timeout, 3 retries), at most `HEALTH_WAIT_MAX`."""
    seconds = 1e-9
    interval = (check.get("Interval") or 30e9) * seconds
    timeout = (check.get("Timeout") or 30e9) * seconds
    start = (check.get("StartPeriod") or 0) * seconds
    retries = check.get("Retries") or 3
    return float(min(HEALTH_WAIT_MAX, start + (interval + timeout) * (retries + 1)))


def _last_check(health: dict[str, Any]) -> str:
    """` (its last check: “output”, exit code 1)` of the last health check, or "" when none ran."""
    log = health.get("Log") or []
    if not log:
        return ""
    last = log[-1]
    output = " ".join(str(last.get("Output") or "").split())[:LAST_LINE_CHARS]
    return f" (its last check: “{output}”, exit code {last.get('ExitCode')})"
