"""Bounded YAML documents: PyYAML's safe loader without anchors, aliases, custom tags or
timestamps (an alias bomb is refused at its first anchor, never expanded), with the bounds
of :mod:`numa_migrate.inputs.documents` checked on the result. A module of its own so that
readers of JSON and TOML do not import PyYAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, NoReturn

import yaml

from numa_migrate.core.errors import ParseError
from numa_migrate.inputs.bounds import DEFAULT, MAX_DEPTH, DocBounds
from numa_migrate.inputs.documents import bounded_text, check_bounds, short
from numa_migrate.inputs.files import read_bytes

_STANDARD_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")
)


_TIMESTAMP: Final = "tag:yaml.org,2002:timestamp"


class YamlMapping(dict[Any, Any]):
    """A YAML mapping that also knows the line (1-based) of each of its keys."""

    lines: dict[Any, int]


class BoundedSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors, aliases, custom tags or timestamps.

    Mappings are :class:`YamlMapping` objects; a key given twice is refused.
    """

    yaml_implicit_resolvers = {  # noqa: RUF012 (PyYAML's own class attribute)
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    max_depth = MAX_DEPTH

    def _too_deep(self) -> NoReturn:
        mark: Any = self.get_mark()
        raise yaml.scanner.ScannerError(
            None, None, f"nested more than {self.max_depth} levels deep", mark)

    def fetch_flow_sequence_start(self) -> None:
        if self.flow_level >= self.max_depth:
            self._too_deep()
        super().fetch_flow_sequence_start()

    def fetch_flow_mapping_start(self) -> None:
        if self.flow_level >= self.max_depth:
            self._too_deep()
        super().fetch_flow_mapping_start()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        depth = getattr(self, "_depth", 0)
        if depth >= self.max_depth:
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {self.max_depth} levels deep", mark)
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, f"alias *{event.anchor} is not allowed (no anchors or aliases)",
                mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise yaml.composer.ComposerError(
                None, None, f"anchor &{anchor} is not allowed (no anchors or aliases)",
                mark)
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and self._full_tag(tag) not in _STANDARD_TAGS:
            raise yaml.composer.ComposerError(
                None, None, f"tag {tag} is not allowed (plain values, lists and mappings only)",
                mark)
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth

    @staticmethod
    def _full_tag(tag: str) -> str:
        return "tag:yaml.org,2002:" + tag[2:] if tag.startswith("!!") else tag


def _yaml_mapping(loader: BoundedSafeLoader, node: yaml.MappingNode) -> YamlMapping:
    loader.flatten_mapping(node)
    out = YamlMapping()
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | bool | float) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {short(repr(key))} is given twice", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


BoundedSafeLoader.add_constructor("tag:yaml.org,2002:map", _yaml_mapping)


def parse_yaml(
    text: str | bytes,
    *,
    source: str | None = None,
    bounds: DocBounds = DEFAULT,
    error: type[ParseError] = ParseError,
) -> Any:
    """One YAML document, read with :class:`BoundedSafeLoader`."""
    text = bounded_text(text, source=source, bounds=bounds, error=error)
    try:
        value = yaml.load(text, Loader=BoundedSafeLoader)  # a bounded SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if isinstance(exc, yaml.reader.ReaderError):
            problem = f"character {exc.character!r} at offset {exc.position} is not allowed"
        else:
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        if mark is not None:
            where = f"{source}:{mark.line + 1}" if source else f"line {mark.line + 1}"
            raise error(f"not valid YAML: {short(str(problem), 120)}", source=where) from None
        raise error(f"not valid YAML: {short(str(problem), 120)}", source=source) from None
    except RecursionError:
        raise error(f"not accepted YAML: nested more than {bounds.max_depth} levels deep",
                    source=source) from None
    except ValueError as exc:
        raise error(f"not accepted YAML: {short(str(exc), 80)}", source=source) from None
    return check_bounds(value, bounds, error, source)


def load_yaml(path: Path | str, *, what: str = "YAML file", bounds: DocBounds = DEFAULT,
              error: type[ParseError] = ParseError) -> Any:
    data = read_bytes(path, what=what, max_bytes=bounds.max_bytes, error=error)
    return parse_yaml(data, source=str(path), bounds=bounds, error=error)
