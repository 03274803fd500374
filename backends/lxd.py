"""One host's LXD: member instances, their SSH keys, port forwards, snapshots, backups, exec, logs.

A member instance is an LXD instance tagged `user.berth.member=<who>`. Everything goes through the
LXD REST API on the host's unix socket (a forwarded one for SSH hosts), spoken with pylxd's HTTP
session. pylxd is blocking, so every request runs in `asyncio.to_thread`; LXD's background
operations are waited on in short steps from the event loop, which is also where progress callbacks
run. pylxd's and requests' exceptions never leave this module: they become `BerthError` kinds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import tarfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from backends.audit import audited
from backends.errors import BerthError, Conflict, Denied, Invalid, NotFound, Unreachable
from backends.hosts import HostSession
from backends.lxd_models import (
    CONTACT_KEY,
    MEMBER_KEY,
    ExecResult,
    Forward,
    ImportedBackup,
    MemberInstance,
    MemberSpec,
    SnapshotInfo,
    port_set,
    proxy_address,
)
from backends.parse_addresses import parse_ip_address
from backends.parse_keys import check_key
from backends.paths import open_private
from backends.units import parse_memory_limit, parse_size

if TYPE_CHECKING:
    import pylxd
    import requests

__all__ = [
    "ACTIONS",
    "ExecResult",
    "Forward",
    "ImportedBackup",
    "LxdBackend",
    "MemberInstance",
    "MemberSpec",
    "SnapshotInfo",
]

ACTIONS = ("start", "stop", "restart", "freeze", "unfreeze")
HTTP_TIMEOUT = 60.0
# Operations are waited on in steps shorter than HTTP_TIMEOUT, so a long one never times out a read.
WAIT_STEP = 30
PROGRESS_STEP = 1
CHUNK = 1 << 20
BACKUP_EXPIRY = timedelta(hours=6)  # a backup left behind by a crash goes away by itself
AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
BUSY_RETRY = 10.0
"""Seconds a change is tried again while LXD says the instance is busy."""
_CONFLICT_WORDS = re.compile(r"already exists|already running|in use|busy|is not running|not running", re.I)
_ROOT_SHELL = "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"


def check_name(name: str) -> str:
    """`name` when LXD accepts it as an instance name, else Invalid (checked before anything is made)."""
    if not _NAME.match(name) or name.endswith("-"):
        raise Invalid(
            f"{name!r} is not a valid instance name.",
            "Use 1-63 letters, digits and hyphens, starting with a letter and not ending with a hyphen.",
        )
    return name


def _key_id(line: str) -> tuple[str, ...]:
    """What makes two key lines the same key: its type and data, whatever the comment says."""
    return tuple(line.split()[:2])


def key_label(line: str) -> str:
    """What the audit log says of an SSH key: its SHA256 fingerprint (as `ssh-keygen -lf` shows
    it) and comment; never the key itself."""
    parts = line.split()
    try:
        digest = hashlib.sha256(base64.b64decode(parts[1], validate=True)).digest()
        fingerprint = "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    except (IndexError, ValueError):
        fingerprint = "(not a key)"
    return " ".join([fingerprint, *parts[2:]])


def _cloud_config(keys: list[str]) -> str:
    """cloud-init user-data that gives root these keys (JSON strings are valid YAML scalars)."""
    lines = ["#cloud-config", "disable_root: false", "ssh_authorized_keys:"]
    return "\n".join([*lines, *(f"  - {json.dumps(k)}" for k in keys)]) + "\n"


def _backup_name(path: Path) -> str:
    """The instance name recorded in an LXD backup tarball (its `backup/index.yaml`)."""
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                if member.name.lstrip("./") == "backup/index.yaml":
                    index = tar.extractfile(member)
                    text = index.read().decode("utf-8", "replace") if index else ""
                    found = re.search(r"^name: *(\S+)", text, re.M)
                    if found:
                        return found[1].strip("'\"")
                    break
    except OSError as exc:
        raise BerthError(f"Could not read {path}: {exc.strerror or exc}.") from None
    except tarfile.TarError as exc:
        raise Invalid(
            f"{path} is not an LXD backup ({exc}).", "Give a file made by `berth member backup`."
        ) from None
    raise Invalid(f"{path} is not an LXD backup (it has no backup/index.yaml).")


def _progress_text(metadata: dict[str, Any] | None) -> str:
    """What an LXD operation says about its progress ("Unpack: 45% (60MB/s)"), if anything."""
    return next(
        (str(v) for k, v in (metadata or {}).items() if k.endswith("_progress") and isinstance(v, str)), ""
    )


class LxdBackend:
    """The LXD behind one unix socket, named after its host in every message."""

    def __init__(self, host_name: str, socket_path: str) -> None:
        self.host_name = host_name
        self.socket_path = socket_path
        self._lxd: pylxd.Client | None = None
        self._connecting = asyncio.Lock()

    @classmethod
    async def for_session(cls, session: HostSession) -> LxdBackend:
        """The backend for a host's session: its LXD socket, forwarded when the host is remote."""
        return cls(session.host.name, await session.socket("lxd"))

    async def close(self) -> None:
        """Close the connection pool."""
        if self._lxd is not None:
            self._lxd.api.session.close()
            self._lxd = None

    # Plumbing ----------------------------------------------------------------------------------

    def _failed(self, what: str, detail: str, status: int) -> BerthError:
        """The BerthError for LXD refusing `what` with `detail` and HTTP-like `status`."""
        message = f"LXD on {self.host_name} could not {what}: {detail.rstrip('.')}."
        if status == 404:
            return NotFound(message)
        if status == 403:
            return Denied(message)
        if status == 409 or _CONFLICT_WORDS.search(detail):
            return Conflict(message)
        if status == 400 or "invalid" in detail.lower():
            return Invalid(message)
        return BerthError(message)

    async def _thread(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` in a worker thread, its failure turned into a BerthError."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:
            translated = self._translated(what, exc)
            if translated is None:
                raise
            raise translated from exc

    def _translated(self, what: str, exc: Exception) -> BerthError | None:
        """The BerthError for a pylxd or connection failure; None for anything else."""
        import pylxd

        if isinstance(exc, pylxd.exceptions.LXDAPIException):
            return self._failed(what, str(exc), exc.response.status_code)
        # requests' connection errors are OSErrors.
        if isinstance(exc, pylxd.exceptions.ClientConnectionFailed | OSError):
            return Unreachable(
                f"LXD on {self.host_name} did not answer at {self.socket_path} while trying to {what}.",
                "Check that LXD runs there; berth retries when it comes back.",
                "Check that LXD runs there.",
            )
        return None

    def _connect(self) -> pylxd.Client:
        if not Path(self.socket_path).exists():
            raise Unreachable(
                f"No LXD socket at {self.socket_path} on {self.host_name}.",
                "Check that LXD is installed and running; set lxd_socket for the host if it lives elsewhere.",
            )
        import pylxd  # here, not at the top: it costs ~0.15 s to import and only LXD work needs it

        return pylxd.Client(endpoint=self.socket_path, timeout=HTTP_TIMEOUT)

    async def _client(self) -> pylxd.Client:
        async with self._connecting:
            if self._lxd is None:
                self._lxd = await self._thread("connect", self._connect)
        return self._lxd

    async def _request(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        """One request to `/1.0/<path>` (segments of `path` are URL-quoted)."""
        node = (await self._client()).api
        for part in path.split("/"):
            node = node[quote(part, safe="")]
        response: requests.Response = await self._thread(what, getattr(node, method), **kwargs)
        return response

    async def _get(self, path: str, what: str, **params: Any) -> Any:
        """The metadata of a GET."""
        response = await self._request("get", path, what, params=params or None)
        return response.json()["metadata"]

    async def _text(self, path: str, what: str) -> str:
        """A GET whose answer is a file, decoded."""
        response = await self._request("get", path, what, is_api=False)
        return response.content.decode("utf-8", "replace")

    async def _do(
        self, method: str, path: str, what: str, progress: Callable[[str], None] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """A request that changes something; when LXD runs it as an operation, wait for its end.

        "Instance is busy" is retried for a few seconds: LXD says so for a moment after an
        operation it reported done (a snapshot, a stop) has really let go of the instance.
        """
        deadline = time.monotonic() + BUSY_RETRY
        while True:
            try:
                body = (await self._request(method, path, what, **kwargs)).json()
                if body.get("type") == "async":
                    return await self._wait(body["operation"], what, progress)
                return body.get("metadata") or {}
            except Conflict as exc:
                if "busy" not in exc.message.lower() or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.3)

    async def _wait(
        self, operation: str, what: str, progress: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """Wait for an operation (in steps, from the event loop) and return its final metadata."""
        op = f"operations/{operation.rsplit('/', 1)[-1]}/wait"
        while True:
            meta = await self._get(op, what, timeout=PROGRESS_STEP if progress else WAIT_STEP)
            if meta["status"] == "Success":
                return dict(meta.get("metadata") or {})
            if meta["status"] in ("Failure", "Cancelled"):
                raise self._failed(what, meta.get("err") or meta["status"], int(meta.get("status_code", 0)))
            text = _progress_text(meta.get("metadata"))
            if progress and text:
                progress(text)

    async def _instance(self, name: str, recursion: int = 0) -> dict[str, Any]:
        """The raw instance object; a NotFound that names the instance when there is none."""
        try:
            raw: dict[str, Any] = await self._get(f"instances/{name}", f"look up {name}", recursion=recursion)
        except NotFound:
            raise NotFound(
                f"No instance {name!r} on {self.host_name}.", "List them with `berth members`."
            ) from None
        return raw

    async def _exists(self, name: str) -> bool:
        try:
            await self._instance(name)
        except NotFound:
            return False
        return True

    async def _state(self, name: str, action: str, *, force: bool = False, timeout: int = 30) -> None:
        # Waiting on the operation, not the status: LXD reports "Stopped" before a stop has ended.
        body = {"action": action, "timeout": timeout, "force": force}
        await self._do("put", f"instances/{name}/state", f"{action} {name}", json=body)

    # For the modules that build on the backend (backends/lxd_files.py) ---------------------------

    async def request(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        """One request to `/1.0/<path>` in a worker thread, with requests' keywords (`stream=True`
        to read the answer in pieces, `data=` a file to send as it is read); `what` names it in
        the BerthError a failure becomes."""
        return await self._request(method, path, what, **kwargs)

    async def in_thread(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in a worker thread (reading a streamed answer), its failure a BerthError."""
        return await self._thread(what, fn, *args)

    # Listing -----------------------------------------------------------------------------------

    async def members(self) -> list[MemberInstance]:
        """Every instance (untagged ones with `member=None`), owners first, in one request."""
        raw = await self._get("instances", "list instances", recursion=2)
        found = [MemberInstance.from_api(item) for item in raw]
        return sorted(found, key=lambda m: (m.member is None, m.member or "", m.name))

    async def member(self, name: str) -> MemberInstance:
        """One instance with its state, snapshot count and forwards."""
        return MemberInstance.from_api(await self._instance(name, recursion=1))

    # Creating and acting -------------------------------------------------------------------------

    async def create(self, spec: MemberSpec, progress: Callable[[str], None] | None = None) -> MemberInstance:
        """Create and start a member instance with its keys installed.

        Everything that can be checked beforehand is (name, keys, image, profile, limits against the
        host's CPUs, memory and pool size, name not taken); if a step after creation fails, the
        half-made instance is deleted before the error is raised.
        """
        say = progress or (lambda _text: None)
        check_name(spec.name)
        keys = [check_key(k) for k in spec.keys]
        say("Checking the image, profile and limits")
        source = await self._image_source(spec.image)
        profile = await self._profile(spec.profile)
        devices = await self._check_limits(spec, profile)
        if await self._exists(spec.name):
            raise Conflict(
                f"An instance named {spec.name!r} already exists on {self.host_name}.",
                "Pick another name, or delete that instance first.",
            )
        config = {MEMBER_KEY: spec.member}
        if spec.contact:
            config[CONTACT_KEY] = spec.contact
        if spec.cpu is not None:
            config["limits.cpu"] = str(spec.cpu)
        if spec.memory:
            config["limits.memory"] = spec.memory
        body = {
            "name": spec.name,
            "source": source,
            "profiles": [spec.profile],
            "config": config,
            "devices": devices,
        }
        details = {
            "member": spec.member,
            "image": spec.image,
            "keys": [key_label(k) for k in keys],
            "cpu": spec.cpu,
            "memory": spec.memory,
        }
        with audited(self.host_name, "member.create", [spec.name], **details):
            await self._do(
                "post",
                "instances",
                f"create {spec.name}",
                lambda text: say(f"Creating {spec.name}: {text}"),
                json=body,
            )
            try:
                if keys:
                    say(f"Installing {len(keys)} key(s)")
                    await self._write_keys(spec.name, keys)
                    await self._cloud_init_keys(spec.name, keys)
                say(f"Starting {spec.name}")
                await self._state(spec.name, "start")
            except BerthError:
                await self._discard(spec.name)
                raise
        return await self.member(spec.name)

    async def _image_source(self, image: str) -> dict[str, str]:
        """The `source` for creating from `image`: an alias, else a (partial) fingerprint."""
        with contextlib.suppress(NotFound):
            await self._get(f"images/aliases/{image}", f"look up image {image}")
            return {"type": "image", "alias": image}
        with contextlib.suppress(NotFound):
            found = await self._get(f"images/{image}", f"look up image {image}")
            return {"type": "image", "fingerprint": str(found["fingerprint"])}
        raise NotFound(
            f"No image {image!r} on {self.host_name}.",
            "Give an alias or fingerprint that `lxc image list` shows there.",
        )

    async def _profile(self, name: str) -> dict[str, Any]:
        try:
            found: dict[str, Any] = await self._get(f"profiles/{name}", f"look up profile {name}")
        except NotFound:
            raise NotFound(
                f"No profile {name!r} on {self.host_name}.", "Give one that `lxc profile list` shows."
            ) from None
        return found

    async def _check_limits(self, spec: MemberSpec, profile: dict[str, Any]) -> dict[str, Any]:
        """Refuse limits the host cannot give (LXD itself accepts 64 CPUs on a 2-CPU host); return
        the instance's own devices (a sized root disk when `spec.disk` is set)."""
        if spec.cpu is not None and spec.cpu < 1:
            raise Invalid(f"--cpu must be at least 1, not {spec.cpu}.")
        memory = self._memory_bytes(spec.memory)
        if spec.cpu is not None or memory is not None:
            resources = await self._get("resources", "read the host's resources")
            cpus = int(resources["cpu"]["total"])
            if spec.cpu is not None and spec.cpu > cpus:
                raise Invalid(
                    f"{spec.name} asks for {spec.cpu} CPUs but {self.host_name} has {cpus}.",
                    f"Ask for at most {cpus}.",
                )
            total = int(resources["memory"]["total"])
            if memory is not None and memory > total:
                raise Invalid(
                    f"{spec.name} asks for {spec.memory} of memory but {self.host_name} has "
                    f"{total / 1024**3:.1f} GiB.",
                    "Ask for less.",
                )
        if not spec.disk:
            return {}
        size = parse_size(spec.disk)
        root = next(
            (
                (n, d)
                for n, d in (profile.get("devices") or {}).items()
                if d.get("type") == "disk" and d.get("path") == "/"
            ),
            None,
        )
        if root is None:
            raise Invalid(
                f"Profile {spec.profile!r} has no root disk to size.", "Give a profile that has one."
            )
        pool = str(root[1].get("pool", ""))
        space = await self._get(f"storage-pools/{pool}/resources", f"read the size of pool {pool}")
        available = int(space["space"]["total"])
        if size > available:
            raise Invalid(
                f"{spec.name} asks for a {spec.disk} disk but pool {pool!r} on {self.host_name} holds "
                f"{available / 1024**3:.1f} GiB.",
                "Ask for less.",
            )
        return {root[0]: {**root[1], "size": spec.disk}}

    @staticmethod
    def _memory_bytes(memory: str | None) -> int | None:
        """Bytes of a memory limit; None for none or a percentage (LXD takes "50%" as is)."""
        return parse_memory_limit(memory) if memory else None

    async def _discard(self, name: str) -> None:
        """Remove a half-made instance; a failure here must not hide the error that caused it."""
        with contextlib.suppress(BerthError):
            if (await self._instance(name))["status"] != "Stopped":
                await self._state(name, "stop", force=True)
            await self._do("delete", f"instances/{name}", f"delete the half-made {name}")

    async def act(self, name: str, action: str, *, force: bool = False, timeout: int = 30) -> None:
        """start, stop, restart, freeze or unfreeze; a stop waits `timeout` s for a clean shutdown
        (Conflict when it does not come) unless `force`, which cuts the instance off at once."""
        if action not in ACTIONS:
            raise Invalid(f"Unknown instance action {action!r}.", f"Use one of {', '.join(ACTIONS)}.")
        with audited(self.host_name, f"member.{action}", [name], force=force):
            await self._instance(name)
            try:
                await self._state(name, action, force=force, timeout=timeout)
            except BerthError as exc:
                if action in ("stop", "restart") and not force and "shutting down" in exc.message:
                    raise Conflict(
                        f"{name} on {self.host_name} did not shut down within {timeout} s.",
                        "Stop it with force to cut it off.",
                    ) from exc
                raise

    async def delete(self, name: str) -> None:
        """Delete an instance with its snapshots, stopping it first; Conflict while LXD is still
        working on it (a snapshot, a backup, a command)."""
        raw = await self._instance(name)
        busy = await self._busy(name)
        if busy:
            raise Conflict(
                f"{name} on {self.host_name} is busy: LXD is still at {busy.lower()!r}.",
                "Wait for it to finish, then delete again.",
            )
        with audited(self.host_name, "member.delete", [name]):
            if raw["status"] != "Stopped":
                await self._state(name, "stop", force=True)
            await self._do("delete", f"instances/{name}", f"delete {name}")

    async def _busy(self, name: str) -> str | None:
        """The description of an operation LXD is running on `name`, if any."""
        ops = await self._get("operations", "list operations", recursion=1)
        wanted = f"/1.0/instances/{name}"
        for op in ops.get("running") or []:
            if op.get("class") == "task" and wanted in (op.get("resources") or {}).get("instances", []):
                return str(op.get("description") or "an operation")
        return None

    async def exec(self, name: str, argv: list[str]) -> ExecResult:
        """Run `argv` in the instance to its end; its exit code and output. Recorded as member.exec
        with the program, never its arguments (they may carry secrets)."""
        with audited(self.host_name, "member.exec", [name], command=argv[0] if argv else ""):
            return await self._exec(name, argv)

    async def _exec(self, name: str, argv: list[str]) -> ExecResult:
        """`exec` without its record.

        LXD records the output to files that are read and removed afterwards, so no websocket (and
        none of ws4py's threads) is involved.
        """
        if not argv:
            raise Invalid("No command to run.", "Give the command after `--`.")
        body = {
            "command": argv,
            "record-output": True,
            "interactive": False,
            "wait-for-websocket": False,
            "environment": {},
        }
        what = f"run {argv[0]} in {name}"
        await self._instance(name)
        result = await self._do("post", f"instances/{name}/exec", what, json=body)
        outputs = result.get("output") or {}
        texts = {}
        for fd in ("1", "2"):
            path = str(outputs.get(fd, "")).removeprefix("/1.0/")
            texts[fd] = await self._text(path, what) if path else ""
            if path:
                with contextlib.suppress(BerthError):
                    await self._request("delete", path, what)
        return ExecResult(int(result.get("return", -1)), texts["1"], texts["2"])

    def shell_argv(self, name: str) -> list[str]:
        """argv for an interactive root shell in the instance: the `lxc` client aimed at this socket.

        LXD 5.0.2's `lxc` honours `LXD_SOCKET` for its `local:` remote (LXD_DIR is unset so it cannot
        win). For an SSH host the socket is berth's forwarded one, so berth's event loop must keep
        running (await the process, do not block on it) while the shell is open.
        """
        return [
            "env", "-u", "LXD_DIR", f"LXD_SOCKET={self.socket_path}",
            "lxc", "exec", f"local:{name}", "--", "/bin/sh", "-c", _ROOT_SHELL,
        ]  # fmt: skip

    # Keys ----------------------------------------------------------------------------------------

    async def _read_file(self, name: str, path: str) -> str | None:
        """A file inside the instance, or None when it does not exist."""
        try:
            return (
                await self._request(
                    "get",
                    f"instances/{name}/files",
                    f"read {path} in {name}",
                    params={"path": path},
                    is_api=False,
                )
            ).content.decode("utf-8", "replace")
        except NotFound:
            return None

    async def _write_keys(self, name: str, keys: list[str]) -> None:
        """Write root's authorized_keys (directory 700, file 600, owned by root) through the files API."""
        what = f"write {AUTHORIZED_KEYS} in {name}"
        owner = {"X-LXD-uid": "0", "X-LXD-gid": "0"}
        await self._request(
            "post",
            f"instances/{name}/files",
            what,
            params={"path": str(Path(AUTHORIZED_KEYS).parent)},
            headers={**owner, "X-LXD-type": "directory", "X-LXD-mode": "0700"},
        )
        await self._request(
            "post",
            f"instances/{name}/files",
            what,
            params={"path": AUTHORIZED_KEYS},
            data="".join(f"{k}\n" for k in keys).encode(),
            headers={**owner, "X-LXD-type": "file", "X-LXD-mode": "0600", "X-LXD-write": "overwrite"},
        )

    async def _cloud_init_keys(self, name: str, keys: list[str]) -> None:
        """Hand the keys to cloud-init too when the image has it (it runs at first boot); user-data
        already set by a profile is left alone rather than overwritten."""
        if await self._read_file(name, "/usr/bin/cloud-init") is None:
            return
        client = await self._client()
        key = "cloud-init.user-data" if client.has_api_extension("cloud_init") else "user.user-data"
        config = (await self._instance(name))["expanded_config"]
        if config.get("cloud-init.user-data") or config.get("user.user-data"):
            return
        await self._do(
            "patch",
            f"instances/{name}",
            f"set cloud-init keys of {name}",
            json={"config": {key: _cloud_config(keys)}},
        )

    async def keys(self, name: str) -> list[str]:
        """The key lines in root's authorized_keys (comments and blank lines left out)."""
        await self._instance(name)
        text = await self._read_file(name, AUTHORIZED_KEYS) or ""
        return [
            line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
        ]

    async def add_key(self, name: str, key: str) -> None:
        """Add a key to root's authorized_keys (nothing changes when it is there already)."""
        line = check_key(key)
        with audited(self.host_name, "member.key.add", [name], key=key_label(line)):
            keys = await self.keys(name)
            if _key_id(line) not in {_key_id(k) for k in keys}:
                await self._write_keys(name, [*keys, line])

    async def remove_key(self, name: str, key: str) -> None:
        """Remove a key (matched by type and data, whatever its comment) from root's authorized_keys."""
        wanted = _key_id(key.strip())
        with audited(self.host_name, "member.key.remove", [name], key=key_label(key)):
            keys = await self.keys(name)
            kept = [k for k in keys if _key_id(k) != wanted]
            if len(kept) == len(keys):
                raise NotFound(f"{name} has no such key.", f"List its keys with `berth member keys {name}`.")
            await self._write_keys(name, kept)

    # Port forwards -------------------------------------------------------------------------------

    async def add_forward(
        self, name: str, host_port: int, port: int, *, protocol: str = "tcp", listen_address: str = "0.0.0.0"
    ) -> Forward:
        """Forward `listen_address:host_port` on the host to `port` inside (a proxy device); Conflict
        when any instance on the host already listens on that host port and protocol."""
        if protocol not in ("tcp", "udp"):
            raise Invalid(f"Unknown protocol {protocol!r}.", "Use tcp or udp.")
        for value in (host_port, port):
            if not 1 <= value <= 65535:
                raise Invalid(f"{value} is not a port number.", "Ports go from 1 to 65535.")
        parse_ip_address(listen_address)
        await self._instance(name)
        user = await self._port_user(protocol, host_port)
        if user:
            raise Conflict(
                f"Host port {host_port}/{protocol} on {self.host_name} is already forwarded to {user}.",
                "Pick another host port, or remove that forward first.",
            )
        forward = Forward(f"berth-{protocol}-{host_port}", protocol, listen_address, host_port, port)
        device = {"type": "proxy", "listen": forward.listen(), "connect": f"{protocol}:127.0.0.1:{port}"}
        with audited(self.host_name, "member.forward.add", [name], listen=forward.listen(), port=port):
            await self._do(
                "patch",
                f"instances/{name}",
                f"forward {host_port}/{protocol} to {name}",
                json={"devices": {forward.device: device}},
            )
        return forward

    async def _port_user(self, protocol: str, host_port: int, besides: str = "") -> str | None:
        """The instance (and device) already listening on `host_port`/`protocol`, if any (other
        than instance `besides`)."""
        for raw in await self._get("instances", "list instances", recursion=1):
            if raw["name"] == besides:
                continue
            for device, conf in (raw.get("expanded_devices") or {}).items():
                listen = proxy_address(str(conf.get("listen", ""))) if conf.get("type") == "proxy" else None
                if listen and listen[0] == protocol and host_port in port_set(listen[2]):
                    return f"{raw['name']} ({device})"
        return None

    async def remove_forward(self, name: str, device: str) -> None:
        """Remove one of the instance's own proxy devices."""
        response = await self._request("get", f"instances/{name}", f"look up {name}")
        raw = response.json()["metadata"]
        devices = dict(raw.get("devices") or {})
        if (devices.get(device) or {}).get("type") != "proxy":
            raise NotFound(f"{name} has no forward {device!r}.", "List its forwards with `berth members`.")
        del devices[device]
        writable = ("architecture", "config", "devices", "ephemeral", "profiles", "stateful", "description")
        body = {key: raw[key] for key in writable if key in raw} | {"devices": devices}
        with audited(self.host_name, "member.forward.remove", [name], device=device):
            # If-Match: a change made by someone else since the read is refused, not overwritten.
            headers = {"If-Match": response.headers["ETag"]} if "ETag" in response.headers else {}
            await self._do(
                "put", f"instances/{name}", f"remove forward {device} of {name}", json=body, headers=headers
            )

    # Snapshots -----------------------------------------------------------------------------------

    async def snapshots(self, name: str) -> list[SnapshotInfo]:
        """The instance's snapshots, oldest first."""
        await self._instance(name)
        raw = await self._get(f"instances/{name}/snapshots", f"list snapshots of {name}", recursion=1)
        return sorted((SnapshotInfo.from_api(s) for s in raw), key=lambda s: (s.created_at, s.name))

    async def snapshot(self, name: str, snapshot: str | None = None, *, stateful: bool = False) -> str:
        """Take a snapshot (named `snap-<date>-<time>` unless `snapshot` names it); its name."""
        taken = {s.name for s in await self.snapshots(name)}
        if snapshot is None:
            base = time.strftime("snap-%Y%m%d-%H%M%S")
            snapshot = next(c for c in (base, *(f"{base}-{i}" for i in range(2, 100))) if c not in taken)
        elif snapshot in taken:
            raise Conflict(f"{name} already has a snapshot {snapshot!r}.", "Pick another name.")
        with audited(self.host_name, "member.snapshot", [name], snapshot=snapshot, stateful=stateful):
            await self._do(
                "post",
                f"instances/{name}/snapshots",
                f"snapshot {name}",
                json={"name": snapshot, "stateful": stateful},
            )
        return snapshot

    async def _snapshot_exists(self, name: str, snapshot: str) -> None:
        if snapshot not in {s.name for s in await self.snapshots(name)}:
            raise NotFound(
                f"{name} on {self.host_name} has no snapshot {snapshot!r}.",
                f"List them with `lxc info {name}` or in the snapshots view.",
            )

    async def restore(self, name: str, snapshot: str) -> None:
        """Put the instance back as it was in `snapshot` (a running one keeps running)."""
        await self._snapshot_exists(name, snapshot)
        with audited(self.host_name, "member.restore", [name], snapshot=snapshot):
            await self._do(
                "put", f"instances/{name}", f"restore {name} to {snapshot}", json={"restore": snapshot}
            )

    async def delete_snapshot(self, name: str, snapshot: str) -> None:
        """Delete one snapshot."""
        await self._snapshot_exists(name, snapshot)
        with audited(self.host_name, "member.snapshot.delete", [name], snapshot=snapshot):
            await self._do(
                "delete", f"instances/{name}/snapshots/{snapshot}", f"delete snapshot {snapshot} of {name}"
            )

    async def set_schedule(self, name: str, schedule: str, expiry: str | None = None) -> None:
        """Set `snapshots.schedule` (cron or @daily…; "" turns it off) and `snapshots.expiry`
        (e.g. "2w"; None or "" for snapshots that never expire)."""
        config = {"snapshots.schedule": schedule, "snapshots.expiry": expiry or ""}
        await self._instance(name)
        with audited(self.host_name, "member.schedule", [name], **config):
            await self._do(
                "patch", f"instances/{name}", f"set the snapshot schedule of {name}", json={"config": config}
            )

    # Backups -------------------------------------------------------------------------------------

    async def backup(self, name: str, path: Path, progress: Callable[[int], None] | None = None) -> Path:
        """Export the instance (with its snapshots) to `path`, streamed in 1 MiB chunks; `progress`
        gets the bytes written so far, on the event loop. A failed export leaves no file."""
        await self._instance(name)
        loop = asyncio.get_running_loop()

        def report(done: int) -> None:
            if progress is not None:
                loop.call_soon_threadsafe(progress, done)

        backup = f"berth-{secrets.token_hex(4)}"
        expires = (datetime.now(UTC) + BACKUP_EXPIRY).isoformat()
        with audited(self.host_name, "member.backup", [name], file=str(path)):
            await self._do(
                "post",
                f"instances/{name}/backups",
                f"back up {name}",
                json={
                    "name": backup,
                    "expires_at": expires,
                    "instance_only": False,
                    "optimized_storage": False,
                },
            )
            try:
                what = f"download the backup of {name}"
                response = await self._request(
                    "get", f"instances/{name}/backups/{backup}/export", what, stream=True, is_api=False
                )
                await self._thread(what, self._save, response, path, report)
            finally:
                with contextlib.suppress(BerthError):
                    await self._do("delete", f"instances/{name}/backups/{backup}", f"delete backup {backup}")
        return path

    @staticmethod
    def _save(response: requests.Response, path: Path, report: Callable[[int], None]) -> None:
        """Stream a response body to `path` through a `.part` file renamed at the end; 0600, for
        a backup holds the member's whole filesystem."""
        import requests

        part = path.with_name(path.name + ".part")
        done = 0
        try:
            with response, os.fdopen(open_private(part, os.O_WRONLY | os.O_TRUNC), "wb") as out:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    report(done)
            os.replace(part, path)
        except requests.RequestException:
            part.unlink(missing_ok=True)
            raise
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise BerthError(
                f"Could not write {path}: {exc.strerror or exc}.", "Check the folder exists and is writable."
            ) from None

    async def import_backup(self, path: Path, name: str | None = None) -> ImportedBackup:
        """Make an instance from a backup file (under `name`, else the name it was backed up as).
        The file is streamed to LXD; the new instance is left stopped, without the forwards whose
        host port another instance has (with them it would fail to start), named in the result."""
        target = check_name(name) if name else check_name(await asyncio.to_thread(_backup_name, path))
        if await self._exists(target):
            raise Conflict(
                f"An instance named {target!r} already exists on {self.host_name}.",
                "Import it under another name (--name), or delete that instance first.",
            )
        what = f"import {path.name} as {target}"
        client = await self._client()

        def upload() -> requests.Response:
            with path.open("rb") as data:
                response: requests.Response = client.api.instances.post(
                    data=data, headers={"Content-Type": "application/octet-stream", "X-LXD-name": target}
                )
            return response

        with audited(self.host_name, "member.import", [target], file=str(path)):
            response = await self._thread(what, upload)
            await self._wait(response.json()["operation"], what)
        return ImportedBackup(target, await self._drop_taken_forwards(target))

    async def _drop_taken_forwards(self, name: str) -> tuple[str, ...]:
        """Remove the instance's forwards whose host port another instance forwards already; what
        each one was, and who has its port."""
        dropped = []
        for forward in (await self.member(name)).forwards:
            user = await self._port_user(forward.protocol, forward.host_port, besides=name)
            if user:
                await self.remove_forward(name, forward.device)
                dropped.append(
                    f"{forward.listen_address}:{forward.host_port} → {forward.port}/{forward.protocol}"
                    f" (host port already forwarded to {user})"
                )
        return tuple(dropped)

    # Logs ----------------------------------------------------------------------------------------

    async def console_log(self, name: str) -> list[str]:
        """What the instance wrote to its console (LXD keeps it on disk once it stopped)."""
        await self._instance(name)
        return (await self._text(f"instances/{name}/console", f"read the console log of {name}")).splitlines()

    async def instance_log(self, name: str) -> list[str]:
        """LXD's own log of the instance (`lxc.log`: start-up, shutdown, errors)."""
        await self._instance(name)
        return (await self._text(f"instances/{name}/logs/lxc.log", f"read the log of {name}")).splitlines()
