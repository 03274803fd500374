"""Benchmark of issue 17's daily Docker work against the docker CLI, on a private dockerd and
registry this script starts.

    cd /work/main && sudo .venv/bin/python -m tests.bench.bench_daily [--runs 5] [--json PATH]

In one run, on one engine, each figure the median of ``--runs`` runs, berth and the docker CLI
taking turns within each run (which goes first alternates):

1. Copy: a 50 MB folder of random files copied into a running busybox container and back out,
   with the real ``berth cp`` (its config's only host is the bench engine) and with ``docker cp``
   (``DOCKER_HOST=unix://…``): wall time of each process and its peak RSS (VmHWM, read from
   /proc every 2 ms). The first copy of each tool each way is checked with sha256, inside the
   container (``sha256sum`` through ``docker exec``) and here. An 11-byte file copied in says
   what each tool costs before any bytes move (start-up, lookups).
2. Pull: an image of a few layers of random bytes (~37 MB), pushed to a private
   ``docker-registry`` on 127.0.0.1 with htpasswd auth (credentials in the private
   ``$DOCKER_CONFIG/config.json``, which both tools read), pulled with ``berth pull`` and with
   ``docker pull``; the image is removed from the engine before each pull.
3. Disk usage: ``berth df`` and ``docker system df`` (both one ``GET /system/df``) with 50 volumes
   and 50 stopped containers on the engine (half of them wrote a file into a volume).

Figures go to stdout as tables (and to ``--json PATH``); progress goes to stderr. The machine
(CPU, cores, RAM, kernel) and every version are printed. Everything started (dockerd and its
containers, the registry) is stopped by PID before the script exits. Needs root, dockerd, the
docker CLI, Debian's docker-registry and apache2-utils (htpasswd), and busybox-static.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tests.bench.bench_containers import (
    BenchError,
    clean_env,
    code_version,
    fmt,
    load_average,
    machine_info,
    make_config,
    median,
    peak_rss_mb,
    print_table,
    progress,
    remove_containers,
    run_and_report,
    sdk_client,
    stop_child,
    wait_quiet,
)

# Importing bench_containers put tests/ (for `engines`) and the repo on sys.path.

if TYPE_CHECKING:
    import docker
    from engines.registry import Registry

MB = 1_000_000
TREE_FILES = (
    ("a.bin", 9 * MB),
    ("b.bin", 8 * MB),
    ("c.bin", 7 * MB),
    ("sub/d.bin", 6 * MB),
    ("sub/e.bin", 6 * MB),
    ("sub/f.bin", 5 * MB),
    ("sub/deeper/g.bin", 5 * MB),
    ("sub/deeper/h.bin", 4 * MB - 11),
    ("notes.txt", 11),
)
"""The copied folder: 50 MB of random bytes in nine files and three folders."""
LAYER_SIZES = (14 * MB, 10 * MB, 8 * MB, 4 * MB)
"""The pulled image's own layers of random bytes, on top of the busybox layer."""
VOLUMES = 50
STOPPED = 50
PREFIX = "bench-daily"
IMAGE_REF_PATH = "bench/daily:latest"
SMALL = "in, 11 B file"
"""The copy that says what a tool costs before the bytes: start-up, lookups."""
INSIDE = "/copied"
"""Where the folder lands in the container (it does not exist before: docker cp's rule)."""
TOOL_TIMEOUT = 300.0
BERTH = "berth"
DOCKER = "docker CLI"


# --- running one tool ---------------------------------------------------------------------------


@dataclass
class ToolRun:
    """One process of a tool: its wall seconds and peak RSS (MiB)."""

    seconds: float
    peak_rss_mb: float


def timed(argv: Sequence[str], env: dict[str, str], timeout: float = TOOL_TIMEOUT) -> ToolRun:
    """Run ``argv`` to its end; its wall time and its peak RSS. Raises BenchError (with its
    stderr) when it fails or outlives ``timeout``.

    The peak is the last VmHWM read from /proc every 2 ms: a high-water mark only grows within
    one program, and the last reading is after the exec (``ru_maxrss`` from wait4 would not do:
    Linux carries the forking parent's peak, this bench's, into the child's).
    """
    err_path = Path(env["HOME"]) / "tool-stderr"
    with open(err_path, "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env
        )
        peak = math.nan
        while proc.poll() is None:
            if time.monotonic() - start > timeout:
                stop_child(proc)
                raise BenchError(f"{' '.join(argv)} took over {timeout:.0f} s")
            reading = peak_rss_mb(proc.pid)
            if not math.isnan(reading):
                peak = reading
            time.sleep(0.002)
        seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({proc.returncode}): {err_path.read_text().strip()}")
    return ToolRun(seconds, peak)


@dataclass
class Figures:
    """The runs of one tool doing one thing."""

    tool: str
    what: str
    runs: list[ToolRun] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Median wall seconds."""
        return median([run.seconds for run in self.runs])

    @property
    def peak_rss_mb(self) -> float:
        """Median peak RSS, MiB."""
        return median([run.peak_rss_mb for run in self.runs])

    def as_json(self) -> dict[str, Any]:
        """The figures and every run."""
        return {
            "tool": self.tool,
            "what": self.what,
            "median_seconds": self.seconds,
            "median_peak_rss_mb": self.peak_rss_mb,
            "runs": [vars(run) for run in self.runs],
        }


def turns(index: int) -> tuple[str, str]:
    """Which tool goes first in run ``index``: they take turns, so drift hits both alike."""
    return (BERTH, DOCKER) if index % 2 == 0 else (DOCKER, BERTH)


@dataclass
class Tools:
    """The two command lines and their environments."""

    berth: list[str]
    docker: list[str]
    berth_env: dict[str, str]
    docker_env: dict[str, str]

    def run(self, tool: str, *args: str) -> ToolRun:
        """``berth ARGS`` or ``docker ARGS``, timed."""
        if tool == BERTH:
            return timed([*self.berth, *args], self.berth_env)
        return timed([*self.docker, *args], self.docker_env)


# --- 1. copy ------------------------------------------------------------------------------------


def random_tree(root: Path) -> Path:
    """The copied folder (:data:`TREE_FILES`) under ``root``."""
    for name, size in TREE_FILES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    return root


def digests(root: Path) -> dict[str, str]:
    """Each file's path below ``root`` and its sha256."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def inside_digests(container: Any, folder: str) -> dict[str, str]:
    """The same, read by ``sha256sum`` inside the container."""
    result = container.exec_run(["sh", "-c", f"find {folder} -type f | xargs sha256sum"])
    if result.exit_code != 0:
        raise BenchError(f"sha256sum in the container failed: {result.output.decode(errors='replace')}")
    found = {}
    for line in result.output.decode().splitlines():
        digest, _, path = line.partition("  ")
        found[path.removeprefix(folder + "/")] = digest
    return found


def copy_section(
    args: argparse.Namespace, tools: Tools, client: docker.DockerClient, image: str, home: Path
) -> dict[str, Any]:
    """Copy the folder in and out with each tool, ``--runs`` times."""
    tree = random_tree(home / "tree")
    want = digests(tree)
    size = sum(s for _, s in TREE_FILES)
    container = client.containers.run(
        image, ["sleep", "3600"], name=f"{PREFIX}-copy", detach=True, network_mode="none"
    )
    ways = ("in", "out", SMALL)
    figures = {(tool, way): Figures(tool, f"copy {way}") for tool in (BERTH, DOCKER) for way in ways}
    note = home / "note.txt"
    note.write_bytes(b"eleven byte")
    try:
        for index in range(args.runs):
            for tool in turns(index):
                progress(f"copy {index + 1}/{args.runs}: {tool} in and out")
                out = home / "out"
                figures[tool, "in"].runs.append(
                    tools.run(tool, "cp", str(tree), f"{container.name}:{INSIDE}")
                )
                figures[tool, "out"].runs.append(
                    tools.run(tool, "cp", f"{container.name}:{INSIDE}", str(out))
                )
                if index == 0:  # each tool's first copy each way
                    if inside_digests(container, INSIDE) != want:
                        raise BenchError(f"{tool}'s copy in differs from the folder (sha256)")
                    if digests(out) != want:
                        raise BenchError(f"{tool}'s copy out differs from the folder (sha256)")
                shutil.rmtree(out)
                figures[tool, SMALL].runs.append(tools.run(tool, "cp", str(note), f"{container.name}:/note"))
                if container.exec_run(["rm", "-rf", INSIDE, "/note"]).exit_code != 0:
                    raise BenchError(f"could not remove {INSIDE} in the container")
    finally:
        container.remove(force=True)
        shutil.rmtree(tree, ignore_errors=True)
    return {
        "bytes": size,
        "files": len(TREE_FILES),
        "sha256_checked": True,
        "figures": [f.as_json() for f in figures.values()],
    }


# --- 2. pull ------------------------------------------------------------------------------------


def layer_tar(name: str, payload: bytes) -> bytes:
    """A tar holding one file ``name`` of ``payload``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def push_layered(client: docker.DockerClient, registry: Registry, base: str, ref: str) -> str:
    """Make an image of :data:`LAYER_SIZES` layers of random bytes on ``base``, push it as
    ``ref``, and leave none of its own layers on the engine; return its id."""
    from engines.registry import push

    image = base
    for index, size in enumerate(LAYER_SIZES):
        container = client.containers.create(image, command=["true"], network_mode="none")
        try:
            container.put_archive("/", layer_tar(f"layer{index}.bin", secrets.token_bytes(size)))
            image = str(container.commit().id)
        finally:
            container.remove(force=True)
    push(client, registry, image, ref)  # untags it: the image and its untagged parents go
    return image


def write_credentials(env: dict[str, str], registry: Registry) -> None:
    """The registry's login in ``$DOCKER_CONFIG/config.json`` as ``docker login`` files it."""
    config = Path(env["DOCKER_CONFIG"])
    config.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))


def image_id(client: docker.DockerClient, ref: str) -> str | None:
    """The id ``ref`` names on the engine, or None."""
    import docker

    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


def pull_section(
    args: argparse.Namespace, tools: Tools, client: docker.DockerClient, image: str, home: Path
) -> dict[str, Any]:
    """Pull the layered image with each tool, ``--runs`` times, removing it before each pull."""
    from engines import EngineError, make_root
    from engines.registry import start_registry, stop_registry

    progress("starting a private registry")
    try:
        registry = start_registry(make_root("bdr-"))
    except EngineError as exc:
        raise BenchError(f"the registry could not start: {exc}") from exc
    figures = {tool: Figures(tool, "pull") for tool in (BERTH, DOCKER)}
    ref = f"{registry.host}/{IMAGE_REF_PATH}"
    try:
        write_credentials(tools.berth_env, registry)
        progress(f"pushing {len(LAYER_SIZES)} layers of random bytes as {ref}")
        pushed = push_layered(client, registry, image, ref)
        if image_id(client, ref) is not None:
            raise BenchError(f"{ref} is still on the engine after the push")
        for index in range(args.runs):
            for tool in turns(index):
                progress(f"pull {index + 1}/{args.runs}: {tool}")
                figures[tool].runs.append(tools.run(tool, "pull", ref))
                got = image_id(client, ref)
                if got != pushed:
                    raise BenchError(f"{tool} pulled {got}, not the pushed {pushed}")
                client.images.remove(ref, force=True)
                if image_id(client, ref) is not None:
                    raise BenchError(f"{ref} could not be removed between pulls")
    finally:
        stop_registry(registry)
    return {
        "layers": len(LAYER_SIZES),
        "layer_bytes": sum(LAYER_SIZES),
        "registry": f"docker-registry {registry.version}",
        "figures": [f.as_json() for f in figures.values()],
    }


# --- 3. disk usage ------------------------------------------------------------------------------


def make_clutter(client: docker.DockerClient, image: str) -> tuple[list[str], list[str]]:
    """:data:`VOLUMES` volumes and :data:`STOPPED` exited containers, the first half of which
    each wrote a file into one of the volumes; (volume names, container ids)."""
    volumes = [str(client.volumes.create(f"{PREFIX}-v{i}").name) for i in range(VOLUMES)]

    def one(index: int) -> str:
        binds = {}
        command = ["true"]
        if index < min(VOLUMES, STOPPED) // 2:
            binds = {volumes[index]: {"bind": "/data", "mode": "rw"}}
            command = ["sh", "-c", "head -c 100000 /dev/urandom > /data/f"]
        container = client.containers.create(
            image, command, name=f"{PREFIX}-c{index}", network_mode="none", volumes=binds
        )
        container.start()
        if container.wait(timeout=60)["StatusCode"] != 0:
            raise BenchError(f"stopped container {index} failed")
        return str(container.id)

    with ThreadPoolExecutor(4) as pool:
        return volumes, list(pool.map(one, range(STOPPED)))


def df_section(
    args: argparse.Namespace, tools: Tools, client: docker.DockerClient, image: str, home: Path
) -> dict[str, Any]:
    """``berth df`` and ``docker system df``, ``--runs`` times each after one untimed warm-up."""
    progress(f"making {VOLUMES} volumes and {STOPPED} stopped containers")
    volumes: list[str] = []
    containers: list[str] = []
    verbs = {BERTH: ("df",), DOCKER: ("system", "df")}
    figures = {tool: Figures(tool, "df") for tool in (BERTH, DOCKER)}
    try:
        volumes, containers = make_clutter(client, image)
        for tool in (BERTH, DOCKER):
            tools.run(tool, *verbs[tool])
        for index in range(args.runs):
            for tool in turns(index):
                figures[tool].runs.append(tools.run(tool, *verbs[tool]))
        progress(f"disk usage x{args.runs}: berth {figures[BERTH].seconds * 1000:.0f} ms")
    finally:
        if not containers:  # a creation failed part-way: whatever is the bench's goes
            containers = [str(c.id) for c in client.containers.list(all=True, filters={"name": PREFIX})]
        remove_containers(client, containers, workers=4)
        for name in volumes or [str(v.name) for v in client.volumes.list(filters={"name": PREFIX})]:
            client.volumes.get(name).remove(force=True)
    return {
        "volumes": VOLUMES,
        "stopped_containers": STOPPED,
        "figures": [f.as_json() for f in figures.values()],
    }


# --- the run ------------------------------------------------------------------------------------


def memory_gib() -> float:
    """The machine's RAM (MemTotal), GiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return math.nan


def preflight() -> dict[str, str]:
    """Check root and the programs needed; return their paths. Raises BenchError saying what's missing."""
    if os.geteuid() != 0:
        raise BenchError("run it as root: it starts its own dockerd")
    berth = Path(sys.executable).parent / "berth"
    if not berth.exists():
        raise BenchError(f"{berth} is missing: pip install -e . in this venv")
    tools = {"berth": str(berth)}
    for name in ("docker", "docker-registry", "htpasswd"):
        found = shutil.which(name)
        if found is None:
            raise BenchError(
                f"{name} is not installed (apt-get install docker.io docker-registry apache2-utils)"
            )
        tools[name] = found
    return tools


SECTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "copy": copy_section,
    "pull": pull_section,
    "df": df_section,
}


def run_bench(args: argparse.Namespace, paths: dict[str, str], home: Path) -> dict[str, Any]:
    """Start the engine, take every measurement, stop everything; return the figures."""
    from engines import EngineError, make_root, remove_root
    from engines.dockerd import start_dockerd, stop_dockerd
    from engines.images import import_docker_busybox

    from backends import __version__

    env = clean_env(home)
    Path(env["DOCKER_CONFIG"]).mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    machine.update(
        ram_gib=memory_gib(),
        load_average_start=load_average(),
        code=code_version(),
        busy_percent_before=wait_quiet(args.wait_quiet),
        berth=__version__,
        docker_cli=subprocess.run(
            [paths["docker"], "--version"], capture_output=True, text=True, env=env, check=False
        ).stdout.strip(),
    )
    report: dict[str, Any] = {"machine": machine, "params": {"runs": args.runs, "parts": args.part}}
    progress("starting a private dockerd")
    root = make_root("bdd-")
    try:
        engine = start_dockerd(root)
    except EngineError as exc:
        remove_root(root)
        raise BenchError(f"dockerd could not start: {exc}") from exc
    machine["dockerd"] = engine.version
    client = sdk_client(engine, pool=8)
    try:
        try:
            image = import_docker_busybox(client)
        except EngineError as exc:
            raise BenchError(f"the busybox image could not be made: {exc}") from exc
        config = make_config(engine, home)
        tools = Tools(
            berth=[paths["berth"], "--config", str(config.path)],
            docker=[paths["docker"]],
            berth_env=env,
            docker_env={**env, "DOCKER_HOST": engine.url},
        )
        for name in args.part or list(SECTIONS):
            report[name] = SECTIONS[name](args, tools, client, image, home)
    finally:
        client.close()
        machine["load_average_end"] = load_average()
        machine["code_end"] = code_version()
        progress("stopping dockerd")
        stop_dockerd(engine)
    return report


# --- the report ---------------------------------------------------------------------------------


def _pair(section: dict[str, Any], what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    found = {(f["tool"], f["what"]): f for f in section["figures"]}
    return found[BERTH, what], found[DOCKER, what]


def _rows(
    section: dict[str, Any], whats: Sequence[str], verbs: tuple[str, str]
) -> list[tuple[str, str, str]]:
    """Per thing done: berth's wall time against the CLI's, then both peak RSS."""
    rows = []
    for what in whats:
        berth, cli = _pair(section, what)
        ratio = berth["median_seconds"] / cli["median_seconds"]
        rows += [
            (
                f"{what}, wall",
                f"{verbs[0]} {fmt(berth['median_seconds'] * 1000, 0)} ms",
                f"{verbs[1]} {fmt(cli['median_seconds'] * 1000, 0)} ms: berth takes {ratio:.2f}x",
            ),
            (
                f"{what}, peak RSS",
                f"{verbs[0]} {fmt(berth['median_peak_rss_mb'], 1)} MiB",
                f"{verbs[1]} {fmt(cli['median_peak_rss_mb'], 1)} MiB",
            ),
        ]
    return rows


def report_text(report: dict[str, Any]) -> str:
    """The figures as text tables."""
    out: IO[str] = io.StringIO()
    m = report["machine"]
    runs = report["params"]["runs"]
    print("berth bench: daily Docker work (issue 17), berth against the docker CLI", file=out)
    print(f"code: {m.get('code', '?')}", file=out)
    if m.get("code_end", m.get("code")) != m.get("code"):
        print(f"WARNING: the code changed during the run; at the end: {m['code_end']}", file=out)
    print(
        f"machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']:.1f} GiB RAM, kernel "
        f"{m['kernel']}, Python {m['python']}\nversions: berth {m['berth']}, dockerd "
        f"{m.get('dockerd', '?')} (private, --bridge=none), CLI {m['docker_cli']}\n"
        f"load average at start {m['load_average_start']}, at end {m.get('load_average_end', '?')}; "
        f"all CPUs {fmt(m.get('busy_percent_before'), 0)} % busy just before the start\n"
        f"each figure: the median of {runs} runs",
        file=out,
    )
    if "copy" in report:
        copy = report["copy"]
        title = f"Copy: a {copy['bytes'] / MB:.0f} MB folder ({copy['files']} files), sha256-checked"
        print_table(
            title, _rows(copy, ["copy in", "copy out", f"copy {SMALL}"], ("berth cp", "docker cp")), out
        )
    if "pull" in report:
        pull = report["pull"]
        title = (
            f"Pull: {pull['layers']} layers, {pull['layer_bytes'] / MB:.0f} MB of random bytes, "
            f"from {pull['registry']} on 127.0.0.1 (removed before each pull)"
        )
        print_table(title, _rows(pull, ["pull"], ("berth pull", "docker pull")), out)
    if "df" in report:
        df = report["df"]
        title = f"Disk usage with {df['volumes']} volumes and {df['stopped_containers']} stopped containers"
        print_table(title, _rows(df, ["df"], ("berth df", "docker system df")), out)
    return out.getvalue()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--runs", type=int, default=5, help="runs of each tool per measurement (5)")
    parser.add_argument(
        "--part", action="append", choices=list(SECTIONS), help="run only this part (repeatable; default all)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="wait up to this many seconds for other work on the machine to stop (default 0)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; print the figures; 0 on success."""
    return run_and_report("bench_daily", parse_args(argv), preflight, run_bench, report_text, "bdh-")


if __name__ == "__main__":
    sys.exit(main())
