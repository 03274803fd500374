"""Docker disk usage (`GET /system/df`, cached briefly) and pruning each kind.

What takes room is counted as the docker CLI's `docker system df` counts it, so the figures agree
with it: images by their layers (an image in use keeps its own, unshared layers), containers by
their writable layers, volumes by their data, the build cache by its records that are not shared.

A prune removes exactly the items of its preview (`DiskKind.prunable`), one by one by id, never
with the engine's own prune (which would take whatever became unused since the preview); an item
that went meanwhile, or came into use, is reported and kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from backends.audit import audited
from backends.docker_calls import EngineCalls
from backends.engine_http import json_filter
from backends.errors import BerthError, Conflict, NotFound

DF_CACHE_SECONDS = 5.0
"""How long one `GET /system/df` answers every reader: it walks every volume on the host, so it
is read when a view or screen asks, never per redraw, and not again within these seconds."""
DF_BUSY_WAIT = 60.0
"""Seconds to wait for the engine's disk usage read of another caller to end before giving up."""
BUSY = "a disk usage operation is already running"
"""What the engine answers (500) while it reads its disk usage for another caller."""
KINDS = ("images", "containers", "volumes", "build cache")
"""The kinds of disk usage, in the order `docker system df` lists them."""
ACTIVE_STATES = ("running", "paused", "restarting")
"""Container states that keep a container (and what it uses) from being pruned."""
AUDIT_NAMES = {"images": "image", "containers": "container", "volumes": "volume", "build cache": "buildcache"}


@dataclass(frozen=True)
class DiskItem:
    """One thing that takes room: `id` is what removes it (an image or container id, a volume's
    name, a cache record's id), `name` how people read it, `size` its bytes (an image's own,
    unshared layers), `active` whether it is in use, `prunable` whether its kind's prune takes it."""

    id: str
    name: str
    size: int
    active: bool
    prunable: bool

    def to_json(self) -> dict[str, Any]:
        """The object `--json` prints for the item."""
        return {"id": self.id, "name": self.name, "size": self.size, "active": self.active}


@dataclass(frozen=True)
class DiskKind:
    """What one kind (images, containers, volumes, build cache) takes on a host, and what its
    prune would give back."""

    kind: str
    items: tuple[DiskItem, ...]
    size: int
    reclaimable: int

    @classmethod
    def of(cls, kind: str, items: list[DiskItem]) -> DiskKind:
        """A kind whose items' bytes add up to its size, those not in use to what is reclaimable."""
        total = sum(item.size for item in items)
        return cls(kind, tuple(items), total, total - sum(item.size for item in items if item.active))

    @property
    def active(self) -> int:
        """How many of the items are in use."""
        return sum(1 for item in self.items if item.active)

    @property
    def prunable(self) -> tuple[DiskItem, ...]:
        """The preview of a prune: exactly the items it removes."""
        return tuple(item for item in self.items if item.prunable)

    def to_json(self, host: str) -> dict[str, Any]:
        """The object `berth df --json` prints for the kind."""
        return {
            "host": host,
            "kind": self.kind,
            "count": len(self.items),
            "active": self.active,
            "size": self.size,
            "reclaimable": self.reclaimable,
            "prunable": [item.to_json() for item in self.prunable],
        }


@dataclass(frozen=True)
class DiskUsage:
    """One host's disk usage by kind (in `KINDS` order), as read at `at` (epoch seconds)."""

    kinds: dict[str, DiskKind]
    at: float

    @classmethod
    def from_api(cls, raw: dict[str, Any], at: float) -> DiskUsage:
        """Read `GET /system/df` (API 1.41) the way `docker system df` does."""
        return cls(
            {
                "images": _images(raw),
                "containers": _containers(raw),
                "volumes": _volumes(raw),
                "build cache": _build_cache(raw),
            },
            at,
        )

    def volume_sizes(self) -> dict[str, int]:
        """Each volume's bytes by name."""
        return {item.id: item.size for item in self.kinds["volumes"].items}


@dataclass(frozen=True)
class VolumeUser:
    """A container that mounts a volume, and whether it is running (paused, restarting)."""

    id: str
    name: str
    active: bool

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> VolumeUser:
        """From an entry of `GET /containers/json`."""
        name = str((raw.get("Names") or ["?"])[0]).lstrip("/")
        return cls(str(raw["Id"]), name, any(state in str(raw.get("State", "")) for state in ACTIVE_STATES))


@dataclass(frozen=True)
class PruneResult:
    """What a prune did: the items removed, and each one kept with why."""

    kind: str
    removed: tuple[DiskItem, ...]
    failed: tuple[tuple[DiskItem, str], ...] = ()

    @property
    def reclaimed(self) -> int:
        """Bytes the removed items took."""
        return sum(item.size for item in self.removed)

    def to_json(self, host: str) -> dict[str, Any]:
        """The object `--json` prints for a prune."""
        return {
            "host": host,
            "kind": self.kind,
            "removed": [item.to_json() for item in self.removed],
            "reclaimed": self.reclaimed,
            "failed": [{"id": item.id, "name": item.name, "error": why} for item, why in self.failed],
        }


def _size(value: Any) -> int:
    """A size field of the API, where -1 (and absent) means "not computed"."""
    number = int(value if value is not None else -1)
    return max(number, 0)


def _images(raw: dict[str, Any]) -> DiskKind:
    items = []
    for image in raw.get("Images") or ():
        tags = [t for t in image.get("RepoTags") or () if t != "<none>:<none>"]
        shared = int(image.get("SharedSize") if image.get("SharedSize") is not None else -1)
        size = _size(image.get("Size"))
        own = size - shared if shared >= 0 else size
        used = int(image.get("Containers") or 0) > 0
        name = ", ".join(tags) or str(image["Id"]).removeprefix("sha256:")[:12]
        items.append(DiskItem(str(image["Id"]), name, own, used, not used))
    total = _size(raw.get("LayersSize"))
    in_use = sum(item.size for item in items if item.active)
    return DiskKind("images", tuple(items), total, max(total - in_use, 0))


def _containers(raw: dict[str, Any]) -> DiskKind:
    items = []
    for container in raw.get("Containers") or ():
        name = str((container.get("Names") or ["?"])[0]).lstrip("/")
        active = any(state in str(container.get("State", "")) for state in ACTIVE_STATES)
        items.append(DiskItem(str(container["Id"]), name, _size(container.get("SizeRw")), active, not active))
    return DiskKind.of("containers", items)


def _volumes(raw: dict[str, Any]) -> DiskKind:
    items = []
    for volume in raw.get("Volumes") or ():
        usage = volume.get("UsageData") or {}
        active = int(usage.get("RefCount") or 0) > 0
        # A volume prune takes unused volumes of the local driver only (API 1.41: named ones too).
        local = volume.get("Driver") == "local"
        name = str(volume["Name"])
        items.append(DiskItem(name, name, _size(usage.get("Size")), active, local and not active))
    return DiskKind.of("volumes", items)


def _build_cache(raw: dict[str, Any]) -> DiskKind:
    items = []
    for record in raw.get("BuildCache") or ():
        in_use = bool(record.get("InUse"))
        name = str(record.get("Description") or record.get("Type") or record["ID"])
        # A shared record's bytes belong to another record too: they are counted (and freed) once.
        size = 0 if record.get("Shared") else _size(record.get("Size"))
        items.append(DiskItem(str(record["ID"]), name, size, in_use, not in_use))
    return DiskKind.of("build cache", items)


@dataclass
class _DiskCache:
    """The last `GET /system/df` of one backend and when it was asked for; a read under way is
    shared by every reader that comes meanwhile."""

    read: asyncio.Task[DiskUsage] | None = None
    asked: float = field(default=-DF_CACHE_SECONDS)


class DiskCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""

    _disk_cache: _DiskCache | None = None

    async def disk_usage(self, *, fresh: bool = False) -> DiskUsage:
        """The host's disk usage by kind; one read serves every caller for `DF_CACHE_SECONDS`
        (`fresh`: read again now)."""
        cache = self._disk_cache
        if cache is None:
            cache = self._disk_cache = _DiskCache()
        now = time.monotonic()
        stale = cache.read is None or now - cache.asked > DF_CACHE_SECONDS
        failed = cache.read is not None and cache.read.done() and cache.read.exception() is not None
        if fresh or stale or failed:
            cache.read, cache.asked = asyncio.ensure_future(self._read_disk_usage()), now
        assert cache.read is not None
        return await asyncio.shield(cache.read)

    async def _read_disk_usage(self) -> DiskUsage:
        waited = 0.0
        while True:
            try:
                raw = await self.http.get_json("/system/df", "reading disk usage")
                return DiskUsage.from_api(raw, time.time())
            except BerthError as exc:
                # The engine reads its disk usage for one caller at a time (another berth, or
                # another inventory name for this engine): wait for that read to end.
                if BUSY not in exc.message or waited >= DF_BUSY_WAIT:
                    raise
            await asyncio.sleep(0.2)
            waited += 0.2

    async def volume_users(self, name: str) -> list[VolumeUser]:
        """The containers (stopped ones too) that mount volume `name`, read now."""
        raw = await self.http.get_json(
            "/containers/json", "listing containers", {"all": 1, "filters": json_filter({"volume": [name]})}
        )
        return [VolumeUser.from_api(container) for container in raw]

    def forget_disk_usage(self) -> None:
        """Drop the cached disk usage: something was removed, so the next read asks again."""
        self._disk_cache = None

    async def prune(self, kind: DiskKind) -> PruneResult:
        """Remove exactly the items of `kind.prunable` (its preview), one by one; an item the
        engine refuses now (it came into use) or that went meanwhile is kept and reported."""
        remove = {
            "images": self._remove_unused_image,
            "containers": self._remove_stopped_container,
            "volumes": self._remove_unused_volume,
            "build cache": self._remove_cache_record,
        }[kind.kind]
        chosen = kind.prunable
        removed: list[DiskItem] = []
        failed: list[tuple[DiskItem, str]] = []
        with audited(self.host_name, f"{AUDIT_NAMES[kind.kind]}.prune", [item.name for item in chosen]):
            try:
                for item in chosen:
                    try:
                        await remove(item)
                    except NotFound:
                        continue  # gone already: nothing to reclaim, nothing to report
                    except BerthError as exc:
                        failed.append((item, exc.message))
                    else:
                        removed.append(item)
            finally:
                self.forget_disk_usage()
        return PruneResult(kind.kind, tuple(removed), tuple(failed))

    async def _remove_unused_image(self, item: DiskItem) -> None:
        # Each tag, then the id: an image under several tags is refused by id unless forced, and
        # forcing would also take one a container started using since the preview.
        raw = await self.http.get_json(f"/images/{item.id}/json", f"inspecting image {item.name}")
        for tag in raw.get("RepoTags") or ():
            await self.http.delete(f"/images/{tag}", f"untagging {tag}")
        with contextlib.suppress(NotFound):  # its last tag took it
            await self.http.delete(f"/images/{item.id}", f"removing image {item.name}")

    async def _remove_stopped_container(self, item: DiskItem) -> None:
        await self.http.delete(f"/containers/{item.id}", f"removing container {item.name}")

    async def _remove_unused_volume(self, item: DiskItem) -> None:
        try:
            await self.http.delete(f"/volumes/{item.id}", f"removing volume {item.name}")
        except Conflict:
            # The engine names the users by id ("volume is in use - [83527ffd…]"): say who, by name.
            users = [user.name for user in await self.volume_users(item.id)]
            if not users:
                raise
            raise Conflict(f"{', '.join(users)} now {'uses' if len(users) == 1 else 'use'} it") from None

    async def _remove_cache_record(self, item: DiskItem) -> None:
        # The engine takes one value per build-cache filter, `id` as a pattern: anchored, one record.
        params: dict[str, str | int] = {"all": 1, "filters": json_filter({"id": [f"^{item.id}$"]})}
        await self.http.post("/build/prune", f"removing build cache {item.name}", params)
