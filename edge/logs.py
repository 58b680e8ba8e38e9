"""How the daemon and the CLI log: levels, text or JSON lines, journald-aware.

Text is the default; ``--log-format json`` (or ``$DOORKEEP_LOG_FORMAT=json``) writes one
JSON object per line for log shippers. Under systemd (``$JOURNAL_STREAM`` is set) the
text form leaves the time out, since journald stamps every line itself. Links that can
break log once when they break and once when they recover (doorkeep.link), so the level
of a quiet, healthy site is INFO with a handful of lines a day.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
#: Attributes every LogRecord has; anything else was passed in ``extra=`` and is kept.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC ISO), level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def setup(*, verbose: bool = False, fmt: str | None = None) -> None:
    """Configure the root logger once for a command (idempotent: replaces our handler)."""
    chosen = (fmt or os.environ.get("DOORKEEP_LOG_FORMAT") or "text").lower()
    if chosen not in FORMATS:
        raise ValueError(f"log format {chosen!r}: use one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    if chosen == "json":
        handler.setFormatter(JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "doorkeep", False)]:
        root.removeHandler(old)
    handler.doorkeep = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("pymodbus").setLevel(logging.WARNING)  # its INFO lines are per-request
