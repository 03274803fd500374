"""Provider identities: Ed25519 key pairs, their fingerprints, signing and checking a challenge.

A provider's key is kept as an OpenSSH private key file (0600) in berth's data folder, so
`ssh-keygen -lf` shows the same fingerprint berth shows (`SHA256:` + unpadded base64 of the
SHA-256 of the OpenSSH public key blob). `--key FILE` may name any unencrypted OpenSSH or PEM
Ed25519 key, an existing `~/.ssh/id_ed25519` included.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from backends import paths
from backends.errors import Invalid


def default_key_file() -> Path:
    """Where a provider keeps its key when `--key` is not given."""
    return paths.data_dir() / "provider_ed25519"


def load_or_create(path: Path | None = None) -> Ed25519PrivateKey:
    """The private key in `path` (default: `default_key_file()`), made there (0600) if missing.

    Invalid names the file when it holds something other than an unencrypted Ed25519 key.
    """
    path = path or default_key_file()
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        paths.private_dir(path.parent, tighten=False)  # berth's data folder, or one the user named
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return key
    data = path.read_bytes()
    loaded: object
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            loaded = serialization.load_ssh_private_key(data, password=None)
        else:
            loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise Invalid(f"{path} is not an unencrypted private key: {exc}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise Invalid(f"{path} holds a {type(loaded).__name__}, not an Ed25519 key.")
    return loaded


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public: bytes) -> str:
    """The OpenSSH-style fingerprint of a raw Ed25519 public key: `SHA256:…`."""
    kind = b"ssh-ed25519"
    blob = struct.pack(">I", len(kind)) + kind + struct.pack(">I", len(public)) + public
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    """The signature of `message`."""
    return key.sign(message)


def verify(public: bytes, signature: bytes, message: bytes) -> bool:
    """True when `signature` is the holder of `public`'s signature of `message`."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
