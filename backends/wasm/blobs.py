"""Modules kept by content: the `sha256:<hex>` ref of some bytes and the file that holds them.

Apart from the module store so that processes which only pass modules on (the pool's parent, a
provider) can keep one without loading wasmtime.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from backends.errors import Invalid
from backends.paths import open_private, private_dir

REF_PREFIX = "sha256:"


def ref_of(data: bytes) -> str:
    """The content address of a module, `sha256:<hex>`."""
    return REF_PREFIX + hashlib.sha256(data).hexdigest()


def hex_of(ref: str) -> str:
    """The hex digest in a ref; Invalid when `ref` is not one."""
    digest = ref.removeprefix(REF_PREFIX)
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise Invalid(f"{ref!r} is not a module ref.", "A ref reads sha256: and 64 hex digits.")
    return digest


def blob_path(folder: Path, ref: str) -> Path:
    """Where the module `ref` is (or would be) kept in `folder`."""
    return folder / f"{hex_of(ref)}.wasm"


def put_blob(folder: Path, data: bytes) -> str:
    """Keep `data` in `folder` (once per content) and return its ref."""
    ref = ref_of(data)
    path = blob_path(folder, ref)
    if not path.exists():
        write_atomic(path, data)
    return ref


def write_atomic(path: Path, data: bytes | bytearray) -> None:
    """Write via a temporary file and rename, so readers see the whole file or none (0600: a
    client's module is its own business) in a 0700 folder."""
    private_dir(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with os.fdopen(open_private(temp, os.O_WRONLY | os.O_TRUNC), "wb") as out:
        out.write(data)
    os.replace(temp, path)
