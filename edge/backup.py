"""``doorkeep backup`` / ``restore``: one file that brings a gateway back (docs/operations.md).

A backup is a gzipped tar: ``manifest.json`` (format, site id, doorkeep and schema
version, time, the SHA-256 of every file), ``site.toml``, and ``data/`` — the databases
copied with SQLite's online backup API from a read-only connection (never a file copy of
a live database: recent commits live in the ``-wal``), the site secret, the TLS
certificate and every other key file. With a passphrase the whole archive is sealed with
AES-256-GCM under a key derived with scrypt; the header names the format, nothing else.

The daemon may run meanwhile: the backup reads a consistent snapshot of each database
and the daemon goes on writing. Restore writes into a directory with no site in it (or,
when told, over one), refuses a backup of another site unless told, checks every file's
hash before anything is moved into place, and moves the files in last.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import sqlite3
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from doorkeep import __version__
from doorkeep.errors import DoorkeepError
from edge.store import SCHEMA_VERSION
from edge.store._db import open_read_only

FORMAT = "doorkeep.backup/1"
MAGIC = b"DOORKEEP-BACKUP-AESGCM-1\n"
SCRYPT_N = 2**15  # ~0.1 s here: a guessed passphrase costs that much each
_SALT, _NONCE = 16, 12
#: Files of the data directory a backup leaves out: SQLite's journals (the databases are
#: copied through the backup API instead) and half-written files.
_SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".partial")


class BackupError(DoorkeepError):
    """A backup cannot be made or restored; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Restored:
    """What ``restore`` put in place."""

    site_id: str
    site_toml: Path
    files: int


def _key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=8, p=1).derive(passphrase.encode())


def _seal(data: bytes, passphrase: str) -> bytes:
    salt, nonce = secrets.token_bytes(_SALT), secrets.token_bytes(_NONCE)
    return MAGIC + salt + nonce + AESGCM(_key(passphrase, salt)).encrypt(nonce, data, MAGIC)


def _open_sealed(blob: bytes, passphrase: str | None) -> bytes:
    if not blob.startswith(MAGIC):
        return blob
    if passphrase is None:
        raise BackupError("the backup is encrypted: give its passphrase (--passphrase-file)")
    body = blob[len(MAGIC) :]
    salt, nonce, sealed = body[:_SALT], body[_SALT : _SALT + _NONCE], body[_SALT + _NONCE :]
    try:
        return AESGCM(_key(passphrase, salt)).decrypt(nonce, sealed, MAGIC)
    except InvalidTag as err:
        raise BackupError("wrong passphrase, or the backup file is damaged") from err


def _copy_database(src: Path, dest: Path) -> None:
    source = open_read_only(src)
    try:
        out = sqlite3.connect(dest)
        try:
            source.backup(out)
            out.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            out.close()
    finally:
        source.close()


def _site_id(site_toml: Path) -> str:
    try:
        return str(tomllib.loads(site_toml.read_text(encoding="utf-8"))["site"]["id"])
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as err:
        raise BackupError(f"{site_toml}: no readable [site] id ({err})") from err


def make_backup(
    site_toml: Path, data_dir: Path, dest: Path, *, passphrase: str | None
) -> dict[str, Any]:
    """Write the backup of the site at ``site_toml`` to ``dest``; returns its manifest.

    Blocking (SQLite backup, hashing, compression): the CLI calls it, not the event loop.
    """
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir}: the site's data directory does not exist")
    files: dict[str, bytes] = {"site.toml": site_toml.read_bytes()}
    with tempfile.TemporaryDirectory(prefix="doorkeep-backup-") as tmp:
        for path in sorted(data_dir.rglob("*")):
            if not path.is_file() or path.name.endswith(_SKIP_SUFFIXES):
                continue
            name = "data/" + path.relative_to(data_dir).as_posix()
            if path.suffix == ".db":
                copy = Path(tmp) / path.name
                _copy_database(path, copy)
                files[name] = copy.read_bytes()
            else:
                files[name] = path.read_bytes()
    manifest = {
        "format": FORMAT,
        "site_id": _site_id(site_toml),
        "doorkeep": __version__,
        "schema": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "encrypted": passphrase is not None,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in {
            "manifest.json": json.dumps(manifest, indent=2).encode(),
            **files,
        }.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    if passphrase is not None:
        blob = _seal(blob, passphrase)
    partial = dest.with_name(dest.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data
    with os.fdopen(fd, "wb") as out:
        out.write(blob)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(dest)
    return manifest


def read_backup(path: Path, *, passphrase: str | None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and files of a backup, every hash checked."""
    try:
        blob = _open_sealed(path.read_bytes(), passphrase)
    except OSError as err:
        raise BackupError(f"{path}: cannot be read: {err.strerror}") from err
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            raw = {n: tar.extractfile(m).read() for n, m in members.items()}  # type: ignore[union-attr]
    except (tarfile.TarError, EOFError, OSError) as err:
        raise BackupError(f"{path}: not a doorkeep backup ({err})") from err
    try:
        manifest = json.loads(raw.pop("manifest.json"))
    except (KeyError, ValueError) as err:
        raise BackupError(f"{path}: not a doorkeep backup (no manifest)") from err
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"{path}: format {manifest.get('format')!r}, this doorkeep reads {FORMAT}"
        )
    if int(manifest.get("schema", 0)) > SCHEMA_VERSION:
        raise BackupError(
            f"{path}: made by doorkeep {manifest.get('doorkeep')} (store schema "
            f"{manifest['schema']}); this doorkeep {__version__} knows schema {SCHEMA_VERSION}:"
            " upgrade doorkeep first"
        )
    expected: dict[str, str] = manifest.get("files", {})
    for name, digest in expected.items():
        if name not in raw or hashlib.sha256(raw[name]).hexdigest() != digest:
            raise BackupError(f"{path}: {name} is missing or damaged; nothing was restored")
    for name in raw:
        unsafe = name.startswith("/") or ".." in Path(name).parts
        if name not in expected or unsafe:
            raise BackupError(f"{path}: unexpected file {name!r}; nothing was restored")
    return manifest, raw


def restore_backup(
    path: Path,
    target: Path,
    *,
    passphrase: str | None,
    other_site: bool = False,
    replace: bool = False,
) -> Restored:
    """Put the backup at ``path`` into ``target`` (the directory of site.toml)."""
    manifest, files = read_backup(path, passphrase=passphrase)
    site_id = str(manifest["site_id"])
    site_toml = target / "site.toml"
    if site_toml.exists():
        present = _site_id(site_toml)
        if present != site_id and not other_site:
            raise BackupError(
                f"the backup is of site {site_id!r}, {site_toml} is site {present!r}; "
                "restore it elsewhere, or pass --other-site to replace that site"
            )
        if not replace and not other_site:
            raise BackupError(
                f"{site_toml} exists: restore onto a fresh gateway, or pass --replace "
                "(stop the daemon first)"
            )
    data_rel = tomllib.loads(files["site.toml"].decode("utf-8"))["site"].get("data_dir", "data")
    data_dir = target / data_rel  # an absolute data_dir stays absolute
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=target))
    try:
        for name, data in files.items():
            dest = staging / name
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        if data_dir.exists():  # kept, not deleted: a restore can be undone by hand
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            shutil.move(data_dir, data_dir.with_name(f"{data_dir.name}.before-restore-{stamp}"))
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staging / "data", data_dir)
        data_dir.chmod(0o700)
        shutil.move(staging / "site.toml", site_toml)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Restored(site_id, site_toml, len(files))
