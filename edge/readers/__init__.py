"""Physical readers: drivers per reader type feeding ``Site.present`` (edge/readers/hub.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from edge.readers import serial as _serial  # noqa: F401  registers DRIVERS["serial"]
from edge.readers.hub import DRIVERS, Feedback, ReaderDriver, Readers, ReaderState, feedback_for

if TYPE_CHECKING:
    from edge.config import ReaderSection, SiteConfig


def _osdp(config: SiteConfig, rows: Sequence[ReaderSection]) -> Iterable[ReaderDriver]:
    from edge.readers.osdp_bus import drivers  # noqa: PLC0415 - libosdp only where it is used

    return drivers(config, rows)


DRIVERS["osdp"] = _osdp

__all__ = ["DRIVERS", "Feedback", "ReaderDriver", "ReaderState", "Readers", "feedback_for"]
