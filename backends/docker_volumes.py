"""Docker volumes: list, inspect, remove, prune."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.docker_calls import EngineCalls
from backends.docker_logs import epoch_seconds


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
    def from_api(cls, raw: dict[str, Any], users: tuple[str, ...] = ()) -> VolumeInfo:
        """Build from the Engine API's list entry."""
        return cls(
            str(raw["Name"]),
            str(raw.get("Driver") or ""),
            epoch_seconds(raw.get("CreatedAt")),
            dict(raw.get("Labels") or {}),
            users,
        )


class VolumeCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""

    async def volumes(self) -> list[VolumeInfo]:
        """Every volume, each with the containers (stopped ones too) that mount it."""
        raw = await self.http.get_json("/volumes", "listing volumes")
        containers = await self.http.get_json("/containers/json", "listing containers", {"all": 1})
        users: dict[str, list[str]] = {}
        for container in containers:
            name = str((container.get("Names") or ["?"])[0]).lstrip("/")
            for mount in container.get("Mounts") or ():
                if mount.get("Type") == "volume" and mount.get("Name"):
                    users.setdefault(str(mount["Name"]), []).append(name)
        return [
            VolumeInfo.from_api(item, tuple(sorted(users.get(item["Name"], ()))))
            for item in raw.get("Volumes") or ()
        ]
