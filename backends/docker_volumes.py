"""Docker volumes: list, inspect, remove, prune."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from backends.audit import audited
from backends.docker_disk import ACTIVE_STATES, DiskCalls
from backends.docker_logs import epoch_seconds
from backends.engine_http import json_filter
from backends.errors import Conflict


@dataclass(frozen=True)
class VolumeInfo:
    """One volume (an entry of `GET /volumes`); `users`: the names of the containers using it,
    `size`: bytes from `GET /system/df` (None until that was read)."""

    name: str
    driver: str
    created: float
    labels: dict[str, str]
    users: tuple[str, ...] = ()
    size: int | None = None

    @classmethod
    def from_api(
        cls, raw: dict[str, Any], users: tuple[str, ...] = (), size: int | None = None
    ) -> VolumeInfo:
        """Build from the Engine API's list entry."""
        return cls(
            str(raw["Name"]),
            str(raw.get("Driver") or ""),
            epoch_seconds(raw.get("CreatedAt")),
            dict(raw.get("Labels") or {}),
            users,
            size,
        )

    def to_json(self, host: str) -> dict[str, Any]:
        """The object `berth volumes --json` prints."""
        return {
            "host": host,
            "name": self.name,
            "driver": self.driver,
            "size": self.size,
            "used_by": list(self.users),
            "created": self.created,
            "labels": self.labels,
        }


@dataclass(frozen=True)
class VolumeUser:
    """A container that mounts a volume, and whether it is running (paused, restarting)."""

    id: str
    name: str
    active: bool


class VolumeCalls(DiskCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""

    async def volumes(self) -> list[VolumeInfo]:
        """Every volume, each with the containers (stopped ones too) that mount it and its size
        (from the disk usage, read at most every few seconds)."""
        raw, containers, usage = await asyncio.gather(
            self.http.get_json("/volumes", "listing volumes"),
            self.http.get_json("/containers/json", "listing containers", {"all": 1}),
            self.disk_usage(),
        )
        users: dict[str, list[str]] = {}
        for container in containers:
            name = str((container.get("Names") or ["?"])[0]).lstrip("/")
            for mount in container.get("Mounts") or ():
                if mount.get("Type") == "volume" and mount.get("Name"):
                    users.setdefault(str(mount["Name"]), []).append(name)
        sizes = usage.volume_sizes()
        return [
            VolumeInfo.from_api(item, tuple(sorted(users.get(item["Name"], ()))), sizes.get(item["Name"]))
            for item in raw.get("Volumes") or ()
        ]

    async def inspect_volume(self, name: str) -> dict[str, Any]:
        """The volume's full inspect document."""
        result: dict[str, Any] = await self.http.get_json(f"/volumes/{name}", f"inspecting volume {name}")
        return result

    async def volume_users(self, name: str) -> list[VolumeUser]:
        """The containers (stopped ones too) that mount volume `name`, read now."""
        raw = await self.http.get_json(
            "/containers/json", "listing containers", {"all": 1, "filters": json_filter({"volume": [name]})}
        )
        return [
            VolumeUser(
                str(c["Id"]),
                str((c.get("Names") or ["?"])[0]).lstrip("/"),
                any(state in str(c.get("State", "")) for state in ACTIVE_STATES),
            )
            for c in raw
        ]

    async def remove_volume(self, name: str, *, force: bool = False) -> list[str]:
        """Remove a volume; refused, naming them, while containers use it.

        The engine keeps a volume any container mounts, stopped or not, even when forced; so
        `force` removes the stopped containers that use it first (returned, by name); a running one
        still refuses it.
        """
        users = await self.volume_users(name)
        names = [user.name for user in users]
        if users and not force:
            raise Conflict(
                f"Volume {name} is used by {', '.join(names)} on {self.host_name}: nothing was removed.",
                "Remove those containers first, or force it to remove the stopped ones with it.",
                "Remove those containers first, or add --force to remove the stopped ones with it.",
            )
        running = [user.name for user in users if user.active]
        if running:
            raise Conflict(
                f"Volume {name} is used by running {', '.join(running)} on {self.host_name}: "
                "even forced, nothing was removed.",
                "Stop those containers first.",
            )
        with audited(self.host_name, "volume.remove", [name], force=force, users=names):
            try:
                for user in users:
                    audit_as = {"names": [user.name], "volume": name}
                    with audited(self.host_name, "container.remove", [user.id], **audit_as):
                        await self.http.delete(f"/containers/{user.id}", f"removing {user.name}")
                await self.http.delete(f"/volumes/{name}", f"removing volume {name}", {"force": int(force)})
            finally:
                self.forget_disk_usage()
        return names

