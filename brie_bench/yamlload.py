"""Bounded, safe YAML loading that remembers where every field came from.

Suites and training configs are validated with pydantic; when validation
fails we want the error to name the file, the field path *and the line*. This
module composes the YAML node tree (safe tags only), converts it to plain
Python while recording the line of each field path, and refuses inputs that
could hang or exhaust memory or the stack: oversized files, FIFOs and
devices (see `brie_bench.bounded`), alias "bombs" (a document whose expansion
visits more than `max_nodes` nodes) and deep nesting (more than `MAX_DEPTH`
levels: PyYAML's composer recurses per level and would raise `RecursionError`
near 300 levels; a 1 KB suite can nest 600).
"""

from __future__ import annotations

import dataclasses

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import yaml
from pydantic import BaseModel, ValidationError

from brie_bench.bounded import MAX_DEPTH, read_text
from brie_bench.errors import InputError

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 100_000
PathKey = tuple[str | int, ...]
_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


@dataclass
class LineIndex:
    """Maps a field path such as ("sections", 0, "temperature") to its 1-based line."""

    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_for(self, loc: Iterable[str | int]) -> int | None:
        """The line of `loc`, or of its deepest ancestor that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())


def format_loc(loc: Iterable[str | int]) -> str:
    """("sections", 0, "temperature") -> "sections[0].temperature"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _too_deep(path: str, mark: yaml.Mark | None) -> InputError:
    return InputError(f"YAML nested more than {MAX_DEPTH} levels deep", path=path,
                      line=mark.line + 1 if mark is not None else None)


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader whose composer refuses nesting deeper than MAX_DEPTH before recursing further."""

    def __init__(self, stream: str, path: str) -> None:
        super().__init__(stream)
        self._path = path
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]  # PyYAML's stubs leave Parser untyped
                raise _too_deep(self._path, event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Converter:
    def __init__(self, loader: yaml.SafeLoader, path: str, max_nodes: int) -> None:
        self.loader = loader
        self.path = path
        self.budget = max_nodes
        self.index = LineIndex()

    def _spend(self, node: yaml.Node) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise InputError(
                f"YAML document too large: more than {MAX_NODES} nodes after expanding aliases "
                "(an anchor/alias bomb?)", path=self.path, line=node.start_mark.line + 1)

    def _key(self, node: yaml.Node, loc: PathKey) -> Any:
        self._spend(node)
        if not isinstance(node, yaml.ScalarNode):
            raise InputError("mapping keys must be plain values", path=self.path,
                             field=format_loc(loc) or None, line=node.start_mark.line + 1)
        return self.loader.construct_object(node)

    def convert(self, node: yaml.Node, loc: PathKey) -> Any:
        self._spend(node)
        if len(loc) > MAX_DEPTH:  # aliases can nest a node inside itself
            raise _too_deep(self.path, node.start_mark)
        self.index.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
            raise InputError(f"invalid YAML: unsupported tag {node.tag!r}", path=self.path, line=node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in self._pairs(node):
                key = self._key(key_node, loc)
                if key in result:
                    raise InputError(f"duplicate key {key!r}", path=self.path, field=format_loc(loc) or None,
                                     line=key_node.start_mark.line + 1)
                skey = key if isinstance(key, str) else str(key)
                self.index.lines[loc + (skey,)] = key_node.start_mark.line + 1
                result[key] = self.convert(value_node, loc + (skey,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, loc + (i,)) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise InputError(f"invalid YAML value: {_problem(exc)}", path=self.path,
                             line=node.start_mark.line + 1) from None

    def _pairs(self, node: yaml.MappingNode, depth: int = 0) -> list[tuple[yaml.Node, yaml.Node]]:
        """Key/value node pairs, with `<<` merges applied: explicit keys win over merged ones."""
        if depth > MAX_DEPTH:
            raise _too_deep(self.path, node.start_mark)
        explicit: list[tuple[yaml.Node, yaml.Node]] = []
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:merge":
                explicit.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                self._spend(source)
                if not isinstance(source, yaml.MappingNode):
                    raise InputError("'<<' merge needs a mapping", path=self.path,
                                     line=source.start_mark.line + 1)
                merged.extend(self._pairs(source, depth + 1))
        taken = {k.value for k, _ in explicit if isinstance(k, yaml.ScalarNode)}
        for key_node, value_node in merged:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value not in taken:
                taken.add(key_node.value)
                explicit.append((key_node, value_node))
        return explicit


def _problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return " ".join(str(problem).split())


def loads_yaml(text: str, path: str = "<string>", *, max_nodes: int = MAX_NODES) -> tuple[Any, LineIndex]:
    """Parse one YAML document from text; see `load_yaml`."""
    loader = _BoundedLoader(text, path)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # pragma: no cover - compose_node's bound comes first
            raise _too_deep(path, None) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise InputError(f"invalid YAML: {_problem(exc)}", path=path, line=line) from None
        if node is None:
            raise InputError("file is empty", path=path)
        converter = _Converter(loader, path, max_nodes)
        data = converter.convert(node, ())
        return data, converter.index
    finally:
        loader.dispose()


def load_yaml(path: str | Path, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> tuple[Any, LineIndex]:
    """Load a YAML file safely and boundedly; returns (data, LineIndex). Raises InputError."""
    text = read_text(path, max_bytes)
    return loads_yaml(text, str(path), max_nodes=max_nodes)


def _known_fields(model: type[BaseModel] | None, loc: PathKey) -> list[str] | None:
    """Walk a pydantic model along `loc` to list the keys allowed at its end."""
    current: Any = model
    for part in loc:
        if current is None:
            return None
        if isinstance(current, type) and issubclass(current, BaseModel):
            finfo = current.model_fields.get(str(part))
            if finfo is None:
                return None
            current = _inner_model(finfo.annotation)
        elif isinstance(part, int) or isinstance(part, str):
            # a list item or a dict value: the model type stays the same (already unwrapped)
            continue
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    if isinstance(current, type) and dataclasses.is_dataclass(current):
        return sorted(f.name for f in dataclasses.fields(current))
    return None


def _inner_model(annotation: Any) -> Any:
    """The pydantic model (or dataclass) inside list[...], dict[str, ...], Optional[...], or None."""
    if isinstance(annotation, type) and (issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation)):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


_TYPE_TAG = re.compile(r"^(str|int|float|bool|none|list|dict|tuple|set|[a-z-]+\[.*\]|function-.*|"
                       r"json-or-python.*|lax-or-strict.*|is-instance.*|tagged-union.*)$")


def _clean_loc(loc: Iterable[str | int], index: LineIndex, prefix: PathKey) -> PathKey:
    """Drop pydantic's union-member tags (e.g. 'bool', "literal['auto']") from an error path.

    A part is kept when the document really has that key; otherwise a part that
    looks like a type tag is pydantic naming the union branch it tried.
    """
    out: PathKey = prefix
    for part in loc:
        if isinstance(part, str) and _TYPE_TAG.match(part) and (out + (part,)) not in index.lines:
            continue
        out = out + (part,)
    return out


def validation_error(exc: ValidationError, path: str | Path, index: LineIndex,
                     model: type[BaseModel] | None = None, prefix: PathKey = ()) -> InputError:
    """Turn the first pydantic error into a one-line InputError naming file, field path and line."""
    err = exc.errors(include_url=False)[0]
    loc = _clean_loc(err["loc"], index, prefix)
    msg = err["msg"]
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):  # a model's key, a dataclass's
        known = _known_fields(model, loc[len(prefix):-1]) if model is not None else None
        msg = f"unknown key {str(loc[-1])!r}"
        if known:
            msg += f" (known keys: {', '.join(known)})"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    elif err["type"] == "missing":
        msg = "required field is missing"
    return InputError(msg, path=str(path), field=format_loc(loc) or None, line=index.line_for(loc))
