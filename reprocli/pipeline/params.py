"""Parameter values a stage reads: dotted keys in YAML, JSON or TOML files."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from reprocli.core import folders, yamlio
from reprocli.errors import InvalidFileError

MISSING = object()
MAX_BYTES = 16 << 20
"""The largest parameters or metrics file read (YAML ones stop at yamlio's 1 MiB)."""


def read(root: Path, name: str) -> dict[str, Any]:
    """The whole parameters file `name` under `root` as a mapping (YAML, JSON or TOML by
    extension), never read through a symlink and never larger than MAX_BYTES."""
    try:
        data = folders.read_bytes(root, name, limit=MAX_BYTES)
    except FileNotFoundError:
        raise InvalidFileError(f"{name}: parameters file does not exist") from None
    return parse(data, name)


def parse(data: bytes, name: str) -> dict[str, Any]:
    """A parameters or metrics file's bytes as a mapping: JSON, TOML or YAML by `name`'s suffix."""
    if len(data) > MAX_BYTES:
        raise InvalidFileError(f"{name}: file is larger than {MAX_BYTES} bytes")
    suffix = Path(name).suffix.lower()
    if suffix == ".json":
        try:
            value = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise InvalidFileError(f"{name}: not valid JSON ({exc})") from None
    elif suffix == ".toml":
        try:
            value = tomllib.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidFileError(f"{name}: not valid TOML ({exc})") from None
        except RecursionError:
            raise InvalidFileError(f"{name}: not valid TOML (nested too deeply)") from None
    else:
        value = yamlio.load(data, where=name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidFileError(f"{name}: expected a mapping of names to values")
    return value


def lookup(values: dict[str, Any], key: str) -> Any:
    """The value at a dotted key (`train.lr`), or MISSING."""
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: {"train": {"lr": 0.1}} → {"train.lr": 0.1}."""
    if not isinstance(values, dict):
        return {prefix: values} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat
