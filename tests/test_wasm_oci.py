"""wasi/wasm images: built FROM scratch in the test dockerd, taken with `docker save`, run by the pool.

dockerd 20.10 refuses both `--platform wasi/wasm` ("operating system is not supported") and
loading a config whose os is "wasi", so the images built there are linux/amd64 with a .wasm
entrypoint; picking the wasi/wasm platform from a multi-platform OCI index is tested on a layout
written here with the same module.
"""

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest
from engines.dockerd import DockerEngine
from pilot_helpers import fill_form, log_lines
from test_app import toasts
from test_containers_pane import until
from test_input_forms import open_new_task_form
from wasm_helpers import build_image

from backends.config import Config, HostConfig
from backends.docker import DockerBackend
from backends.errors import Invalid
from backends.hosts import HostSession
from backends.wasm import oci
from backends.wasm.history import TaskHistory
from backends.wasm.pool import TaskPool
from backends.wasm.spec import TaskSpec
from tui.app import BerthApp
from tui.panes.wasm import WasmPane
from tui.screens.logs import LogScreen

SHOW = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
    printf("GREETING=%s\n", getenv("GREETING") ? getenv("GREETING") : "(unset)");
    char line[128];
    FILE *motd = fopen("/etc/motd", "r");
    if (motd && fgets(line, sizeof line, motd)) printf("motd: %s", line);
    if (fopen("/etc/new", "w")) puts("wrote into the image");
    return 0;
}
"""


@pytest.fixture(scope="module")
def show_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A WASI program printing its args, $GREETING and /etc/motd, and trying to write in /etc."""
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed")
    folder = tmp_path_factory.mktemp("show")
    (folder / "show.c").write_text(SHOW)
    subprocess.run(
        [clang, "--target=wasm32-wasi", "-O2", "-o", str(folder / "show.wasm"), str(folder / "show.c")],
        check=True,
        timeout=120,
    )
    return (folder / "show.wasm").read_bytes()


@pytest.fixture(scope="module")
def images(dockerd: object, show_wasm: bytes) -> Iterator[dict[str, str]]:
    """Tags of three FROM scratch images in the test dockerd: a wasm one and two without one."""
    client = dockerd.client()  # type: ignore[attr-defined]
    motd = b"welcome to the image\n"
    built = {
        "wasm": (
            "FROM scratch\nCOPY show.wasm /bin/show.wasm\nCOPY motd /etc/motd\nENV GREETING=hi\n"
            'ENTRYPOINT ["/bin/show.wasm#_start"]\nCMD ["from-cmd"]\n'
        ),
        "not-wasm": 'FROM scratch\nCOPY motd /etc/motd\nCMD ["/etc/motd"]\n',
        "no-command": "FROM scratch\nCOPY motd /etc/motd\n",
    }
    tags = {}
    for name, dockerfile in built.items():
        tags[name] = f"berth-test/{name}:latest"
        build_image(client, tags[name], dockerfile, **{"show.wasm": show_wasm, "motd": motd})
    yield tags
    for tag in tags.values():
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)
    client.close()


@pytest.fixture
async def pool(tmp_path: Path, backend: DockerBackend) -> AsyncIterator[TaskPool]:
    def session_for(host: str) -> HostSession:
        assert host == "local"
        return HostSession(HostConfig("local", docker_socket=backend.http.socket_path))

    pool = TaskPool(tmp_path / "modules", TaskHistory(tmp_path / "tasks.sqlite"), 1, session_for=session_for)
    await pool.start()
    yield pool
    await pool.close()


async def output(pool: TaskPool, task_id: str) -> list[str]:
    return [line.text async for batch in pool.output(task_id) for line in batch]


async def test_a_wasi_image_runs_with_its_rootfs_argv_and_env(
    pool: TaskPool, images: dict[str, str], tmp_path: Path
) -> None:
    before = set(Path("/tmp").glob("berth-wasi-*"))
    record = await pool.submit(TaskSpec(image=images["wasm"], host="local"))
    assert record.name == images["wasm"] and record.to_json()["module"] == images["wasm"]
    done = await pool.wait(record.id)
    assert (done.state, done.exit_code) == ("done", 0), done.result
    assert await output(pool, record.id) == [
        "arg 1: from-cmd",
        "GREETING=hi",
        "motd: welcome to the image",  # the image's root filesystem at /, read-only: no write
        "exited with code 0",
    ]
    # Args replace the image's Cmd (as with docker run); env adds to and overrides the image's.
    again = await pool.submit(TaskSpec(image=images["wasm"], args=("x", "y"), env=(("GREETING", "yo"),)))
    await pool.wait(again.id)
    assert (await output(pool, again.id))[:3] == ["arg 1: x", "arg 2: y", "GREETING=yo"]
    assert set(Path("/tmp").glob("berth-wasi-*")) == before  # the unpacked rootfs is gone


async def test_an_image_without_a_wasm_entrypoint_gets_a_clear_message(
    pool: TaskPool, images: dict[str, str]
) -> None:
    with pytest.raises(Invalid) as refused:
        await pool.submit(TaskSpec(image=images["not-wasm"]))
    assert str(refused.value).startswith(
        f"{images['not-wasm']} has no .wasm entrypoint: its entrypoint /etc/motd is not a wasm module."
    )
    with pytest.raises(Invalid, match=r"has no \.wasm entrypoint: it sets neither Entrypoint nor Cmd"):
        await pool.submit(TaskSpec(image=images["no-command"]))
    assert pool.tasks() == []


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def _tar(entries: list[tuple[str, bytes, dict[str, object]]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data, fields in entries:
            _add(tar, name, data, **fields)
    return out.getvalue()


def test_an_oci_index_gives_its_wasi_platform_and_layers_unpack_safely(
    tmp_path: Path, show_wasm: bytes
) -> None:
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    base = _tar(
        [
            ("app.wasm", show_wasm, {}),
            ("etc/old", b"gone soon", {}),
            ("dev/null", b"", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}),
            ("etc/host", b"", {"type": tarfile.SYMTYPE, "linkname": "/etc"}),
        ]
    )
    top = _tar([("etc/.wh.old", b"", {})])
    linux = _tar([("bin/sh", b"#!not wasm", {})])

    def manifest(config: dict[str, object], layers: list[bytes]) -> dict[str, object]:
        return {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": blob(json.dumps(config).encode()),
            "layers": [blob(layer) for layer in layers],
        }

    wasi = manifest(
        {"os": "wasi", "architecture": "wasm", "config": {"Entrypoint": ["app.wasm"]}}, [base, top]
    )
    other = manifest({"os": "linux", "architecture": "amd64", "config": {"Cmd": ["/bin/sh"]}}, [linux])
    index = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {**blob(json.dumps(other).encode()), "platform": {"os": "linux", "architecture": "amd64"}},
            {**blob(json.dumps(wasi).encode()), "platform": {"os": "wasi", "architecture": "wasm"}},
        ],
    }
    top_index = {"manifests": [{**blob(json.dumps(index).encode()), "mediaType": index["mediaType"]}]}
    saved = tmp_path / "saved.tar"
    saved.write_bytes(
        _tar(
            [
                ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', {}),
                ("index.json", json.dumps(top_index).encode(), {}),
            ]
            + [(f"blobs/sha256/{d.split(':')[1]}", data, {}) for d, data in blobs.items()]
        )
    )
    image = oci.unpack(saved, "multi:latest", tmp_path / "rootfs")
    root = tmp_path / "rootfs"
    assert image.module == root / "app.wasm" and image.argv == ["app.wasm"]
    assert not (root / "bin").exists()  # the linux/amd64 manifest was not used
    assert not (root / "etc" / "old").exists()  # whited out by the upper layer
    assert not (root / "dev" / "null").exists()  # no device files
    assert not (root / "etc" / "host").is_symlink()  # no links to this machine's files
    spec = image.task_spec(TaskSpec(image="multi:latest", args=("a",)))
    assert (spec.module, spec.args, spec.image, spec.dirs[0].guest) == (str(image.module), ("a",), None, "/")

    escaping = tmp_path / "escaping.tar"
    layer = _tar([("../../outside", b"x", {})])
    config = json.dumps({"config": {"Entrypoint": ["/a.wasm"]}}).encode()
    escaping.write_bytes(
        _tar(
            [
                ("manifest.json", json.dumps([{"Config": "c.json", "Layers": ["l/layer.tar"]}]).encode(), {}),
                ("c.json", config, {}),
                ("l/layer.tar", layer, {}),
            ]
        )
    )
    with pytest.raises(Invalid, match="has a layer entry berth will not unpack"):
        oci.unpack(escaping, "evil:latest", tmp_path / "evil")
    assert not (tmp_path / "outside").exists()


async def test_the_new_task_form_takes_an_image_from_the_hosts_configured_docker(
    dockerd: DockerEngine, images: dict[str, str], tmp_path: Path
) -> None:
    """The console's pool reaches Docker as the Containers pane does, through the host's
    configured socket (it used the default /var/run/docker.sock: found by a newcomer)."""
    host = HostConfig("local", docker_socket=str(dockerd.socket), lxd_socket="/nonexistent/berth-test/lxd")
    app = BerthApp(Config(hosts=[host], path=tmp_path / "config.toml"))
    async with app.run_test(size=(160, 40)) as pilot:
        await open_new_task_form(pilot, app)
        await fill_form(pilot, app, image=images["wasm"])
        await until(pilot, lambda: isinstance(app.screen, LogScreen), timeout=30, what=str(toasts(app)))
        await until(pilot, lambda: "motd: welcome to the image" in log_lines(app), timeout=30)
        (record,) = app.query_one(WasmPane).records.values()
        assert (record.state, record.exit_code, record.name) == ("done", 0, images["wasm"])
