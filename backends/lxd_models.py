"""What the LXD backend hands out: member instances, their forwards and snapshots, and the parsing
of LXD's own notations (proxy addresses, timestamps) that goes with them."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from backends.errors import Invalid

MEMBER_KEY = "user.berth.member"
CONTACT_KEY = "user.berth.contact"

# LXD writes nanoseconds; Python's datetime takes at most microseconds.
_FRACTION = re.compile(r"(\.\d{6})\d+")


def lxd_time(text: str | None) -> float:
    """Epoch seconds of an LXD timestamp ("2024-05-01T12:00:00.123456789Z"); 0 when missing."""
    if not text:
        return 0.0
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", text)).timestamp()
    except ValueError:
        return 0.0


def proxy_address(text: str) -> tuple[str, str, str] | None:
    """(protocol, address, ports) of a proxy device's listen/connect value ("tcp:0.0.0.0:80",
    "udp:[::1]:53", "tcp:1.2.3.4:80-90"); None for unix sockets and anything else."""
    protocol, _, rest = text.partition(":")
    address, _, ports = rest.rpartition(":")
    if protocol not in ("tcp", "udp") or not address or not ports:
        return None
    return protocol, address.strip("[]"), ports


def port_set(ports: str) -> set[int]:
    """The ports named by "80", "80,443" or "8000-8010" (LXD allows all three in listen)."""
    found: set[int] = set()
    for part in ports.split(","):
        low, _, high = part.partition("-")
        if low.strip().isdigit() and (not high or high.strip().isdigit()):
            found.update(range(int(low), int(high or low) + 1))
    return found


@dataclass(frozen=True)
class Forward:
    """A port forward: an LXD proxy device from a host port to a port inside the instance."""

    device: str
    protocol: str
    listen_address: str
    host_port: int
    port: int

    @classmethod
    def from_device(cls, device: str, conf: dict[str, Any]) -> Forward | None:
        """The forward a proxy device makes, or None for other devices and socket proxies."""
        if conf.get("type") != "proxy":
            return None
        listen = proxy_address(str(conf.get("listen", "")))
        connect = proxy_address(str(conf.get("connect", "")))
        if listen is None or connect is None:
            return None
        host_ports, ports = sorted(port_set(listen[2])), sorted(port_set(connect[2]))
        if not host_ports or not ports:
            return None
        return cls(device, listen[0], listen[1], host_ports[0], ports[0])

    def listen(self) -> str:
        """The device's `listen` value."""
        address = f"[{self.listen_address}]" if ":" in self.listen_address else self.listen_address
        return f"{self.protocol}:{address}:{self.host_port}"


@dataclass(frozen=True)
class ImportedBackup:
    """An instance made from a backup file, and the forwards it was made without: each one's
    host port was forwarded to another instance already (it would not start with them)."""

    name: str
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot of an instance."""

    name: str
    created_at: float
    stateful: bool

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> SnapshotInfo:
        """From LXD's snapshot object (its name may come as "instance/snapshot")."""
        return cls(
            str(raw["name"]).rpartition("/")[2], lxd_time(raw.get("created_at")), bool(raw.get("stateful"))
        )


@dataclass(frozen=True)
class MemberInstance:
    """An LXD instance with its owner (the `user.berth.member` tag; None when untagged)."""

    name: str
    member: str | None
    contact: str | None
    state: str
    image: str
    addresses: tuple[str, ...]
    memory: int | None
    disk: int | None
    cpu_seconds: float | None
    snapshots: int
    forwards: tuple[Forward, ...]
    limits: dict[str, str]
    created_at: float

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> MemberInstance:
        """From an instance object fetched with recursion (so `state` and `snapshots` are in)."""
        config: dict[str, str] = raw.get("expanded_config") or raw.get("config") or {}
        devices: dict[str, dict[str, Any]] = raw.get("expanded_devices") or raw.get("devices") or {}
        state: dict[str, Any] = raw.get("state") or {}
        running = raw.get("status") in ("Running", "Frozen")
        addresses = tuple(
            addr["address"]
            for nic in (state.get("network") or {}).values()
            if nic.get("type") != "loopback"
            for addr in nic.get("addresses") or []
            if addr.get("scope") == "global"
        )
        disk_usage = ((state.get("disk") or {}).get("root") or {}).get("usage")
        cpu_usage = (state.get("cpu") or {}).get("usage")
        limits = {key: config[key] for key in ("limits.cpu", "limits.memory") if config.get(key)}
        root_size = next(
            (d.get("size") for d in devices.values() if d.get("type") == "disk" and d.get("path") == "/"),
            None,
        )
        if root_size:
            limits["disk"] = str(root_size)
        image = config.get("image.description") or " ".join(
            filter(None, (config.get("image.os"), config.get("image.release")))
        )
        forwards = (Forward.from_device(name, conf) for name, conf in sorted(devices.items()))
        return cls(
            name=str(raw["name"]),
            member=config.get(MEMBER_KEY) or None,
            contact=config.get(CONTACT_KEY) or None,
            state=str(raw.get("status", "Unknown")),
            image=image,
            addresses=addresses,
            memory=int((state.get("memory") or {}).get("usage", 0)) if running else None,
            disk=int(disk_usage) if disk_usage else None,
            cpu_seconds=cpu_usage / 1e9 if running and cpu_usage is not None else None,
            snapshots=len(raw.get("snapshots") or []),
            forwards=tuple(f for f in forwards if f is not None),
            limits=limits,
            created_at=lxd_time(raw.get("created_at")),
        )

    def to_json(self, host: str) -> dict[str, Any]:
        """A JSON-ready dict: every field (forwards as objects, snapshots as a count) plus `host`."""
        data = asdict(self)
        data["addresses"] = list(self.addresses)
        data["forwards"] = [asdict(f) for f in self.forwards]
        data["host"] = host
        return data


@dataclass(frozen=True)
class MemberSpec:
    """What to create: an instance for `member` from `image`, with their SSH keys and limits."""

    name: str
    member: str
    image: str
    keys: tuple[str, ...] = ()
    contact: str | None = None
    profile: str = "default"
    cpu: int | None = None
    memory: str | None = None
    disk: str | None = None

    def __post_init__(self) -> None:
        """Refuse a spec without a name, member or image: the form and `berth member create`
        say the same, and nothing is asked of LXD."""
        for required in ("name", "member", "image"):
            if not getattr(self, required).strip():
                raise Invalid(f"The {required} is required.")


@dataclass(frozen=True)
class ExecResult:
    """A command's exit code and its whole output."""

    code: int
    stdout: str
    stderr: str
