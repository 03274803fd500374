"""Docker running a new container from an image: name, command, env, ports, mounts, network,
restart policy and limits, as `docker run -d` does (create, then start; a missing image pulled
first)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from backends.audit import audited
from backends.docker_calls import EngineCalls
from backends.errors import BerthError, Conflict, NotFound
from backends.parse_container import Mount, PortMapping, RestartPolicy

# The engine's words for a host port something else holds (its proxy's, or the kernel's).
_PORT_TAKEN = re.compile(r"port is already allocated|address already in use", re.IGNORECASE)
_BIND_ADDRESS = re.compile(r"Bind for (\S+) failed|listen \w+ (\S+): bind")


@dataclass(frozen=True)
class RunSpec:
    """What a new container is made of: `docker run`'s image, `--name`, command, `-e`, `-p`,
    `-v`, `--network`, `--restart`, `--memory` (bytes) and `--cpus` (NanoCpus); an empty or None
    setting is the engine's default (a name it picks, the image's command, no limit…)."""

    image: str
    name: str = ""
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[PortMapping, ...] = ()
    mounts: tuple[Mount, ...] = ()
    network: str = ""
    restart: RestartPolicy | None = None
    memory: int | None = None
    cpus: int | None = None

    def create_body(self) -> dict[str, Any]:
        """The Engine API's `POST /containers/create` body for this container."""
        bindings: dict[str, list[dict[str, str]]] = {}
        for port in self.ports:
            host_port = str(port.host_port) if port.host_port else ""  # empty: a free one
            bindings.setdefault(port.key, []).append({"HostIp": port.host_ip, "HostPort": host_port})
        host: dict[str, Any] = {
            "PortBindings": bindings,
            # Binds, as `-v` sends them: a missing host folder or volume is made, as docker run does.
            "Binds": [f"{m.source}:{m.target}{':ro' if m.read_only else ''}" for m in self.mounts],
        }
        if self.network:
            host["NetworkMode"] = self.network
        if self.restart is not None:
            host["RestartPolicy"] = self.restart.to_api()
        if self.memory is not None:
            host["Memory"] = self.memory
        if self.cpus is not None:
            host["NanoCpus"] = self.cpus
        body: dict[str, Any] = {
            "Image": self.image,
            "Env": [f"{key}={value}" for key, value in self.env],
            "ExposedPorts": {key: {} for key in bindings},
            "HostConfig": host,
        }
        if self.command:
            body["Cmd"] = list(self.command)
        return body


class RunCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""

    pull: Callable[[str], Awaitable[str]]
    """`PullCalls.pull`, DockerBackend's other base: a missing image is pulled first."""

    async def run(self, spec: RunSpec) -> str:
        """Make and start the container `spec` describes; its full id. The image is pulled first
        when the host lacks it. A container that cannot start is removed again, and the error
        says why in one sentence (a name taken, a host port taken, no such network)."""
        with audited(self.host_name, "container.run", [spec.name or spec.image], image=spec.image):
            await self._have_image(spec.image)
            created = await self._create(spec)
            try:
                await self.http.post(f"/containers/{created}/start", f"starting {spec.name or spec.image}")
            except BerthError as exc:
                await self.http.delete(
                    f"/containers/{created}", "removing what could not start", {"force": 1}
                )
                raise self._start_failure(spec, exc) from None
            return created

    async def _have_image(self, image: str) -> None:
        try:
            await self.http.get_json(f"/images/{image}/json", f"inspecting image {image}")
        except NotFound:
            await self.pull(image)

    async def _create(self, spec: RunSpec) -> str:
        params = {"name": spec.name} if spec.name else None
        try:
            answer = await self.http.post(
                "/containers/create", "creating the container", params, spec.create_body()
            )
        except Conflict:
            raise Conflict(
                f"A container named {spec.name!r} already exists on {self.host_name}: nothing was made.",
                "Pick another name, or remove that container first.",
            ) from None
        except NotFound as exc:
            raise self._no_network(spec, exc) or exc from None
        return str(answer["Id"])

    def _no_network(self, spec: RunSpec, exc: BerthError) -> NotFound | None:
        """The sentence for a network the host lacks, when that is what `exc` says (an engine
        finds it out on create or on start, as its version has it)."""
        if not (spec.network and isinstance(exc, NotFound) and "network" in exc.message.lower()):
            return None
        return NotFound(
            f"No network {spec.network!r} on {self.host_name}: nothing was made.",
            "Pick one the networks view lists, or create it first.",
            "List them with `berth networks`, or create it first.",
        )

    def _start_failure(self, spec: RunSpec, exc: BerthError) -> BerthError:
        """What to say when the made container would not start (it was removed)."""
        what = spec.name or spec.image
        if missing := self._no_network(spec, exc):
            return missing
        if _PORT_TAKEN.search(exc.message):
            found = _BIND_ADDRESS.search(exc.message)
            where = f" {found[1] or found[2]}" if found else ""
            return Conflict(
                f"{what} could not start on {self.host_name}: host port{where} is taken, so it was removed.",
                "Publish it on another host port, or leave the host port out for a free one.",
            )
        detail = exc.message.partition(" failed: ")[2].rstrip(".") or exc.message
        return BerthError(
            f"{what} could not start on {self.host_name} ({detail}), so it was removed.",
            "Check its command, mounts and limits.",
        )
