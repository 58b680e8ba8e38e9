"""site.toml: the hardware and services of one site, parsed and validated.

The file is read with :mod:`tomllib`, checked against a table of known keys per table and
then cross-checked (references between tables, uniqueness, simulation-only values). Every
problem is collected, so an installer sees the whole list at once, one per line, each
naming the file, the table (``[[door]] "gate"``) and the key, with what to change.

Writing goes the other way for the installer UI: :func:`render_site_toml` turns a config
dict into TOML, :func:`write_site_toml` validates that text by parsing it and then
replaces the file atomically, keeping the previous version as ``site.toml.bak``.

The package: ``sections`` (the frozen section types and ``SiteConfig``), ``keys`` (the
key tables), ``validate`` (load, parse, cross-check), ``writer`` (render and write
atomically) and ``defaults`` (the file ``doorkeep init`` writes). Import from here.

The full reference of the keys is docs/site-config.md.
"""

from edge.config.defaults import default_site_dict
from edge.config.keys import BOARD_KEYS
from edge.config.sections import (
    CREDENTIAL_METHODS,
    BoardSection,
    BusSection,
    CloudSection,
    DoorSection,
    InputRef,
    InputSection,
    MqttSection,
    OutputSection,
    ReaderSection,
    RelayRef,
    SiteConfig,
    SiteConfigError,
    SiteSection,
    WebSection,
)
from edge.config.validate import load_site_config, parse_site_config
from edge.config.writer import render_site_toml, write_site_toml

__all__ = [
    "BOARD_KEYS",
    "CREDENTIAL_METHODS",
    "BoardSection",
    "BusSection",
    "CloudSection",
    "DoorSection",
    "InputRef",
    "InputSection",
    "MqttSection",
    "OutputSection",
    "ReaderSection",
    "RelayRef",
    "SiteConfig",
    "SiteConfigError",
    "SiteSection",
    "WebSection",
    "default_site_dict",
    "load_site_config",
    "parse_site_config",
    "render_site_toml",
    "write_site_toml",
]
