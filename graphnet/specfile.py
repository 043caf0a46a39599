"""Spec files and the strict text formats graphnet reads: ``read_spec`` and
``from_spec`` for ``.json``/``.yaml`` architecture files, :func:`parse_json`,
which model files and the importers use for every JSON text they read, and
:func:`graphnet._files.open_regular`, how those readers open a file the user named.

JSON is strict (UTF-8, no NaN/Infinity, no repeated keys) and nested at most
:data:`MAX_JSON_DEPTH` deep, checked before it is parsed. YAML goes through
PyYAML's safe loader and is refused where a spec never needs it and a hostile
file would use it: anchors and aliases (which expand), merge keys and
repeated keys. Files are opened only when they are regular files no larger
than a fixed limit (not a pipe, a device or a folder), and read a megabyte at
a time.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ._registry import custom_objects as custom_scope
from ._files import open_regular, refuse_bad_name
from ._text import clip, named, reason, shown
from ._validation import is_int
from .errors import GraphError, ModelFileError
from .spec import DEFAULT_MAX_SPEC_PARAMS, N, from_dict

__all__ = ["read_spec", "from_spec", "parse_json", "MAX_JSON_BYTES", "MAX_JSON_DEPTH"]

#: A spec file (or a JSON member of a model file) larger than this is refused.
MAX_JSON_BYTES = 32 << 20
#: JSON whose arrays and objects nest deeper than this is refused before it is
#: parsed. graphnet's specs nest 4 deep and Keras configs about 15 (a model
#: inside a model inside a model); deeper text only exhausts the parser's
#: recursion, and everything that walks the parsed data.
MAX_JSON_DEPTH = 100
# A JSON string, or an unterminated one up to the end: the match never fails
# once begun, so a text of unbalanced quotes is scanned once, not once per quote.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?')
_JSON_CONSTANT = re.compile(rb"NaN|-?Infinity")
_NEWLINE = b"\n"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = np.frombuffer(b"[{", np.uint8)
_DEPTH_CHUNK = 1 << 20


def read_spec(path: str | os.PathLike) -> Any:
    """The data of a ``.json``, ``.yaml`` or ``.yml`` spec file, parsed safely
    (strict JSON; YAML through PyYAML's safe loader, which builds only plain
    data, without anchors, aliases, merge keys or repeated keys). Validation
    is :func:`from_spec`'s job.

    Raises
    ------
    ModelFileError
        Naming the file: missing, not a regular file (a folder, a pipe, a
        device), too large, wrong extension, not UTF-8, not parseable, nested
        too deep, a repeated key (and its line), a YAML alias, or PyYAML not
        installed for a YAML file; naming the argument when ``path`` is no
        path (``None``, a number) or holds a NUL character.
    """
    text = _path_text(path, "from_spec: path", "a .json, .yaml or .yml spec file")
    label = named(text)
    suffix = Path(text).suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ModelFileError(
            f"{label}: a spec file must end in .json, .yaml or .yml, not {suffix or 'nothing'!r}"
        )
    with open_regular(text, MAX_JSON_BYTES, "a spec", "from_spec: path") as handle:
        try:
            raw = _read_at_most(handle, MAX_JSON_BYTES + 1)
        except OSError as exc:
            raise ModelFileError(f"{label}: cannot be read ({reason(exc)})") from None
    if len(raw) > MAX_JSON_BYTES:
        raise ModelFileError(f"{label}: larger than the limit of {MAX_JSON_BYTES:,} bytes for a spec")
    try:
        if suffix == ".json":
            return parse_json(raw)
        return _parse_yaml(raw, label)
    except ModelFileError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelFileError(f"{label}: not valid {suffix[1:].upper()} ({clip(str(exc))})") from None


def _path_text(path: Any, argument: str, expected: str) -> str:
    """A path argument as text, or a ModelFileError naming ``argument``."""
    try:
        text = os.fsdecode(path) if isinstance(path, (str, os.PathLike)) else None
    except (TypeError, ValueError):  # a PathLike whose __fspath__ returns neither str nor bytes
        text = None
    if text is None:
        raise ModelFileError(
            f"{argument} must be a str or os.PathLike naming {expected}, got {type(path).__name__} "
            f"{shown(path, 60)}"
        )
    refuse_bad_name(text, argument)
    return text


def _read_at_most(handle, limit: int) -> bytes:
    """Up to ``limit`` bytes, read a megabyte at a time: ``read(limit)`` would
    set aside ``limit`` bytes (32 MB) for every spec, however small."""
    chunks, got = [], 0
    while got < limit:
        chunk = handle.read(min(1 << 20, limit - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _parse_yaml(raw: bytes, label: str) -> Any:
    """YAML as plain data, refusing what a spec never needs and a hostile file
    could abuse: anchors and aliases (``&a``/``*a``, a 430-byte file can
    expand to gigabytes), merge keys (``<<``) and repeated keys (``size: 2``
    then ``size: 3000`` must not silently build 3000)."""
    try:
        import yaml
    except ImportError:
        raise ModelFileError(
            f"{label}: reading YAML needs PyYAML: pip install 'graphnet[yaml]' "
            f"(or write the spec as .json)"
        ) from None
    text = raw.decode("utf-8-sig")
    loader_class = _yaml_loader(yaml)
    try:
        # The events first (libyaml's parser is fast): anchors and aliases are
        # refused, with their line, before anything is built from them.
        for event in yaml.parse(text, Loader=loader_class):
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
                raise ModelFileError(
                    f"{label}: line {event.start_mark.line + 1}: YAML anchors and aliases "
                    f"({sign}{anchor[:40]}) are not allowed in a spec; write the value out"
                )
        loader = loader_class(text)
        loader.label = label
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ModelFileError(f"{label}: not valid YAML ({clip(str(exc))})") from None


@functools.cache
def _yaml_loader(yaml) -> type:
    """A safe loader (libyaml's when installed) whose mappings refuse merge
    keys and repeated keys, naming the line."""
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    merge = "tag:yaml.org,2002:merge"

    class SpecLoader(base):
        label = "spec"

        def construct_mapping(self, node, deep=False):
            if not isinstance(node, yaml.MappingNode):
                return super().construct_mapping(node, deep=deep)
            mapping: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == merge:
                    raise ModelFileError(
                        f"{self.label}: line {line}: YAML merge keys (<<) are not allowed in a spec; "
                        f"write the fields out"
                    )
                key = self.construct_object(key_node, deep=deep)
                try:
                    repeated = key in mapping
                except TypeError:  # a list or mapping as a key
                    raise ModelFileError(
                        f"{self.label}: line {line}: a mapping key must be a plain value, "
                        f"found a {type(key).__name__}"
                    ) from None
                if repeated:
                    raise ModelFileError(
                        f"{self.label}: line {line}: key {shown(key)} appears twice in one mapping"
                    )
                mapping[key] = self.construct_object(value_node, deep=deep)
            return mapping

    return SpecLoader


def from_spec(cls: type[N], path: str | os.PathLike, max_params: int | None = DEFAULT_MAX_SPEC_PARAMS,
              custom_objects=None) -> N:
    """A new Graph (or Sequential) from a spec file: :func:`graphnet.spec.to_dict`'s
    structure written as JSON or YAML (``Graph.from_spec(path)``). Weights
    start from their initialisers.

    Parameters
    ----------
    cls : type or None
        This function's own (``Graph.from_spec(path)`` takes no ``cls``): the
        class to make, as for :func:`graphnet.spec.from_dict`.
    path : str or PathLike
        ``.json``, ``.yaml`` or ``.yml``.
    max_params : int or None
        Refuse specs describing more parameters than this (100 million by
        default) before anything is allocated; ``None`` for no limit.
    custom_objects : dict name -> class, optional
        Custom activations and losses the spec names, for this call only
        (see :func:`graphnet.spec.from_dict`).

    Raises
    ------
    ModelFileError
        Naming the file and the offending field (``spec.nodes[2].size``), or
        as :func:`read_spec` does.
    GraphError
        For ``max_params`` that is neither None nor an integer >= 0.
    """
    if max_params is not None and not is_int(max_params, 0):  # the caller's error, not the file's
        raise GraphError(f"from_spec: max_params must be None or an integer >= 0, got {shown(max_params)}")
    with custom_scope(custom_objects):  # a bad mapping is the caller's error, not the file's
        data = read_spec(path)
        try:
            return from_dict(cls, data, max_params=max_params)
        except GraphError as exc:
            raise ModelFileError(f"{os.fspath(path)}: {exc}") from exc.__cause__  # what it came from, if anything


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no repeated keys, arrays and
    objects nested at most :data:`MAX_JSON_DEPTH` deep (checked first, in
    time and memory linear in ``raw``'s size).

    Raises
    ------
    ValueError
        Saying what is wrong and where.
    """
    depth = _json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"arrays and objects nest {depth:,} deep, more than the limit of {MAX_JSON_DEPTH}")
    text = raw.decode("utf-8-sig")
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except RecursionError:  # the caller's own stack was already deep
        raise ValueError("nested too deeply for this interpreter's recursion limit") from None
    except _NonFinite as exc:  # json gives the constant, not where it is: found outside the strings
        blanked = _JSON_STRING.sub(lambda m: b" " * len(m.group()), raw)
        found = _JSON_CONSTANT.search(blanked)
        line = "" if found is None else f"line {blanked.count(_NEWLINE, 0, found.start()) + 1}: "
        raise ValueError(f"{line}{exc}") from None


def _json_depth(raw: bytes) -> int:
    """How deeply ``raw``'s arrays and objects nest: exact for valid JSON
    (brackets inside strings are skipped), without parsing it."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    steps = np.frombuffer(brackets, np.uint8)
    deepest = level = 0
    for start in range(0, len(steps), _DEPTH_CHUNK):
        levels = np.cumsum(np.where(np.isin(steps[start : start + _DEPTH_CHUNK], _OPENING), 1, -1)) + level
        deepest, level = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


class _NonFinite(ValueError):
    """NaN or Infinity in JSON text (Python's json reads them; JSON does not)."""


def _refuse_constant(name: str):
    raise _NonFinite(f"{name} is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {shown(key)} appears twice in one object")
        result[key] = value
    return result
