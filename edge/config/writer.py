"""Writing site.toml for the installer UI.

:func:`render_site_toml` turns a config dict into TOML; :func:`write_site_toml`
validates that text by parsing it and then replaces the file atomically, keeping the
previous version as ``site.toml.bak``. When the file exists, the change is applied to it
with tomlkit instead (:func:`update_site_toml`), so the installer's comments and layout
stay: a table that is kept (``[web]``, or the ``[[door]]`` with the same id) keeps its
comments and key order, changed values change in place, and only what was removed goes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

from edge.config.keys import ARRAYS, SINGLE
from edge.config.sections import BoardTypes, SiteConfig, SiteConfigError
from edge.config.validate import parse_site_config

#: The order tables are written in, so a rendered file reads top-down like the docs.
_TABLE_ORDER: Final = (*SINGLE, *ARRAYS)
_BARE_KEY: Final = re.compile(r"^[A-Za-z0-9_-]+$")


def render_site_toml(cfg_dict: Mapping[str, Any]) -> str:
    """TOML text for a site config dict (the shape of ``SiteConfig.raw``).

    Tables come in a fixed order (``[site]``, ``[web]``, ..., ``[[output]]``); keys keep
    their order; nested tables (``options``) are written inline. This is the text of a
    new file; an existing one is changed in place by :func:`update_site_toml`.
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


def update_site_toml(text: str, cfg_dict: Mapping[str, Any]) -> str:
    """``text`` (an existing site.toml) changed to say what ``cfg_dict`` says, keeping
    its comments and layout wherever a table is kept (tables of arrays match by ``id``)."""
    doc = tomlkit.parse(text)
    for name in [k for k in doc if k not in cfg_dict]:
        del doc[name]
    for name, value in cfg_dict.items():
        old = doc.get(name)
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            doc[name] = _merged_aot(old if isinstance(old, AoT) else None, value)
        elif isinstance(value, Mapping) and isinstance(old, Table):
            _update_table(old, value)
        elif isinstance(value, Mapping):  # a new table: ``[cloud]``, not an inline one
            table = tomlkit.table()
            _update_table(table, value)
            doc[name] = table
        else:
            doc[name] = _item(value)
    return tomlkit.dumps(doc)


def _merged_aot(old: AoT | None, items: list[Mapping[str, Any]]) -> AoT:
    kept = {t.get("id"): t for t in (old.body if old is not None else []) if "id" in t}
    out = tomlkit.aot()
    for item in items:
        table = kept.pop(item.get("id"), None)
        if table is None:
            table = tomlkit.table()
        _update_table(table, item)
        out.append(table)
    return out


def _update_table(table: Table, values: Mapping[str, Any]) -> None:
    for key in [k for k in table if values.get(k) is None]:
        del table[key]
    for key, value in values.items():
        if value is not None and (key not in table or table[key] != value):
            table[key] = _item(value)


def _item(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        inline = tomlkit.inline_table()
        inline.update({k: _item(v) for k, v in value.items() if v is not None})
        return inline
    if isinstance(value, list | tuple):
        return [_item(v) for v in value]
    return value


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
        text = render_site_toml(cfg_dict)  # checks that everything can be TOML
        # a file tomlkit cannot read is rewritten whole (a .bak stays)
        with contextlib.suppress(TOMLKitError, UnicodeDecodeError):
            if p.exists():
                text = update_site_toml(p.read_text(encoding="utf-8"), cfg_dict)
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
