"""Writing site.toml for the installer UI.

:func:`render_site_toml` turns a config dict into TOML; :func:`write_site_toml`
validates that text by parsing it and then replaces the file atomically, keeping the
previous version as ``site.toml.bak``.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from edge.config.keys import ARRAYS, SINGLE
from edge.config.sections import BoardTypes, SiteConfig, SiteConfigError
from edge.config.validate import parse_site_config

#: The order tables are written in, so a rendered file reads top-down like the docs.
_TABLE_ORDER: Final = (*SINGLE, *ARRAYS)
_BARE_KEY: Final = re.compile(r"^[A-Za-z0-9_-]+$")


def render_site_toml(cfg_dict: Mapping[str, Any]) -> str:
    """TOML text for a site config dict (the shape of ``SiteConfig.raw``).

    Tables come in a fixed order (``[site]``, ``[web]``, ..., ``[[output]]``); keys keep
    their order; nested tables (``options``) are written inline. Comments of an edited
    file are not kept: the installer UI owns the file it writes.
    """
    if not isinstance(cfg_dict, Mapping):
        raise TypeError(f"site config must be a dict, got {type(cfg_dict).__name__}")
    order = [t for t in _TABLE_ORDER if t in cfg_dict]
    order += [t for t in cfg_dict if t not in _TABLE_ORDER]
    chunks: list[str] = []
    for name in order:
        value = cfg_dict[name]
        if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
            chunks.extend(_render_table(f"[[{_key(name)}]]", item) for item in value)
        elif isinstance(value, Mapping):
            chunks.append(_render_table(f"[{_key(name)}]", value))
        else:
            chunks.insert(0, f"{_key(name)} = {_value(value)}\n")
    return "\n".join(chunks)


def _render_table(header: str, table: Mapping[str, Any]) -> str:
    lines = [header]
    lines.extend(f"{_key(k)} = {_value(v)}" for k, v in table.items() if v is not None)
    return "\n".join(lines) + "\n"


def _key(k: Any) -> str:
    k = str(k)
    return k if _BARE_KEY.match(k) else _string(k)


def _string(s: str) -> str:
    # A JSON string is a valid TOML basic string, except that TOML also forbids DEL.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, os.PathLike):
        return _string(os.fspath(v))
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        inner = ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None)
        return "{ " + inner + " }"
    raise TypeError(f"cannot write {v!r} ({type(v).__name__}) to TOML")


def write_site_toml(
    path: str | os.PathLike[str],
    cfg_dict: Mapping[str, Any],
    *,
    board_types: BoardTypes | None = None,
) -> SiteConfig:
    """Validate ``cfg_dict`` and write it to ``path`` atomically; return the new config.

    The rendered text is parsed and validated first (SiteConfigError lists every
    problem, and the file is not touched). The previous file is kept as
    ``<name>.bak``; the new one replaces it with one rename, so a crash leaves either
    the old file or the new one, never half of one.
    """
    p = Path(path)
    try:
        text = render_site_toml(cfg_dict)
    except (TypeError, ValueError) as err:  # a null or an object TOML cannot hold
        raise SiteConfigError(p, [f"{p}: cannot be written as TOML: {err}"]) from err
    config = parse_site_config(text, p, board_types=board_types)
    p.parent.mkdir(parents=True, exist_ok=True)
    mode = p.stat().st_mode & 0o777 if p.exists() else 0o640
    if p.exists():
        _atomic_write(p.with_name(p.name + ".bak"), p.read_bytes(), mode)
    _atomic_write(p, text.encode("utf-8"), mode)
    return config


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself must reach the disk too, or a power cut could undo it.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
