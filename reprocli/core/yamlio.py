"""Safe, strict YAML reading: libyaml's C loader, no tags, no aliases, no duplicate keys.

Every YAML file repro reads goes through `load`, which turns any problem into an
InvalidFileError naming the file and line (DESIGN §3; RELIABILITY invariant 10).
"""

from __future__ import annotations

from typing import Any

import yaml

from reprocli.errors import InvalidFileError

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_Base):  # type: ignore[misc]
    """The C safe loader, refusing duplicate mapping keys."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping key is not a plain value", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping
)


def _refuse_aliases(text: str, where: str) -> None:
    for token in yaml.scan(text, Loader=_Base):
        if isinstance(token, yaml.AliasToken | yaml.AnchorToken):
            line = token.start_mark.line + 1
            raise InvalidFileError(f"{where}:{line}: YAML anchors and aliases are not allowed")


def load(data: bytes, *, where: str, limit: int = 1 << 20) -> Any:
    """Parse one YAML document from `data`; raise InvalidFileError on anything doubtful."""
    if len(data) > limit:
        raise InvalidFileError(f"{where}: file is larger than {limit} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFileError(f"{where}: not UTF-8 text ({exc.reason})") from None
    try:
        if "&" in text or "*" in text:
            _refuse_aliases(text, where)
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        reason = exc.problem or exc.context or "invalid YAML"
        raise InvalidFileError(f"{where}{line}: {reason}") from None
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise InvalidFileError(f"{where}: invalid YAML ({detail})") from None
    except RecursionError:
        raise InvalidFileError(f"{where}: YAML nested too deeply") from None


def dump(value: Any) -> bytes:
    """Serialise `value` deterministically (block style, keys in the given order)."""
    dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(
        value, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return text.encode("utf-8")
