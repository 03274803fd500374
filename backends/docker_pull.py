"""Docker pulling images with progress, with the docker CLI's registry credentials; and logging
in to a registry through the engine (the credentials are then kept the docker CLI's way)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backends.audit import audited
from backends.docker_calls import EngineCalls
from backends.errors import BerthError, Denied, Invalid, NotFound, Unreachable
from backends.parse_images import parse_image_ref
from backends.registry_auth import (
    auth_header,
    registry_name,
    registry_of,
    repository_and_tag,
    server_key,
    store_credentials,
)

DOWNLOADED = frozenset({"Verifying Checksum", "Download complete", "Extracting", "Pull complete"})
"""A layer's statuses once all of its bytes arrived."""
FINISHED = frozenset({"Pull complete", "Already exists"})
THERE_BEFORE = "Already exists"
STOPPED = "Stopped"
"""A layer's status once its pull was stopped short of the image: the engine drops its bytes."""
REFUSED = ("unauthorized", "authentication required", "denied")
"""How the engine words a registry that refused the credentials it was given."""
NO_CREDENTIALS = "no basic auth credentials"
HIDDEN = "does not exist or may require"
"""Docker Hub's answer for a repository it will not say exists to whoever asks."""


@dataclass
class LayerProgress:
    """One layer of a pull: its last status, and its bytes (`current` of `total`, for the status
    being shown: downloading, then extracting); `size`/`downloaded` count the download only."""

    layer: str
    status: str = ""
    current: int = 0
    total: int = 0
    size: int = 0
    downloaded: int = 0

    @property
    def finished(self) -> bool:
        """True once the layer is in the engine (pulled now, or there before)."""
        return self.status in FINISHED


@dataclass
class PullProgress:
    """A pull as it goes, from the engine's stream: each layer, and the bytes of all of them.

    The same object is handed to the progress callback after each change.
    """

    ref: str
    layers: dict[str, LayerProgress] = field(default_factory=dict)
    status: str = ""
    """The last line that is about the image rather than a layer ("Digest: sha256:…")."""
    stopped: str = ""
    """Once the pull was cancelled: how it really ended, one sentence (the engine may have had
    every byte before it heard the request end, and then it keeps the image)."""

    @property
    def done(self) -> int:
        """Bytes downloaded so far, all layers."""
        return sum(layer.downloaded for layer in self.layers.values())

    @property
    def total(self) -> int:
        """Bytes to download, as far as the engine said yet (a layer's size comes with its first
        byte); layers that were there already count nothing."""
        return sum(layer.size for layer in self.layers.values())

    def stop(self, sentence: str, pulled: bool) -> None:
        """Say how a cancelled pull ended, and let its layers read as the engine now has them:
        each one this pull brought complete when the image arrived all the same, else stopped."""
        self.stopped = sentence
        for layer in self.layers.values():
            if layer.status == THERE_BEFORE:
                continue
            if pulled:
                layer.status, layer.downloaded = "Pull complete", layer.size
            else:
                layer.status, layer.current, layer.total = STOPPED, layer.downloaded, layer.size

    def feed(self, message: dict[str, Any]) -> None:
        """Take one line of `POST /images/create`'s stream."""
        status = str(message.get("status") or "")
        layer_id = str(message.get("id") or "")
        detail = message.get("progressDetail") or {}
        if not layer_id or status.startswith("Pulling from"):
            self.status = status
            return
        layer = self.layers.setdefault(layer_id, LayerProgress(layer_id))
        layer.status = status
        layer.current = int(detail.get("current") or 0)
        layer.total = int(detail.get("total") or 0)
        if status == "Downloading":
            layer.size = max(layer.size, layer.total)
            layer.downloaded = min(layer.current, layer.size) if layer.size else layer.current
        elif status in DOWNLOADED:
            layer.size = max(layer.size, layer.total)
            layer.downloaded = layer.size


class PullCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""

    async def pull(self, ref: str, progress: Callable[[PullProgress], None] | None = None) -> str:
        """Pull `ref` with the docker CLI's credentials for its registry; return the pulled image's
        full id. `progress` is called after each line of the engine's stream.

        Cancelling stops the pull: the request's connection is closed, and the engine stops too,
        unless it had already pulled it all (its answer may lag behind, over a slow link); then
        `progress` hears once more, with `stopped` saying which it was.
        """
        ref = parse_image_ref(ref)
        registry = registry_of(ref)
        header = await asyncio.to_thread(auth_header, registry)
        before = await self._image_id(ref)
        state = PullProgress(ref)
        with audited(self.host_name, "image.pull", [ref], registry=registry):
            try:
                await self._pull(ref, registry, header, state, progress)
            except asyncio.CancelledError:
                await self._stopped(state, before)
                if progress is not None:
                    progress(state)
                raise
            return await self._pulled_id(ref)

    async def _stopped(self, state: PullProgress, before: str | None) -> None:
        """Ask the engine how the cancelled pull of `state.ref` ended; `before` is the image the
        reference named before it began."""
        ref = state.ref
        try:
            now = await self._image_id(ref)
        except BerthError:
            state.stopped = f"Stopped pulling {ref} on {self.host_name}."
            return
        if now is not None and now != before:
            state.stop(
                f"Stopped pulling {ref}, but Docker on {self.host_name} had already pulled it "
                f"({now.removeprefix('sha256:')[:12]}).",
                pulled=True,
            )
        else:
            state.stop(f"Stopped pulling {ref} on {self.host_name}; nothing was kept.", pulled=False)

    async def _pull(
        self,
        ref: str,
        registry: str,
        header: str | None,
        state: PullProgress,
        progress: Callable[[PullProgress], None] | None,
    ) -> None:
        repository, tag = repository_and_tag(ref)
        try:
            async with self.http.request(
                "POST",
                "/images/create",
                f"pulling {ref}",
                params={"fromImage": repository, "tag": tag},
                headers={"X-Registry-Auth": header} if header else None,
                stream=True,
            ) as resp:
                async for line in resp.content:
                    if not line.strip():
                        continue
                    message = json.loads(line)
                    if message.get("error"):
                        raise BerthError(str(message["error"]))
                    state.feed(message)
                    if progress is not None:
                        progress(state)
        except BerthError as exc:
            raise self._pull_error(ref, registry, exc, header is not None) from exc

    def _pull_error(self, ref: str, registry: str, exc: BerthError, sent: bool) -> BerthError:
        """The engine's answer as one sentence: refused credentials, no such image, or its words."""
        what = f"Docker on {self.host_name} could not pull {ref}"
        detail = exc.message.removeprefix(f"{self.http.what}: pulling {ref} failed: ").rstrip(".")
        lowered = detail.lower()
        login = f"Log in with berth login {registry}."
        if HIDDEN in lowered:
            return NotFound(f"{what}: {ref} was not found on {registry}, or it asks for credentials.", login)
        if NO_CREDENTIALS in lowered or (not sent and any(word in lowered for word in REFUSED)):
            return Denied(f"{what}: {registry} asks for credentials.", login)
        if any(word in lowered for word in REFUSED):
            return Denied(f"{what}: the registry refused the credentials for {registry}.", login)
        if isinstance(exc, NotFound) or "not found" in lowered or "manifest unknown" in lowered:
            return NotFound(f"{what}: {ref} was not found on {registry}.", "Check the name and the tag.")
        if isinstance(exc, Unreachable):
            return exc
        return BerthError(f"{what}: {detail}.", "Check that the registry answers from that host.")

    async def _pulled_id(self, ref: str) -> str:
        raw = await self.http.get_json(f"/images/{ref}/json", f"inspecting image {ref}")
        return str(raw["Id"])

    async def _image_id(self, ref: str) -> str | None:
        """The id of the image `ref` names on the engine now; None when there is none."""
        try:
            return await self._pulled_id(ref)
        except NotFound:
            return None

    async def login(self, registry: str, username: str, password: str) -> str:
        """Check `username`/`password` with `registry` through the engine (`POST /auth`, so it is
        the engine's view of the registry that counts), then keep them as `docker login` does;
        return where they went. Nothing is kept when the registry refuses them."""
        registry = registry_name(registry)
        if not username:
            raise Invalid("The username is required.")
        if not password:
            raise Invalid("The password is required.")
        body = {"username": username, "password": password, "serveraddress": server_key(registry)}
        with audited(self.host_name, "registry.login", [registry], username=username):
            try:
                await self.http.post("/auth", f"logging in to {registry}", body=body)
            except BerthError as exc:
                if isinstance(exc, Unreachable):
                    raise
                lowered = exc.message.lower()
                if any(word in lowered for word in REFUSED):
                    raise Denied(
                        f"{registry} refused the credentials of {username} (checked by Docker on "
                        f"{self.host_name}); nothing was stored.",
                        "Check the username and password.",
                    ) from exc
                detail = exc.message.removeprefix(f"{self.http.what}: logging in to {registry} failed: ")
                raise BerthError(
                    f"Docker on {self.host_name} could not log in to {registry}: {detail.rstrip('.')}.",
                    "Check that the registry answers from that host.",
                ) from exc
            return await asyncio.to_thread(store_credentials, registry, username, password)
