"""What the Docker backend hands out: containers, images, compose projects and stats samples."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"

_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
# The age in Docker's status ("Up 5 minutes", "Exited (0) About an hour ago"), as go-units words it.
_AGE = re.compile(
    r"Less than a second|About an? (?:minute|hour)|\d+ (?:second|minute|hour|day|week|month|year)s?\b"
)
# Running first, then those that may come back, then the rest (the table's rank).
_STATE_RANK = {"running": 0, "restarting": 1, "paused": 2, "created": 3, "exited": 4, "dead": 5}


def format_ports(ports: list[dict[str, Any]]) -> str:
    """`0.0.0.0:8080->80/tcp, 443/tcp`, as the docker CLI shows them, without repeats."""
    seen: list[str] = []
    for port in sorted(ports, key=lambda p: (p.get("PrivatePort", 0), p.get("PublicPort", 0))):
        inner = f"{port.get('PrivatePort')}/{port.get('Type', 'tcp')}"
        text = f"{port.get('IP', '')}:{port['PublicPort']}->{inner}" if port.get("PublicPort") else inner
        if text not in seen:
            seen.append(text)
    return ", ".join(seen)


def human_duration(seconds: float) -> str:
    """A duration as Docker words it in a container's status (go-units' HumanDuration)."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = whole // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


@dataclass(frozen=True)
class ContainerInfo:
    """One container as the list shows it (one row of `GET /containers/json`).

    `started_at` and `finished_at` (seconds since the epoch, 0 when unknown or never) come from
    inspecting it: the list has only Docker's status text, whose age is true only when listed.
    """

    id: str
    name: str
    image: str
    state: str
    status: str
    created: int
    ports: str = ""
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    command: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> ContainerInfo:
        """Build from the Engine API's list entry."""
        names = raw.get("Names") or ["/" + raw["Id"][:12]]
        return cls(
            id=raw["Id"],
            name=names[0].lstrip("/"),
            image=raw.get("Image", ""),
            state=raw.get("State", ""),
            status=raw.get("Status", ""),
            created=int(raw.get("Created", 0)),
            ports=format_ports(raw.get("Ports") or []),
            labels=dict(raw.get("Labels") or {}),
            command=raw.get("Command", ""),
        )

    @property
    def short_id(self) -> str:
        """The 12-character id the docker CLI shows."""
        return self.id[:12]

    def status_at(self, now: float, words: Callable[[float], str] = human_duration) -> str:
        """Docker's status as it would read at `now`: "Up 5 minutes" ages from `started_at`,
        "Exited (0) 2 hours ago" and "Restarting (1) 3 seconds ago" from `finished_at`; `words`
        says an age (Docker's wording by default).

        Without those times (not inspected), or with no age in it ("Created"), it is the status
        as listed.
        """
        since = self.started_at if self.status.startswith("Up ") else self.finished_at
        if not since or not _AGE.search(self.status):
            return self.status
        return _AGE.sub(words(max(now - since, 0.0)), self.status, count=1)

    @property
    def ages(self) -> bool:
        """Whether its status tells an age, which then needs its start or finish time to stay true."""
        return bool(_AGE.search(self.status))

    @property
    def health(self) -> str:
        """ "healthy", "unhealthy", "starting" or "" when the image has no health check."""
        match = _HEALTH.search(self.status)
        return match.group(1).removeprefix("health: ") if match else ""

    @property
    def project(self) -> str | None:
        """The compose project it belongs to, if any."""
        return self.labels.get(PROJECT_LABEL)

    @property
    def service(self) -> str | None:
        """Its compose service, if any."""
        return self.labels.get(SERVICE_LABEL)

    @property
    def rank(self) -> int:
        """Sort rank by state: running first."""
        return _STATE_RANK.get(self.state, 9)

    def to_json(self, host: str) -> dict[str, Any]:
        """The object `berth ps --json` prints."""
        return {
            "id": self.id,
            "name": self.name,
            "image": self.image,
            "state": self.state,
            "status": self.status,
            "health": self.health,
            "ports": self.ports,
            "project": self.project,
            "service": self.service,
            "created": self.created,
            "host": host,
        }


@dataclass(frozen=True)
class ImageInfo:
    """One image (one row of `GET /images/json`); `used_by` counts containers using it."""

    id: str
    tags: tuple[str, ...]
    size: int
    created: int
    used_by: int = 0

    @classmethod
    def from_api(cls, raw: dict[str, Any], used_by: int = 0) -> ImageInfo:
        """Build from the Engine API's list entry."""
        tags = tuple(t for t in raw.get("RepoTags") or () if t != "<none>:<none>")
        return cls(raw["Id"], tags, int(raw.get("Size", 0)), int(raw.get("Created", 0)), used_by)

    @property
    def short_id(self) -> str:
        """`sha256:` dropped, 12 characters."""
        return self.id.removeprefix("sha256:")[:12]

    @property
    def name(self) -> str:
        """The first tag, or `<none>` for a dangling image."""
        return self.tags[0] if self.tags else "<none>"

    def to_json(self, host: str) -> dict[str, Any]:
        """The object `berth images --json` prints."""
        return {
            "id": self.id,
            "tags": list(self.tags),
            "size": self.size,
            "created": self.created,
            "used_by": self.used_by,
            "host": host,
        }


@dataclass(frozen=True)
class ComposeProject:
    """Containers that share a `com.docker.compose.project` label."""

    name: str
    containers: tuple[ContainerInfo, ...]

    @property
    def working_dir(self) -> str | None:
        """Where compose ran (from the labels)."""
        dirs = (c.labels[WORKING_DIR_LABEL] for c in self.containers if WORKING_DIR_LABEL in c.labels)
        return next(dirs, None)

    @property
    def config_files(self) -> list[str]:
        """The compose files it was started from (from the labels)."""
        for c in self.containers:
            if files := c.labels.get(CONFIG_FILES_LABEL):
                # docker-compose 1.x records them relative to the working directory.
                base = PurePosixPath(self.working_dir or "/")
                return [str(base / f) for f in files.split(",") if f]
        return []

    @property
    def running(self) -> int:
        """How many of its containers run."""
        return sum(1 for c in self.containers if c.state == "running")


def group_projects(containers: list[ContainerInfo]) -> list[ComposeProject]:
    """Compose projects among `containers`, by name."""
    by_name: dict[str, list[ContainerInfo]] = {}
    for c in containers:
        if c.project:
            by_name.setdefault(c.project, []).append(c)
    return [ComposeProject(name, tuple(members)) for name, members in sorted(by_name.items())]


@dataclass(frozen=True)
class StatsPoint:
    """One stats sample of a container: CPU in % of one core, memory and network in bytes."""

    cpu_percent: float | None
    memory: int
    memory_limit: int
    net_rx: int
    net_tx: int
    at: float


@dataclass
class ContainerChange:
    """What changed in a host's containers: all of them (`full`), or some upserted and removed."""

    full: bool
    upserts: dict[str, ContainerInfo] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    error: str = ""
