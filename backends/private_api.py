"""The backends' one home for a dependency's undocumented API, checked against the exact release it
was written for (pyproject.toml pins it; tests/test_private_api.py fails when the installed one is
another).

wasmtime: its Python API has no way to give a WASI module its stdin as bytes, nor to call back into
Python when a store's epoch deadline is reached (only to trap or yield then), and its custom output
(`WasiConfig.stdout_custom`) installs a finalizer that wasmtime calls from one of its own threads
some time after the store is gone: arriving while the interpreter exits, that aborts the process
(status 134). So backends/wasm/runtime.py calls the C API for these through `wasmtime._ffi`, here.

aiohttp: none.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from importlib import metadata

import wasmtime
from wasmtime import _ffi as ffi

WASMTIME = "51.0.0"
"""The wasmtime release the C API calls below were written against."""

DeadlineCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
"""The C type of a store's epoch deadline callback (`epoch_deadline_callback` makes one)."""
OutputCallback = ctypes.CFUNCTYPE(
    ctypes.c_ssize_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte), ctypes.c_size_t
)
"""The C type of a WASI custom output (`output_callback` makes one)."""

# No finalizers: see the module docstring. Whoever registers a callback's data removes it itself.
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()


def wasmtime_version() -> str:
    """The wasmtime release installed here."""
    return metadata.version("wasmtime")


def epoch_deadline_callback(expired: Callable[[int], bool]) -> object:
    """A deadline callback that asks `expired(data)` at each deadline: True stops the store's code
    with a trap ("stopped by berth"), False sets the next deadline one tick on. Keep it referenced
    for as long as any store may call it."""

    def deadline(_context: object, data: int | None, delta: ctypes.Array[ctypes.c_uint64], _: object) -> int:
        if expired(data or 0):
            error = ffi.wasmtime_error_new(b"stopped by berth")
            return ctypes.cast(error, ctypes.c_void_p).value or 0
        delta[0] = 1
        # `kind` is left as wasmtime passed it: WASMTIME_UPDATE_DEADLINE_CONTINUE (0).
        return 0

    return DeadlineCallback(deadline)


def set_epoch_deadline_callback(store: wasmtime.Store, callback: object, data: int) -> None:
    """Have `store` call `callback` (from `epoch_deadline_callback`) with `data` (not 0: that
    arrives as NULL) at each epoch deadline."""
    ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), callback, data, _NO_FINALIZER)


def output_callback(write: Callable[[int, bytes], int]) -> object:
    """A custom output that hands each write to `write(data, chunk)`, which answers the bytes taken
    or a negative errno. Keep it referenced for as long as any module may write to it."""

    def call(data: int | None, buf: ctypes._Pointer[ctypes.c_ubyte], size: int) -> int:
        return write(data or 0, ctypes.string_at(buf, size))

    return OutputCallback(call)


def set_outputs(wasi: wasmtime.WasiConfig, stdout: object, stderr: object, data: int) -> None:
    """Send the module's stdout and stderr to custom outputs (from `output_callback`), with `data`."""
    ffi.wasi_config_set_stdout_custom(wasi.ptr(), stdout, data, _NO_FINALIZER)
    ffi.wasi_config_set_stderr_custom(wasi.ptr(), stderr, data, _NO_FINALIZER)


def set_stdin_bytes(wasi: wasmtime.WasiConfig, data: bytes) -> None:
    """Give the module `data` as its whole stdin."""
    buffer = ctypes.create_string_buffer(data, len(data))
    vec = ffi.wasm_byte_vec_t()
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), ctypes.cast(buffer, ctypes.POINTER(ctypes.c_ubyte)))
    ffi.wasi_config_set_stdin_bytes(wasi.ptr(), ctypes.byref(vec))  # takes the copy's ownership
