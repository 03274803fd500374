"""The module store: wasm modules kept by sha256, their compiled code cached on disk and in memory.

Compiling a module takes ~200 ms; loading its serialized artifact ~1.6 ms; reusing the loaded
module ~0.1 ms. So a module is compiled once per wasmtime version and engine config, its artifact
written next to the modules (keyed by both, so a stale one is never loaded, and checksummed, so a
damaged one is rebuilt), and the loaded module kept in memory for the next task.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from backends import paths
from backends.errors import Invalid, NotFound
from backends.wasm.blobs import REF_PREFIX, blob_path, hex_of, put_blob, write_atomic

WASMTIME_VERSION = importlib.metadata.version("wasmtime")
"""The wasmtime-py in use: part of every compiled artifact's key."""

ENGINE_OPTIONS: dict[str, bool] = {"consume_fuel": True, "epoch_interruption": True}
"""The engine config every task runs under: fuel metering and epoch interruption (wall time,
cancellation), the `wasmtime.Config` attributes set to these values."""

WASM_MAGIC = b"\0asm"
MEMORY_CACHE = 64
"""Loaded modules kept in memory (each holds its machine code); the least recently used go first."""
MAX_PATHS = 4096
"""File paths remembered with their module's ref (forgotten all at once past this many)."""

_engines: dict[str, wasmtime.Engine] = {}
_engines_lock = threading.Lock()


def engine_key(options: dict[str, bool], version: str = WASMTIME_VERSION) -> str:
    """The name of an engine config: wasmtime version plus a hash of its options."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]
    return f"wasmtime-{version}-{digest}"


def shared_engine(options: dict[str, bool] = ENGINE_OPTIONS) -> wasmtime.Engine:
    """The one `wasmtime.Engine` for `options` in this process (modules only run in their own)."""
    key = engine_key(options)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            config = wasmtime.Config()
            for name, value in options.items():
                setattr(config, name, value)
            engine = _engines[key] = wasmtime.Engine(config)
        return engine


def default_root() -> Path:
    """Where the module store lives unless told otherwise: `modules/` in berth's data folder."""
    return paths.data_dir() / "modules"


class InvalidModule(Invalid):
    """Bytes that are not a wasm module, or a module wasmtime refuses to compile."""


@dataclass(frozen=True)
class Loaded:
    """A compiled module ready to run: its sha256 ref, the module and its imports pre-linked.

    `pre` is None when an import is missing; `missing` then names it (`env::foo`).
    """

    ref: str
    module: wasmtime.Module
    pre: wasmtime.InstancePre | None
    missing: str = ""


class ModuleStore:
    """Modules by sha256 under `root/blobs`, compiled artifacts under `root/compiled/<engine key>`.

    Thread-safe. Counters: `compiles` (modules compiled from wasm), `disk_loads` (artifacts
    deserialized from the cache dir), `memory_hits` (loaded modules reused), `cache_hits` (the
    last two together: every time compilation was skipped) and `rebuilds` (damaged artifacts
    replaced). `version` is the wasmtime version in the key; only tests change it.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        options: dict[str, bool] = ENGINE_OPTIONS,
        version: str = WASMTIME_VERSION,
    ) -> None:
        self.root = root if root is not None else default_root()
        self.engine = shared_engine(options)
        self.key = engine_key(options, version)
        self.blobs = self.root / "blobs"
        self.compiled = self.root / "compiled" / self.key
        self.compiles = 0
        self.disk_loads = 0
        self.memory_hits = 0
        self.rebuilds = 0
        self._linker = wasmtime.Linker(self.engine)
        self._linker.define_wasi()
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        # (path, mtime_ns, size) -> ref: a file run again is not read and hashed again.
        self._paths: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    @property
    def cache_hits(self) -> int:
        """How many times a module was used without compiling it (from memory or from disk)."""
        return self.memory_hits + self.disk_loads

    def put(self, data: bytes) -> str:
        """Keep `data` (a wasm module) and return its ref, `sha256:<hex>`."""
        return put_blob(self.blobs, data)

    def path(self, ref: str) -> Path:
        """Where the module `ref` is (or would be) kept."""
        return blob_path(self.blobs, ref)

    def get(self, ref: str) -> bytes:
        """The bytes of the stored module `ref`; NotFound if it is not in the store."""
        try:
            return self.path(ref).read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"No module {ref} in the module store {self.blobs}.", "Run it once from its file."
            ) from None

    def resolve(self, module: str | bytes) -> tuple[str, bytes]:
        """The (ref, bytes) of a module given as raw bytes, a stored `sha256:` ref or a file path.

        Bytes and files are kept in the store, so their ref runs them again later.
        """
        if not isinstance(module, str):
            return self.put(bytes(module)), bytes(module)
        if module.startswith(REF_PREFIX):
            return module, self.get(module)
        try:
            data = Path(module).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"No module file {module}.", "Check the path.") from None
        except IsADirectoryError:
            raise Invalid(f"{module} is a directory, not a wasm module.", "Give the .wasm file.") from None
        return self.put(data), data

    def load(self, module: str | bytes) -> Loaded:
        """The compiled module for `module` (as `resolve` takes it): from memory, disk, or compiled.

        Raises InvalidModule for bytes wasmtime cannot compile.
        """
        seen = self._seen_path(module)
        if isinstance(module, str) and module.startswith(REF_PREFIX):
            ref: str | None = module
        else:
            ref = self._paths.get(seen) if seen else None
        loaded = self._memory(ref) if ref else None
        if loaded is not None:
            return loaded
        ref, data = self.resolve(module)
        if seen is not None:
            if len(self._paths) >= MAX_PATHS:
                self._paths.clear()
            self._paths[seen] = ref
        loaded = self._memory(ref)
        if loaded is not None:
            return loaded
        compiled = self._from_disk(ref)
        if compiled is None:
            compiled = self._compile(ref, data)
        loaded = self._link(ref, compiled)
        with self._lock:
            self._loaded[ref] = loaded
            while len(self._loaded) > MEMORY_CACHE:
                self._loaded.popitem(last=False)
        return loaded

    def artifact(self, ref: str) -> Path:
        """Where the compiled code of `ref` is cached for this wasmtime version and engine config."""
        return self.compiled / f"{hex_of(ref)}.cwasm"

    def _memory(self, ref: str) -> Loaded | None:
        with self._lock:
            loaded = self._loaded.get(ref)
            if loaded is not None:
                self._loaded.move_to_end(ref)
                self.memory_hits += 1
            return loaded

    @staticmethod
    def _seen_path(module: str | bytes) -> tuple[str, int, int] | None:
        """A file path's identity as last written (path, mtime, size); None for bytes, refs, no file."""
        if not isinstance(module, str) or module.startswith(REF_PREFIX):
            return None
        try:
            stat = os.stat(module)
        except OSError:
            return None  # resolve() says what is wrong
        return module, stat.st_mtime_ns, stat.st_size

    def _from_disk(self, ref: str) -> wasmtime.Module | None:
        """The cached artifact of `ref`, or None when there is none or it is damaged (then removed)."""
        path = self.artifact(ref)
        try:
            blob = path.read_bytes()
            expected = _checksum_path(path).read_text().strip()
        except FileNotFoundError:
            return None
        # Deserializing trusts its input, so a file that is not what was written is never handed
        # to wasmtime; wasmtime itself refuses an artifact from another version or config.
        if hashlib.sha256(blob).hexdigest() == expected:
            try:
                module = wasmtime.Module.deserialize(self.engine, blob)
            except wasmtime.WasmtimeError:
                pass
            else:
                with self._lock:
                    self.disk_loads += 1
                return module
        with self._lock:
            self.rebuilds += 1
        path.unlink(missing_ok=True)
        return None

    def _compile(self, ref: str, data: bytes) -> wasmtime.Module:
        if not data.startswith(WASM_MAGIC):
            raise InvalidModule(
                "not a wasm module: it does not begin with the wasm magic number (\\0asm)",
                "Give a .wasm file compiled for WASI preview 1 (wasm32-wasi).",
            )
        try:
            module = wasmtime.Module(self.engine, data)
        except wasmtime.WasmtimeError as exc:
            raise InvalidModule(
                f"not a wasm module: {_first_cause(str(exc))}",
                "Rebuild it for WASI preview 1 (wasm32-wasi).",
            ) from None
        with self._lock:
            self.compiles += 1
        blob = module.serialize()
        path = self.artifact(ref)
        write_atomic(path, blob)
        write_atomic(_checksum_path(path), hashlib.sha256(blob).hexdigest().encode())
        return module

    def _link(self, ref: str, module: wasmtime.Module) -> Loaded:
        try:
            pre = self._linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            text = str(exc)
            if "unknown import" in text:
                return Loaded(ref, module, None, text.split("`")[1] if "`" in text else text)
            raise InvalidModule(f"not a runnable wasm module: {_first_cause(text)}") from None
        return Loaded(ref, module, pre)


def _checksum_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".sha256")


def _first_cause(text: str) -> str:
    """wasmtime's innermost cause (`malformed section id (at offset 0x8)`), without backtraces."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else "unknown error"
