"""Physical readers: drivers per reader type feeding ``Site.present`` (edge/readers/hub.py)."""

from edge.readers import serial as _serial  # noqa: F401  registers DRIVERS["serial"]
from edge.readers.hub import DRIVERS, Feedback, ReaderDriver, Readers, ReaderState, feedback_for

__all__ = ["DRIVERS", "Feedback", "ReaderDriver", "ReaderState", "Readers", "feedback_for"]
