"""WASI test programs: tests/wasm/*.c built with Debian's clang + wasi-libc, plus a few in WAT."""

import io
import shutil
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from engines.required import unavailable

SOURCES = Path(__file__).parent / "wasm"

WAT = {
    # Imports a host function berth does not provide: only WASI preview 1 is linked.
    "missing_import": (
        '(module (import "env" "foo" (func)) (memory (export "memory") 1) (func (export "_start")))'
    ),
    # The smallest WASI command: returns from _start at once (the per-task overhead benchmark's).
    "trivial": '(module (memory (export "memory") 1) (func (export "_start")))',
}


def _compile(clang: str, source: Path, out: Path) -> str:
    """Build `source` to `out`; clang's complaint, or "" when it worked."""
    done = subprocess.run(
        [clang, "--target=wasm32-wasi", "-O2", "-o", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return "" if done.returncode == 0 else f"{source.name}: {done.stderr.strip()[-500:]}"


@pytest.fixture(scope="session")
def wasm_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Name -> .wasm path: each tests/wasm/NAME.c compiled once a session, the WAT ones, and
    `invalid` (bytes that are no wasm module).

    Skips when clang cannot build for wasm32-wasi (packages clang lld wasi-libc
    libclang-rt-14-dev-wasm32), and fails instead under CI=true / BERTH_REQUIRE_ENGINES=1.
    """
    clang = shutil.which("clang")
    if clang is None:
        unavailable("clang is not installed (apt install clang lld wasi-libc libclang-rt-14-dev-wasm32)")
    out = tmp_path_factory.mktemp("wasm")
    sources = sorted(SOURCES.glob("*.c"))
    with ThreadPoolExecutor() as pool:
        errors = [e for e in pool.map(lambda s: _compile(clang, s, out / f"{s.stem}.wasm"), sources) if e]
    if errors:
        unavailable(f"clang --target=wasm32-wasi failed (is wasi-libc installed?): {errors[0]}")
    programs = {source.stem: out / f"{source.stem}.wasm" for source in sources}
    for name, text in WAT.items():
        programs[name] = out / f"{name}.wasm"
        programs[name].write_bytes(wasmtime.wat2wasm(text))
    programs["invalid"] = out / "invalid.wasm"
    programs["invalid"].write_bytes(b"\0asm\1\0\0\0\xff not a section")
    return programs


def build_image(client: Any, tag: str, dockerfile: str, **files: bytes) -> None:
    """Build image `tag` in a test dockerd from `dockerfile` and `files` (no registry needed)."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
