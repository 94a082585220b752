"""Safe, strict YAML reading: libyaml's C loader, no tags, no aliases, no duplicate keys.

Every YAML file repro reads goes through `load`, which turns any problem into an
InvalidFileError naming the file and line (DESIGN §3; RELIABILITY invariant 10).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import yaml

from reprocli.errors import InvalidFileError

MAX_BYTES = 1 << 20
"""The largest YAML file read by default (callers check it before reading, too)."""

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


def _text(data: bytes, where: str, limit: int) -> str:
    if len(data) > limit:
        raise InvalidFileError(f"{where}: file is larger than {limit} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFileError(f"{where}: not UTF-8 text ({exc.reason})") from None
    if "&" in text or "*" in text:
        _refuse_aliases(text, where)
    return text


@contextlib.contextmanager
def _translated(where: str) -> Iterator[None]:
    """Turn any YAML failure into one InvalidFileError naming `where` (and the line)."""
    try:
        yield
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


def load(data: bytes, *, where: str, limit: int = MAX_BYTES) -> Any:
    """Parse one YAML document from `data`; raise InvalidFileError on anything doubtful."""
    with _translated(where):
        return yaml.load(_text(data, where, limit), Loader=_StrictLoader)


def compose(data: bytes, *, where: str, limit: int = MAX_BYTES) -> tuple[Any, Any]:
    """Parse like `load`, also returning the node tree (for line numbers in messages)."""
    with _translated(where):
        loader = _StrictLoader(_text(data, where, limit))
        try:
            node = loader.get_single_node()
            value = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
        return value, node


def line_of(node: Any, *keys: str | int) -> int:
    """The 1-based line of the value at `keys` below `node` (the deepest one found)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in keys:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == key:
                    child, line = value_node, key_node.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def child(node: Any, key: str) -> Any:
    """The value node at `key` of a mapping node (None when absent or not a mapping)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key:
                return value_node
    return None


def is_sequence(node: Any) -> bool:
    """Whether `node` is a list node."""
    return isinstance(node, yaml.SequenceNode)


def is_flow(node: Any) -> bool:
    """Whether a collection node is written inline (`[a, b]`, `{a: 1}`)."""
    return bool(getattr(node, "flow_style", False))


def dump(value: Any) -> bytes:
    """Serialise `value` deterministically (block style, keys in the given order)."""
    dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(
        value, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return text.encode("utf-8")
