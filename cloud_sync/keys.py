"""The cloud's key material, kept in files outside its database.

``key_dir/signing.key``: the Ed25519 key that signs every bundle (PEM, mode 0600).
``key_dir/export.key``: 32 random bytes, the AES-256-GCM key that encrypts what the
database must never hold in clear: each site's HMAC secret and the plaintext credential
values kept for re-hashing and export. Both are created on first use. A stolen database
without this directory yields no card number, no PIN and no site secret.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from cloud_sync.bundle import Signer
from doorkeep.errors import ConfigError

_NONCE = 12


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


@dataclass(frozen=True, slots=True)
class CloudKeys:
    """The signing key and the at-rest encryption key of one cloud installation."""

    signer: Signer
    export_key: bytes

    def __post_init__(self) -> None:
        if len(self.export_key) != 32:
            raise ValueError(f"export key must be 32 bytes, got {len(self.export_key)}")

    @classmethod
    def load(cls, key_dir: str | os.PathLike[str]) -> CloudKeys:
        """Read the keys in ``key_dir``, creating any that are missing."""
        root = Path(key_dir)
        signing = root / "signing.key"
        export = root / "export.key"
        if not signing.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
            )
            _write_private(signing, pem)
        if not export.exists():
            _write_private(export, secrets.token_bytes(32))
        try:
            key = load_pem_private_key(signing.read_bytes(), password=None)
        except ValueError as err:
            raise ConfigError(f"{signing}: not a PEM private key; restore it or remove it") from err
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{signing}: not an Ed25519 key")
        return cls(Signer(key), export.read_bytes())

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """AES-GCM encrypt ``plaintext``, bound to ``context`` (e.g. the site id)."""
        nonce = secrets.token_bytes(_NONCE)
        return nonce + AESGCM(self.export_key).encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        """Decrypt what :meth:`seal` made for the same ``context``."""
        return AESGCM(self.export_key).decrypt(sealed[:_NONCE], sealed[_NONCE:], context.encode())
