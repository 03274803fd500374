"""Docker volumes: list, inspect, remove, prune."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backends.audit import audited
from backends.docker_disk import DiskCalls, VolumeUser
from backends.docker_logs import epoch_seconds
from backends.errors import Conflict


@dataclass(frozen=True)
class VolumeInfo:
    """One volume (an entry of `GET /volumes`); `users`: the names of the containers using it,
    `running`: those of them that run (paused, restarting), `size`: bytes from `GET /system/df`
    (None until that was read)."""

    name: str
    driver: str
    created: float
    labels: dict[str, str]
    users: tuple[str, ...] = ()
    size: int | None = None
    running: tuple[str, ...] = ()

    @classmethod
    def from_api(
        cls, raw: dict[str, Any], users: Sequence[VolumeUser] = (), size: int | None = None
    ) -> VolumeInfo:
        """Build from the Engine API's list entry and the containers that mount it."""
        return cls(
            str(raw["Name"]),
            str(raw.get("Driver") or ""),
            epoch_seconds(raw.get("CreatedAt")),
            dict(raw.get("Labels") or {}),
            tuple(sorted(user.name for user in users)),
            size,
            tuple(sorted(user.name for user in users if user.active)),
        )

    @property
    def labels_text(self) -> str:
        """Its labels as a table shows them: "app=web, tier=db"."""
        return ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))

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
        users: dict[str, list[VolumeUser]] = {}
        for container in containers:
            user = VolumeUser.from_api(container)
            for mount in container.get("Mounts") or ():
                if mount.get("Type") == "volume" and mount.get("Name"):
                    users.setdefault(str(mount["Name"]), []).append(user)
        sizes = usage.volume_sizes()
        return [
            VolumeInfo.from_api(item, users.get(item["Name"], ()), sizes.get(item["Name"]))
            for item in raw.get("Volumes") or ()
        ]

    async def inspect_volume(self, name: str) -> dict[str, Any]:
        """The volume's full inspect document."""
        result: dict[str, Any] = await self.http.get_json(f"/volumes/{name}", f"inspecting volume {name}")
        return result

    async def remove_volume(self, name: str, *, force: bool = False) -> list[str]:
        """Remove a volume; refused, naming them, while containers use it.

        The engine keeps a volume any container mounts, stopped or not, even when forced; so
        `force` removes the stopped containers that use it first (returned, by name). A running one
        refuses it, forced or not: that is said first, as forcing cannot help. Each sentence starts
        with the volume's name (the CLI then does not put it in front again).
        """
        users = await self.volume_users(name)
        names = [user.name for user in users]
        running = [user.name for user in users if user.active]
        if running:
            raise Conflict(
                f"{name} is used by running {', '.join(running)} on {self.host_name}: nothing was removed.",
                f"Stop {'it' if len(running) == 1 else 'them'} first.",
            )
        if users and not force:
            raise Conflict(
                f"{name} is used by {', '.join(names)} (stopped) on {self.host_name}: nothing was removed.",
                "Remove those containers first, or force it to remove them with it.",
                "Remove those containers first, or add --force to remove them with it.",
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
