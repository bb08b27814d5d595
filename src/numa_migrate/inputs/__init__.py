"""The one input layer: every document numa-migrate reads goes through here.

- :mod:`.files`: only regular files, at most a bound of bytes, strict UTF-8 with the byte
  offset of a bad sequence;
- :mod:`.documents`: JSON and TOML with bounded nesting, integers, strings and lists, no
  ``NaN``/``Infinity``, no duplicate keys; :mod:`.yamldoc`: YAML the same way, without
  aliases or custom tags (imported on its own: it loads PyYAML);
- :mod:`.fields`: a typed reader of a parsed document whose errors carry the path of the
  field, the value (shortened) and what is allowed.

Every error is a :class:`numa_migrate.core.errors.ParseError` (or a subclass of it).
"""

from __future__ import annotations

from numa_migrate.inputs.bounds import DocBounds
from numa_migrate.inputs.documents import (
    load_json,
    load_toml,
    parse_json,
    parse_toml,
)
from numa_migrate.inputs.fields import Node, Obj, root
from numa_migrate.inputs.files import decode_utf8, read_bytes, read_text

__all__ = [
    "DocBounds",
    "Node",
    "Obj",
    "decode_utf8",
    "load_json",
    "load_toml",
    "parse_json",
    "parse_toml",
    "read_bytes",
    "read_text",
    "root",
]
