"""The Secure Channel base keys (SCBK) of a site's OSDP readers: one per reader.

Each key is 16 random bytes, made the first time the reader's bus starts and kept in
``data_dir/keys/osdp/<reader>.key`` (hex, mode 0600, its folder 0700), so a backup
carries it and nothing else can read it. The control panel only ever talks to a reader
with its own key; the default key SCBK-D is used only inside an installer's provisioning
window (edge/readers/osdp.py), to hand the reader this key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_DIR = Path("keys") / "osdp"
KEY_BYTES = 16


class KeyFileError(ValueError):
    """A key file exists but is not a key: never replaced silently (the reader has it)."""


class OsdpKeys:
    """Load or make each reader's key in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / KEY_DIR

    def path(self, reader_id: str) -> Path:
        return self.dir / f"{reader_id}.key"

    def key(self, reader_id: str) -> bytes:
        """The reader's key, made (random, 0600) when it has none yet."""
        path = self.path(reader_id)
        try:
            return self._read(path)
        except FileNotFoundError:
            pass
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made meanwhile by another process: that one counts
            return self._read(path)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
        return key

    @staticmethod
    def _read(path: Path) -> bytes:
        text = path.read_text().strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise KeyFileError(
                f"{path} is not a {KEY_BYTES}-byte hex key; restore it from a backup, or "
                "delete it and provision the reader again (doorkeep reader provision)"
            )
        return key
