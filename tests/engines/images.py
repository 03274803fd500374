"""Test images built from Debian's busybox-static, with no registry involved.

One rootfs serves both engines: a Docker image imported from the tar, and a unified LXD image
(``metadata.yaml`` + ``rootfs/``). ``/sbin/init`` is busybox, whose ``/etc/inittab`` brings ``lo``
up (without it nothing inside an LXD instance can use 127.0.0.1) and spawns no getty.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import tarfile
from typing import Any

import docker

from engines import EngineError

#: Override the busybox binary copied into images (must be statically linked).
BUSYBOX_ENV = "BERTH_TEST_BUSYBOX"
DOCKER_REPO = "berth-test/busybox"
DOCKER_TAG = "latest"
#: Fixed timestamp for every tar member, so the same busybox gives the same tarball.
EPOCH = 1_700_000_000

INITTAB = b"""\
# berth test image: no getty, nothing respawned; lo up so 127.0.0.1 works inside.
::sysinit:/bin/ip link set lo up
::sysinit:/bin/mkdir -p /run /var/run /tmp
::shutdown:/bin/sync
"""
PASSWD = b"""\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = b"""\
root:x:0:
nogroup:x:65534:
"""
HOSTS = b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def busybox_path() -> str:
    """Path of the static busybox to put in images (``BERTH_TEST_BUSYBOX`` or /bin/busybox)."""
    path = os.environ.get(BUSYBOX_ENV) or "/bin/busybox"
    if not os.access(path, os.X_OK):
        raise EngineError(f"{path} not found (install Debian's busybox-static)")
    return path


def busybox_applets(path: str | None = None) -> list[str]:
    """The applet names ``busybox --list`` prints."""
    out = subprocess.run([path or busybox_path(), "--list"], capture_output=True, check=True, timeout=10)
    return sorted({name for name in out.stdout.decode().split() if name and "/" not in name})


def _add(
    tar: tarfile.TarFile,
    name: str,
    *,
    data: bytes | None = None,
    mode: int = 0o644,
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.type = kind
    info.mode = mode
    info.linkname = link
    if kind == tarfile.REGTYPE:
        payload = data or b""
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    else:
        tar.addfile(info)


def _rootfs_members(tar: tarfile.TarFile, prefix: str, extra: dict[str, bytes] | None) -> None:
    """Write the busybox rootfs into ``tar`` with every name under ``prefix``."""
    bb = busybox_path()
    with open(bb, "rb") as fh:
        busybox = fh.read()
    dirs = {
        "bin": 0o755, "sbin": 0o755, "etc": 0o755, "root": 0o700, "tmp": 0o1777,
        "dev": 0o755, "proc": 0o555, "sys": 0o555, "run": 0o755, "var": 0o755,
        "var/tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "home": 0o755,
    }  # fmt: skip
    for extra_name in extra or {}:
        parent = os.path.dirname(extra_name.strip("/"))
        while parent:
            dirs.setdefault(parent, 0o755)
            parent = os.path.dirname(parent)
    for name in sorted(dirs):
        _add(tar, f"{prefix}{name}", kind=tarfile.DIRTYPE, mode=dirs[name])
    _add(tar, f"{prefix}bin/busybox", data=busybox, mode=0o755)
    for applet in busybox_applets(bb):
        if applet != "busybox":
            _add(tar, f"{prefix}bin/{applet}", kind=tarfile.SYMTYPE, link="busybox")
    _add(tar, f"{prefix}sbin/init", kind=tarfile.SYMTYPE, link="/bin/busybox")
    _add(tar, f"{prefix}usr/bin/env", kind=tarfile.SYMTYPE, link="/bin/busybox")
    files = {
        "etc/inittab": INITTAB,
        "etc/passwd": PASSWD,
        "etc/group": GROUP,
        "etc/hosts": HOSTS,
        "etc/hostname": b"busybox\n",
        "etc/shells": b"/bin/sh\n/bin/ash\n",
    }
    files.update({name.strip("/"): data for name, data in (extra or {}).items()})
    for name in sorted(files):
        data = files[name]
        mode = 0o755 if data.startswith(b"#!") else 0o644
        _add(tar, f"{prefix}{name}", data=data, mode=mode)


def busybox_rootfs_tar(extra: dict[str, bytes] | None = None) -> bytes:
    """An uncompressed tar of a busybox root filesystem.

    ``extra`` maps paths (e.g. ``"etc/motd"`` or ``"/usr/local/bin/tool"``) to contents; they
    replace the defaults of the same name, parents are created, and a file whose content
    starts with ``#!`` is made executable.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        _rootfs_members(tar, "", extra)
    return buf.getvalue()


def import_docker_busybox(
    client: docker.DockerClient,
    repo: str = DOCKER_REPO,
    tag: str = DOCKER_TAG,
    extra: dict[str, bytes] | None = None,
) -> str:
    """Import the busybox rootfs into Docker as ``repo:tag`` (CMD ``/bin/sh``); return its id."""
    answer = client.api.import_image_from_data(
        busybox_rootfs_tar(extra), repository=repo, tag=tag, changes=['CMD ["/bin/sh"]']
    )
    image_id = ""
    for line in str(answer).splitlines():
        line = line.strip()
        if not line:
            continue
        doc = json.loads(line)
        if "error" in doc:
            raise EngineError(f"docker import failed: {doc['error']}")
        image_id = str(doc.get("status", image_id))
    if not image_id.startswith("sha256:"):
        raise EngineError(f"docker import gave no image id: {answer!r}")
    return image_id


def lxd_architecture() -> str:
    """The architecture name LXD expects in metadata.yaml (``uname -m``)."""
    return platform.machine()


def lxd_busybox_tarball(extra: dict[str, bytes] | None = None) -> bytes:
    """A unified LXD image tarball: ``metadata.yaml`` plus the busybox ``rootfs/``."""
    metadata = (
        f"architecture: {lxd_architecture()}\n"
        f"creation_date: {EPOCH}\n"
        "properties:\n"
        "  description: berth test busybox\n"
        "  os: busybox\n"
        '  release: "static"\n'
        f"  architecture: {lxd_architecture()}\n"
    ).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        _add(tar, "metadata.yaml", data=metadata)
        _add(tar, "rootfs", kind=tarfile.DIRTYPE, mode=0o755)
        _rootfs_members(tar, "rootfs/", extra)
    return buf.getvalue()


def lxd_busybox_image(client: Any, alias: str = "busybox") -> str:
    """Import the busybox image into LXD (``pylxd.Client``) under ``alias``; return its
    fingerprint. Importing the same tarball twice reuses the existing image.
    """
    data = lxd_busybox_tarball()
    fingerprint = hashlib.sha256(data).hexdigest()
    if client.images.exists(fingerprint):
        image = client.images.get(fingerprint)
    else:
        image = client.images.create(data, public=False, wait=True)
    if not any(entry.get("name") == alias for entry in image.aliases):
        if client.images.exists(alias, alias=True):
            client.api.images.aliases[alias].delete()
        image.add_alias(alias, "berth test busybox")
    return str(image.fingerprint)
