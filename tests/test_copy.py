"""Copying files in and out of containers and members (issue 17): the installed `berth cp` and
`berth member cp` against the test dockerd and LXD, and the copy form behind `c` on the container
detail screen and on the Members pane. sha256 is the truth: files are checked here and, through
`sha256sum` run inside, in the container or instance. The 50 MB copies sample the real process's
resident memory from /proc."""

import asyncio
import hashlib
import io
import os
import pty
import select
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from cli_helpers import BERTH, berth
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from engines.lxd import LxdEngine, launch_busybox
from pilot_helpers import fill_form
from test_app import toasts
from test_cli_members import inventory  # noqa: F401  (fixture)
from test_container_detail import open_detail
from test_containers_pane import SIZE, make_app, until

from backends.audit import read_audit
from backends.config import Config, HostConfig, save_config
from backends.copying import parse_endpoints
from backends.docker import DockerBackend
from backends.docker_copy import Pipe, extract
from backends.errors import Invalid
from tui.app import BerthApp
from tui.panes.members import MembersPane
from tui.screens.form import FormScreen

pytestmark = pytest.mark.engines
MB = 1_000_000
RSS_LIMIT = 30 * 1024 * 1024


def random_tree(root: Path) -> Path:
    """50 MB of random bytes in a few files and a subfolder (with a link inside the copy)."""
    (root / "sub").mkdir(parents=True)
    for name, size in (("a.bin", 20 * MB), ("b.bin", 18 * MB), ("sub/c.bin", 12 * MB - 7), ("sub/d.txt", 11)):
        (root / name).write_bytes(os.urandom(size))
    os.symlink("../a.bin", root / "sub" / "to-a")
    return root


def digests(root: Path) -> dict[str, str]:
    """Path below `root` -> sha256 of a file, the target of a link, or "dir"."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def files_only(tree: dict[str, str]) -> dict[str, str]:
    """The files' digests of `digests`."""
    return {k: v for k, v in tree.items() if v != "dir" and not v.startswith("-> ")}


def inside_digests(output: str, root: str) -> dict[str, str]:
    """`sha256sum` output inside a container for files under `root`, as `digests` keys them."""
    found = {}
    for line in output.splitlines():
        digest, _, path = line.partition("  ")
        found[path.removeprefix(root.rstrip("/") + "/")] = digest
    return found


def peak_rss(
    argv: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run `argv` and sample its VmRSS from /proc every 5 ms; (the result, the highest in bytes)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.005)
    out, err = process.communicate()
    return subprocess.CompletedProcess(argv, process.returncode, out, err), peak


def round_trip_50mb(
    base: list[str], tmp_path: Path, note: Path, name: str, folder: str, sha256_inside: Callable[[str], str]
) -> None:
    """Copy 50 MB of random files into `name`:`folder` and back out with the real berth (`base`:
    its command line up to SRC DST): sha256-identical inside (`sha256_inside(folder)` is its
    `sha256sum` output) and here, and each copy's peak RSS within RSS_LIMIT of the same copy of
    `note`'s (printed)."""
    tree = random_tree(tmp_path / "tree")
    _small, small_in = peak_rss([*base, str(note), f"{name}:{folder}/small"])
    big, big_in = peak_rss([*base, str(tree), f"{name}:{folder}"])
    assert big.returncode == 0, big.stderr
    inside = f"{folder}/tree"
    assert inside_digests(sha256_inside(inside), inside) == files_only(digests(tree))
    _small, small_out = peak_rss([*base, f"{name}:{folder}/small", str(tmp_path / "small-out")])
    back, big_out = peak_rss([*base, f"{name}:{inside}", str(tmp_path / "back")])
    assert back.returncode == 0, back.stderr
    assert digests(tmp_path / "back") == digests(tree)
    grew_in, grew_out = big_in - small_in, big_out - small_out
    print(f"{' '.join(base[3:])}, 50 MB: peak RSS {big_in / MB:.1f} MB in (+{grew_in / MB:.1f} over a "
          f"{note.stat().st_size} B copy), {big_out / MB:.1f} MB out (+{grew_out / MB:.1f})")  # fmt: skip
    assert grew_in < RSS_LIMIT and grew_out < RSS_LIMIT


@pytest.fixture
def docker_inventory(dockerd: DockerEngine, tmp_path: Path) -> Path:
    """A config whose local host's Docker is the test dockerd."""
    path = tmp_path / "config.toml"
    save_config(Config(hosts=[HostConfig("local", docker_socket=str(dockerd.socket))]), path)
    return path


@pytest.fixture
def instance(lxd: LxdEngine) -> Iterator[Any]:
    """A running busybox instance on the test LXD, deleted afterwards."""
    made = launch_busybox(lxd, f"cp-{uuid.uuid4().hex[:6]}")
    yield made
    made.stop(force=True, wait=True)
    made.delete(wait=True)


def exec_in(container: Any, command: str) -> str:
    """Run `command` in a container (docker SDK) and return its output; it must succeed."""
    code, output = container.exec_run(["sh", "-c", command])
    assert code == 0, output
    return output.decode()


def test_cp_a_file_and_50_mb_folder_in_and_out_of_a_container(
    docker_inventory: Path, spawn: Spawn, tmp_path: Path
) -> None:
    box = spawn()
    note = tmp_path / "note.txt"
    note.write_bytes(b"hello from here\n")

    # A file in: into a folder that exists it keeps its name; elsewhere it takes the name given.
    into = berth(docker_inventory, "cp", str(note), f"{box.name}:/tmp/")
    assert into.returncode == 0, into.stderr
    assert into.stdout.strip() == f"Copied 16 B from {note} to {box.name}:/tmp/."
    named = berth(docker_inventory, "cp", str(note), f"{box.name}:/tmp/renamed")
    assert named.returncode == 0, named.stderr
    assert exec_in(box, "cat /tmp/note.txt /tmp/renamed") == "hello from here\n" * 2
    assert exec_in(box, "stat -c %u:%g /tmp/note.txt").strip() == "0:0"

    # ...and out: a file onto a file replaces it; into a folder it keeps its name.
    (tmp_path / "old").write_text("old\n")
    out = berth(docker_inventory, "--json", "cp", f"{box.name}:/tmp/renamed", str(tmp_path / "old"))
    assert out.returncode == 0, out.stderr
    assert '"bytes": 16' in out.stdout and '"direction": "out"' in out.stdout
    assert (tmp_path / "old").read_bytes() == note.read_bytes()
    (tmp_path / "got").mkdir()
    assert berth(docker_inventory, "cp", f"{box.name}:/tmp/note.txt", str(tmp_path / "got")).returncode == 0
    assert (tmp_path / "got" / "note.txt").read_bytes() == note.read_bytes()

    # 50 MB in and out: byte-identical, and the process's memory does not grow with the size.
    round_trip_50mb(
        [BERTH, "--config", str(docker_inventory), "cp"], tmp_path, note, box.name, "/tmp",
        lambda folder: exec_in(box, f"find {folder} -type f | xargs sha256sum"),
    )  # fmt: skip
    assert exec_in(box, "readlink /tmp/tree/sub/to-a").strip() == "../a.bin"

    records = [r for r in read_audit(50) if r["action"] == "container.cp" and r["targets"] == [box.id]]
    assert {(r["direction"], r["path"]) for r in records} >= {("in", "/tmp"), ("out", "/tmp/tree")}
    assert all(r["outcome"] == "ok" and r["names"] == [box.name] for r in records)


def test_cp_refuses_what_would_land_outside_and_bad_arguments(
    docker_inventory: Path, spawn: Spawn, tmp_path: Path
) -> None:
    # `a` comes before `abs` in the archive: it is written before the refusal, which says so.
    box = spawn("mkdir -p /data/in; echo x > /data/in/a; ln -s /etc/passwd /data/in/abs; sleep 600")
    until_ready = time.monotonic() + 10
    while "abs" not in exec_in(box, "ls /data/in || true") and time.monotonic() < until_ready:
        time.sleep(0.05)
    dest = tmp_path / "dest"
    refused = berth(docker_inventory, "cp", f"{box.name}:/data/in", str(dest))
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("berth: Refused to copy: 'abs' is a link to an absolute path;")
    assert f"nothing is written outside the destination, but 1 item was already copied to {dest}." in (
        refused.stderr
    )
    assert (dest / "a").read_text() == "x\n" and len(refused.stderr.strip().splitlines()) == 1
    assert not (dest / "abs").exists() and not os.path.lexists(dest / "abs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "dest"]
    failed = [r for r in read_audit(20) if r["action"] == "container.cp" and r["targets"] == [box.id]]
    assert failed and failed[-1]["outcome"].startswith("failed: Refused to copy")

    for args, sentence in (
        (["here", "there"], "Give one container path, written NAME:PATH, and one local path."),
        ([f"{box.name}:/a", f"{box.name}:/b"], "Give one container path"),
        ([f"{box.name}:", "x"], "Source: Not a remote path: ''."),
        ([f"{box.name}:/nope", str(tmp_path)], f"No /nope in {box.name} on local."),
        (["nope:/etc/hosts", str(tmp_path)], "No container 'nope' on local."),
        ([str(tmp_path / "absent"), f"{box.name}:/tmp"], f"No {tmp_path / 'absent'} here to copy."),
        ([str(tmp_path / "dest"), f"{box.name}:/data/in/a"], "Cannot copy a folder onto the file"),
    ):
        bad = berth(docker_inventory, "cp", *args)
        assert bad.returncode in (1, 2) and sentence in bad.stderr, (args, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1

    # Read-only: copying out only reads, copying in is refused before anything is sent.
    out = berth(docker_inventory, "--read-only", "cp", f"{box.name}:/data/in/a", str(tmp_path / "ro"))
    assert out.returncode == 0 and (tmp_path / "ro").read_text() == "x\n"
    note = tmp_path / "ro"
    refused = berth(docker_inventory, "--read-only", "cp", str(note), f"{box.name}:/tmp/")
    assert refused.returncode == 1 and "`cp` changes state and was not run" in refused.stderr
    assert "ro" not in exec_in(box, "ls /tmp")


def test_an_archive_with_a_path_out_is_refused_before_anything_lands(tmp_path: Path) -> None:
    """The extraction itself (what a hostile engine could send): `../../x` and an absolute name."""
    for evil in ("top/../../x", "/etc/evil", "top/sub/../../../x"):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            folder = tarfile.TarInfo("top")
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
            data = b"owned\n"
            member = tarfile.TarInfo(evil)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        pipe = Pipe()
        pipe.write(raw.getvalue())
        pipe.end()
        dest = tmp_path / "a" / "b" / "dest"
        dest.parent.mkdir(parents=True, exist_ok=True)
        with pytest.raises(Invalid, match="Refused to copy"):
            extract(pipe, dest, is_dir=True)
        assert not (tmp_path / "a" / "x").exists() and not (tmp_path / "x").exists()
        assert not Path("/etc/evil").exists()
        assert list(dest.rglob("*")) == []


def test_endpoints_follow_dockers_colon_rule() -> None:
    ends = parse_endpoints("web:/etc/hosts", "./a:b")
    assert (ends.direction, ends.name, ends.remote, str(ends.local)) == ("out", "web", "/etc/hosts", "a:b")
    ends = parse_endpoints("/tmp/x/.", "web:srv/")
    assert (ends.direction, ends.remote, ends.contents) == ("in", "/srv/", True)


def test_member_cp_a_file_and_50_mb_folder_in_and_out(
    inventory: Path,  # noqa: F811
    instance: Any,
    tmp_path: Path,
) -> None:
    name = instance.name
    note = tmp_path / "note.txt"
    note.write_bytes(b"hello member\n")
    into = berth(inventory, "member", "cp", str(note), f"{name}:/root/")
    assert into.returncode == 0, into.stderr
    assert instance.files.get("/root/note.txt") == note.read_bytes()
    out = berth(inventory, "member", "cp", f"{name}:/root/note.txt", str(tmp_path / "back.txt"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "back.txt").read_bytes() == note.read_bytes()

    def sha256_inside(folder: str) -> str:
        found = instance.execute(["sh", "-c", f"find {folder} -type f | xargs sha256sum"])
        assert found.exit_code == 0, found.stderr
        return str(found.stdout)

    base = [BERTH, "--config", str(inventory), "member", "cp"]
    round_trip_50mb(base, tmp_path, note, name, "/root", sha256_inside)
    records = [r for r in read_audit(50) if r["action"] == "member.cp" and r["targets"] == [name]]
    assert {(r["direction"], r["path"]) for r in records} >= {("in", "/root"), ("out", "/root/tree")}

    # What would land outside is refused: a link to an absolute path out of the copy.
    # What came before it (`a`) stays, and the refusal says so.
    instance.execute(["sh", "-c", "mkdir -p /data; echo x > /data/a; ln -s /etc/passwd /data/abs"])
    refused = berth(inventory, "member", "cp", f"{name}:/data", str(tmp_path / "hostile"))
    assert (
        refused.returncode == 2 and "Refused to copy: 'abs' is a link to an absolute path" in refused.stderr
    )
    assert f"but 1 item was already copied to {tmp_path / 'hostile'}." in refused.stderr
    assert (tmp_path / "hostile" / "a").read_text() == "x\n"
    assert not os.path.lexists(tmp_path / "hostile" / "abs")


async def test_members_pane_c_copies_a_file_out(lxd: LxdEngine, instance: Any, tmp_path: Path) -> None:
    instance.files.put("/root/report.txt", b"from the member\n")
    host = HostConfig("local", docker_socket=str(tmp_path / "none.sock"), lxd_socket=str(lxd.socket))
    app = BerthApp(Config(hosts=[host], path=tmp_path / "config.toml"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        members = app.query_one(MembersPane)
        await until(pilot, lambda: instance.name in members.table.rows, 20, "the instance's row")
        members.table.set_filter(instance.name)
        assert members.table.move_cursor_to(instance.name)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        await fill_form(pilot, app, direction="sideways", remote="/root/report.txt", local=str(tmp_path))
        assert isinstance(app.screen, FormScreen)
        error = str(app.screen.query_one("#form-error").render())
        assert "Direction: Not a copy direction: 'sideways'." in error
        await fill_form(pilot, app, direction="out", local="")
        assert "Path here: Not a local path: ''." in str(app.screen.query_one("#form-error").render())
        await fill_form(pilot, app, local=str(tmp_path))
        assert not isinstance(app.screen, FormScreen)
        got = tmp_path / "report.txt"
        await until(pilot, lambda: got.exists() and got.read_bytes() == b"from the member\n", 20, "the file")
        await until(pilot, lambda: any("Copied" in t for t in toasts(app)), 10, "the toast")
        job = list(app.jobs.jobs.values())[-1]
        assert job.state == "done" and job.unit == "bytes" and job.done == 16


async def test_detail_screen_c_copies_a_folder_in(
    dockerd: DockerEngine, spawn: Spawn, sdk: docker.DockerClient, tmp_path: Path
) -> None:
    box = spawn()
    folder = tmp_path / "conf"
    (folder / "d").mkdir(parents=True)
    (folder / "d" / "app.ini").write_text("[app]\nport = 80\n")
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app, box)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        await fill_form(pilot, app, direction="in", remote="/etc/", local=str(folder))
        assert not isinstance(app.screen, FormScreen), app.screen.query_one("#form-error").render()
        await until(pilot, lambda: any("Copied" in t for t in toasts(app)), 20, "the toast")
    assert exec_in(sdk.containers.get(box.id), "cat /etc/conf/d/app.ini") == "[app]\nport = 80\n"


async def test_detail_screen_c_refuses_copying_in_on_a_read_only_host(
    dockerd: DockerEngine, spawn: Spawn, tmp_path: Path
) -> None:
    box = spawn()
    (tmp_path / "x").write_text("x")
    app = make_app(dockerd, tmp_path, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app, box)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        await fill_form(pilot, app, direction="in", remote="/tmp/", local=str(tmp_path / "x"))
        assert isinstance(app.screen, FormScreen)
        assert "copying into" in str(app.screen.query_one("#form-error").render())
    assert "x" not in exec_in(box, "ls /tmp").split()


async def test_a_cancelled_copy_stops_both_sides(
    backend: DockerBackend, spawn: Spawn, tmp_path: Path
) -> None:
    """Cancelled mid-stream (as `:jobs` cancels a job), the copy ends at once: a copy waits for its
    tar thread before it ends, so that thread stopped too (none is left waiting on the pipe). The
    audit log says it was interrupted, and the next copy works."""
    box = spawn("head -c 30000000 /dev/urandom > /tmp/big; sleep 600")
    await asyncio.to_thread(
        exec_in, box, "while [ $(stat -c %s /tmp/big) -lt 30000000 ]; do sleep 0.05; done"
    )
    (tmp_path / "big").write_bytes(os.urandom(30 * MB))
    for start in (
        lambda progress: backend.copy_out(box.id, "/tmp/big", tmp_path / "out", progress),
        lambda progress: backend.copy_in(box.id, tmp_path / "big", "/tmp/in", progress),
    ):
        started = asyncio.Event()
        task = asyncio.ensure_future(start(lambda done, total, started=started: started.set()))
        await asyncio.wait_for(started.wait(), 20)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    records = [r for r in read_audit(20) if r["action"] == "container.cp" and r["targets"] == [box.id]]
    assert [r["outcome"].split(":")[0] for r in records[-2:]] == ["interrupted", "interrupted"]
    (tmp_path / "small").write_text("after\n")
    assert await backend.copy_in(box.id, tmp_path / "small", "/tmp/after") == 6
    assert exec_in(box, "cat /tmp/after") == "after\n"


def test_cp_shows_progress_on_a_terminal(docker_inventory: Path, spawn: Spawn, tmp_path: Path) -> None:
    """On a terminal stderr carries a progress line redrawn in place and cleared at the end; piped
    (as in the tests above) it carries nothing."""
    box = spawn()
    (tmp_path / "five").write_bytes(os.urandom(5 * MB))
    main, side = pty.openpty()
    argv = [BERTH, "--config", str(docker_inventory), "cp", str(tmp_path / "five"), f"{box.name}:/tmp/"]
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=side, text=True, timeout=60)
    os.close(side)
    shown = b""
    while select.select([main], [], [], 0.2)[0]:
        try:
            piece = os.read(main, 65536)
        except OSError:  # the terminal's other end is closed: all was read
            break
        if not piece:
            break
        shown += piece
    os.close(main)
    assert (
        done.returncode == 0
        and done.stdout.strip() == f"Copied 5.0 MB from {tmp_path / 'five'} to {box.name}:/tmp/."
    )
    lines = shown.decode().split("\r\x1b[K")
    assert "1.0 MB of 5.0 MB copied" in lines and "5.0 MB of 5.0 MB copied" in lines, shown
    assert shown.endswith(b"\r\x1b[K")
