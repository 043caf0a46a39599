"""Spec files and the strict text formats graphnet reads: ``read_spec`` and
``from_spec`` for ``.json``/``.yaml`` architecture files, and :func:`parse_json`,
which model files use for their JSON members too.

JSON is strict (UTF-8, no NaN/Infinity, no repeated keys). YAML goes through
PyYAML's safe loader and is refused where a spec never needs it and a hostile
file would use it: anchors and aliases (which expand), merge keys and
repeated keys. Files are read a megabyte at a time up to a fixed limit.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from ._text import clip, shown
from .errors import GraphError, ModelFileError
from .spec import DEFAULT_MAX_SPEC_PARAMS, from_dict

__all__ = ["read_spec", "from_spec", "parse_json", "MAX_JSON_BYTES"]

#: A spec file (or a JSON member of a model file) larger than this is refused.
MAX_JSON_BYTES = 32 << 20


def read_spec(path: str | os.PathLike) -> Any:
    """The data of a ``.json``, ``.yaml`` or ``.yml`` spec file, parsed safely
    (strict JSON; YAML through PyYAML's safe loader, which builds only plain
    data, without anchors, aliases, merge keys or repeated keys). Validation
    is :func:`from_spec`'s job.

    Raises
    ------
    ModelFileError
        Naming the file: missing, too large, wrong extension, not UTF-8, not
        parseable, a repeated key (and its line), a YAML alias, or PyYAML not
        installed for a YAML file.
    """
    label = os.fspath(path)
    suffix = Path(label).suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ModelFileError(
            f"{label}: a spec file must end in .json, .yaml or .yml, not {suffix or 'nothing'!r}"
        )
    try:
        with open(label, "rb") as handle:
            raw = _read_at_most(handle, MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise ModelFileError(f"{label}: no such file") from None
    except OSError as exc:
        raise ModelFileError(f"{label}: cannot be read ({exc})") from exc
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


def from_spec(cls, path: str | os.PathLike, max_params: int | None = DEFAULT_MAX_SPEC_PARAMS):
    """A new Graph (or Sequential) from a spec file: :func:`graphnet.spec.to_dict`'s
    structure written as JSON or YAML (``Graph.from_spec(path)``). Weights
    start from their initialisers.

    Parameters
    ----------
    cls : type or None
        The class to make, as for :func:`graphnet.spec.from_dict`.
    path : str or PathLike
        ``.json``, ``.yaml`` or ``.yml``.
    max_params : int or None
        Refuse specs describing more parameters than this (100 million by
        default) before anything is allocated; ``None`` for no limit.

    Raises
    ------
    ModelFileError
        Naming the file and the offending field (``spec.nodes[2].size``).
    """
    data = read_spec(path)
    try:
        return from_dict(cls, data, max_params=max_params)
    except GraphError as exc:
        raise ModelFileError(f"{os.fspath(path)}: {exc}") from None


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no repeated keys.

    Raises
    ------
    ValueError
        Saying what is wrong and where.
    """
    text = raw.decode("utf-8-sig")
    return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {shown(key)} appears twice in one object")
        result[key] = value
    return result
