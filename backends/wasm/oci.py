"""`wasi/wasm` OCI images: take one from a host's Docker, unpack it, find its `.wasm` entrypoint.

What the containerd wasm shims do, without a shim, on any host berth reaches: `docker save` the
image (`GET /images/{name}/get`), read the tarball's OCI index (picking the `wasi/wasm` platform
where it lists several) or docker-save manifest, and its config; apply the layers in order to a
temporary root filesystem (whiteouts honoured; nothing may land outside it, device files and links
pointing outside are left out); then argv = Entrypoint + Cmd, whose first word (less any `#func`
suffix) is the module. The task runs with that root filesystem preopened read-only at `/`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from backends.errors import Invalid
from backends.wasm.spec import Preopen, TaskSpec

if TYPE_CHECKING:
    from backends.docker import DockerBackend

WASM_MAGIC = b"\0asm"
WASI_OS = "wasi"
WASM_ARCHES = ("wasm", "wasm32")
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


@dataclasses.dataclass
class WasiImage:
    """An unpacked `wasi/wasm` image: its root filesystem here, the module in it, argv and env."""

    ref: str
    rootfs: Path
    module: Path
    entrypoint: list[str]
    cmd: list[str]
    env: list[tuple[str, str]]

    @property
    def argv(self) -> list[str]:
        """Entrypoint + Cmd, as the image gives them (argv[0] is the module)."""
        return self.entrypoint + self.cmd

    def task_spec(self, spec: TaskSpec) -> TaskSpec:
        """`spec` (which names this image) made runnable: the module, argv and env from the image,
        the root filesystem read-only at `/`. The spec's args replace the image's Cmd as with
        `docker run` (only its arguments when the image has no Entrypoint: the module stays)."""
        if not spec.args:
            args = tuple(self.argv[1:])
        elif self.entrypoint:
            args = (*self.entrypoint[1:], *spec.args)
        else:
            args = spec.args
        env = dict(self.env)
        env.update(spec.env)
        return dataclasses.replace(
            spec,
            module=str(self.module),
            args=args,
            env=tuple(env.items()),
            dirs=(Preopen(str(self.rootfs), "/"), *spec.dirs),
            image=None,
            host=None,
            name=spec.name or self.ref,
        )

    def cleanup(self) -> None:
        """Remove the unpacked root filesystem."""
        shutil.rmtree(self.rootfs.parent, ignore_errors=True)


async def take_image(backend: DockerBackend, ref: str) -> WasiImage:
    """Save `ref` from `backend`'s Docker and unpack it; Invalid when it has no .wasm entrypoint."""
    work = Path(tempfile.mkdtemp(prefix="berth-wasi-"))
    try:
        saved = work / "image.tar"
        with saved.open("wb") as out:
            async with backend.http.request(
                "GET", f"/images/{ref}/get", f"saving image {ref}", stream=True
            ) as resp:
                async for chunk in resp.content.iter_chunked(1 << 20):
                    await asyncio.to_thread(out.write, chunk)
        image = await asyncio.to_thread(unpack, saved, ref, work / "rootfs")
        saved.unlink()
        return image
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def unpack(saved: Path, ref: str, rootfs: Path) -> WasiImage:
    """Unpack a `docker save` tarball (docker or OCI layout) into `rootfs` and find its module."""
    rootfs.mkdir(parents=True, exist_ok=True)
    with tarfile.open(saved, "r:") as outer:
        names = set(outer.getnames())
        if "index.json" in names:
            config, layers = _from_oci_index(outer, ref)
        elif "manifest.json" in names:
            config, layers = _from_docker_manifest(outer, ref)
        else:
            raise Invalid(
                f"{ref} was saved without a manifest or an index.", "Check the image with `docker inspect`."
            )
        for layer in layers:
            fileobj = outer.extractfile(layer)
            if fileobj is None:
                raise Invalid(f"{ref} names a layer {layer} its tarball does not hold.")
            _apply_layer(fileobj, rootfs, ref)
    settings = config.get("config") or {}
    entrypoint = [str(word) for word in settings.get("Entrypoint") or []]
    cmd = [str(word) for word in settings.get("Cmd") or []]
    words = entrypoint or cmd
    if not words:
        raise _no_entrypoint(ref, "it sets neither Entrypoint nor Cmd")
    # "app.wasm#func" asks the shims to call `func`; berth runs the WASI command's _start.
    words[0] = words[0].split("#", 1)[0]
    env = [(k, v) for k, _, v in (item.partition("=") for item in settings.get("Env") or []) if k]
    module = _module_path(rootfs, words[0], settings.get("WorkingDir") or "/", ref)
    return WasiImage(ref, rootfs, module, entrypoint, cmd, env)


def _no_entrypoint(ref: str, why: str) -> Invalid:
    return Invalid(
        f"{ref} has no .wasm entrypoint: {why}.",
        'Build it FROM scratch with the module copied in and ENTRYPOINT ["/app.wasm"].',
    )


def _module_path(rootfs: Path, word: str, workdir: str, ref: str) -> Path:
    """The file in `rootfs` that argv[0] names, checked to be a wasm module inside it."""
    guest = PurePosixPath(workdir) / word
    host = Path(os.path.realpath(rootfs / str(guest).lstrip("/")))
    if not host.is_relative_to(os.path.realpath(rootfs)):
        raise _no_entrypoint(ref, f"its entrypoint {word} points outside the image")
    if not host.is_file():
        raise _no_entrypoint(ref, f"its entrypoint {word} is not a file in the image")
    with host.open("rb") as fh:
        if fh.read(4) != WASM_MAGIC:
            raise _no_entrypoint(ref, f"its entrypoint {word} is not a wasm module")
    return host


def _json(outer: tarfile.TarFile, name: str, ref: str) -> Any:
    try:
        fileobj = outer.extractfile(name)
    except KeyError:
        fileobj = None
    if fileobj is None:
        raise Invalid(f"The saved {ref} lacks {name}.", "Check the image with `docker inspect`.")
    return json.load(fileobj)


def _blob(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _from_docker_manifest(outer: tarfile.TarFile, ref: str) -> tuple[dict[str, Any], list[str]]:
    """The config and layer paths from docker-save's `manifest.json`."""
    manifest = _json(outer, "manifest.json", ref)
    entry = next((m for m in manifest if ref in (m.get("RepoTags") or [])), manifest[0] if manifest else None)
    if entry is None:
        raise Invalid(f"The saved {ref} lists no image.", "Check the image with `docker inspect`.")
    return _json(outer, entry["Config"], ref), list(entry.get("Layers") or [])


def _from_oci_index(outer: tarfile.TarFile, ref: str) -> tuple[dict[str, Any], list[str]]:
    """The config and layer blobs from an OCI layout, following indexes to the wasi/wasm platform."""
    descriptors = list(_json(outer, "index.json", ref).get("manifests") or [])
    while True:
        if not descriptors:
            raise Invalid(f"The saved {ref} lists no image manifest.", "Check it with `docker inspect`.")
        chosen = _pick_platform(descriptors, ref)
        document = _json(outer, _blob(chosen["digest"]), ref)
        if chosen.get("mediaType") in INDEX_TYPES or "manifests" in document:
            descriptors = list(document.get("manifests") or [])
            continue
        config = _json(outer, _blob(document["config"]["digest"]), ref)
        return config, [_blob(layer["digest"]) for layer in document.get("layers") or []]


def _pick_platform(descriptors: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """The wasi/wasm manifest where there are several; the only one where there is one."""
    if len(descriptors) == 1:
        return descriptors[0]
    for descriptor in descriptors:
        platform = descriptor.get("platform") or {}
        if platform.get("os") == WASI_OS and platform.get("architecture") in WASM_ARCHES:
            return descriptor
    seen = sorted(
        {f"{(d.get('platform') or {}).get('os', '?')}/{(d.get('platform') or {}).get('architecture', '?')}"
         for d in descriptors}
    )  # fmt: skip
    raise Invalid(
        f"{ref} has no wasi/wasm platform (it has {', '.join(seen)}).",
        "Build it with --platform wasi/wasm.",
    )


def _apply_layer(fileobj: IO[bytes], rootfs: Path, ref: str) -> None:
    """Apply one layer (tar, maybe gzipped) to `rootfs`: whiteouts first remove, files land inside."""
    root = os.path.realpath(rootfs)
    with tarfile.open(fileobj=fileobj, mode="r|*") as layer:
        for member in layer:
            name = PurePosixPath(member.name)
            if name.name.startswith(".wh."):
                _whiteout(root, name, ref)
                continue
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                continue  # device files and fifos: a wasm module has no use for them
            try:
                layer.extract(member, root, filter="data")
            except tarfile.LinkOutsideDestinationError:
                continue  # e.g. an absolute symlink: it would point at this machine's files
            except tarfile.AbsoluteLinkError:
                continue
            except tarfile.FilterError as exc:
                raise Invalid(f"{ref} has a layer entry berth will not unpack: {exc}.") from exc


def _whiteout(root: str, name: PurePosixPath, ref: str) -> None:
    """Remove what a lower layer put where an `.wh.` entry says (all of a dir for `.wh..wh..opq`)."""
    parent = Path(os.path.realpath(os.path.join(root, str(name.parent).lstrip("/"))))
    if not parent.is_relative_to(root):
        raise Invalid(f"{ref} has a whiteout outside its root filesystem: {name}.")
    if name.name == ".wh..wh..opq":
        targets: Iterator[Path] = parent.iterdir() if parent.is_dir() else iter(())
    else:
        targets = iter((parent / name.name.removeprefix(".wh."),))
    for target in targets:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
