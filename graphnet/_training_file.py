"""The training state of model and weights files: ``training.json`` and
``optimizer.npz``, what makes ``fit`` continue where it stopped.

``training.json`` holds the graph's random streams (shuffling, dropout,
initialisation of later synapses), the weights still waiting for a
vocabulary (with their seeds) and, when the graph has an optimizer, its
name, hyperparameters, iteration count and the layout (parameter key and
size) of its state vectors, which ``optimizer.npz`` holds. Written by
:func:`training_state`; read, every field checked before the graph changes,
by :func:`restore_training` and :func:`read_waits`.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import optimizers as optimizers_module
from ._archive import read_member
from ._npz import read_npz
from ._text import clip, preview, shown
from ._validation import is_int
from .errors import GraphError, ModelFileError
from .specfile import parse_json

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["TRAINING_MEMBER", "OPTIMIZER_MEMBER", "training_state", "restore_training", "read_waits", "read_json"]

TRAINING_MEMBER = "training.json"
OPTIMIZER_MEMBER = "optimizer.npz"
_UINT128 = 1 << 128


# ---------------------------------------------------------------------- writing
def training_state(graph: Graph) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """``training.json``'s content and the optimizer's state vectors (or None)."""
    state: dict[str, Any] = {
        "rng": {
            "train": graph.rng.bit_generator.state,
            # The stream that initialises synapses connected later.
            "init": graph.init_rng.bit_generator.state,
        },
        "optimizer": None,
    }
    waits = graph.lazy_init.vocabulary_waits(graph)
    if waits:  # weights still waiting for a vocabulary: the file holds provisional values, and their seeds
        state["waiting"] = waits
    optimizer = graph.optimizer
    if optimizer is None:
        return state, None
    saved = optimizer.get_state()
    # Keep the state of parameters the graph still has (it may have been edited
    # since the last step); the rest would be dropped by the next bind() anyway.
    held = optimizer.held_for(graph)
    layout, slots, start = [], {name: [] for name in optimizer.slot_names}, 0
    for (key, n), token in zip(saved["layout"], held):
        if token is not None:
            layout.append([key, n])
            for name in optimizer.slot_names:
                slots[name].append(saved["slots"][name][start : start + n])
        start += n
    iterations = int(saved["iterations"])
    kept = {key for key, _ in layout}
    born = {key: n for key, n in saved["born"].items() if key in kept}
    for frozen in optimizer.frozen_state(graph):  # held until unfrozen: in the file as any state, with its count
        layout.append([frozen.key, frozen.size])
        for name in optimizer.slot_names:
            slots[name].append(frozen.slots[name])
        if iterations > frozen.steps:
            born[frozen.key] = iterations - frozen.steps
    state["optimizer"] = {
        "config": optimizer.get_config(),
        "iterations": iterations,
        "layout": layout,
        "slots": sorted(optimizer.slot_names),
    }
    if born:  # parameters whose state started after the first update (written only then)
        state["optimizer"]["born"] = born
    if not slots:  # plain SGD keeps no state
        return state, None
    return state, {
        name: (np.concatenate(parts) if parts else np.zeros(0)).astype(graph.dtype)
        for name, parts in sorted(slots.items())
    }



# ---------------------------------------------------------------------- reading
def read_json(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> Any:
    where = f"{label}: {info.filename}"
    raw = read_member(archive, info, where)
    try:
        return parse_json(raw)
    except ValueError as exc:
        raise ModelFileError(f"{where} is not valid JSON ({clip(str(exc))})") from None


_TRAINING_FIELDS = {"rng", "optimizer", "waiting"}
_OPTIMIZER_FIELDS = {"config", "iterations", "layout", "slots"}


def restore_training(graph: Graph, archive: zipfile.ZipFile, infos, label: str, state: Any = None) -> None:
    """Set the graph's random streams and optimizer (state included) from
    ``training.json`` (``state``: its content, when already read) and
    ``optimizer.npz``, after checking all of them: a refused file changes nothing."""
    where = f"{label}: {TRAINING_MEMBER}"
    if state is None:
        state = read_json(archive, infos[TRAINING_MEMBER], label)
    _require(isinstance(state, Mapping), where, "a JSON object", state)
    _require(set(state) <= _TRAINING_FIELDS, where, f"only the fields {sorted(_TRAINING_FIELDS)}",
             sorted(state))
    streams = {}
    if state.get("rng") is not None:
        rng = state["rng"]
        _require(isinstance(rng, Mapping) and set(rng) <= {"train", "init"}, f"{where}: rng",
                 "an object with 'train' and 'init'", rng)
        streams = {name: _generator(value, f"{where}: rng.{name}") for name, value in rng.items()}

    optimizer, slot_arrays = None, None
    config = state.get("optimizer")
    if config is not None:
        optimizer, slot_arrays = _optimizer(graph, archive, infos, config, label)
    elif OPTIMIZER_MEMBER in infos:
        raise ModelFileError(f"{label}: has {OPTIMIZER_MEMBER} but {TRAINING_MEMBER} names no optimizer")

    if optimizer is not None:  # a fresh optimizer: its state allocates (and may fail) before the graph changes
        optimizer.set_state(slot_arrays, graph.dtype)
    # Everything checked and made: now change the graph.
    if "train" in streams:
        graph.rng = streams["train"]
    if "init" in streams:
        graph.init_rng = streams["init"]
    if optimizer is not None:
        graph.optimizer = optimizer


def _generator(state: Any, where: str) -> np.random.Generator:
    """A PCG64 generator in exactly the saved state (the only bit generator graphnet uses)."""
    ok = (
        isinstance(state, Mapping)
        and set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
        and state["bit_generator"] == "PCG64"
        and isinstance(state["state"], Mapping)
        and set(state["state"]) == {"state", "inc"}
        and all(is_int(v, 0, _UINT128) for v in state["state"].values())
        and is_int(state["has_uint32"], 0, 2)
        and is_int(state["uinteger"], 0, 1 << 32)
    )
    _require(ok, where, "a PCG64 state", state)
    bit_generator = np.random.PCG64()
    bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": state["state"]["state"], "inc": state["state"]["inc"]},
        "has_uint32": state["has_uint32"],
        "uinteger": state["uinteger"],
    }
    return np.random.Generator(bit_generator)


def _optimizer(graph: Graph, archive, infos, config: Any, label: str):
    where = f"{label}: {TRAINING_MEMBER}: optimizer"
    _require(isinstance(config, Mapping) and _OPTIMIZER_FIELDS <= set(config) <= _OPTIMIZER_FIELDS | {"born"},
             where, f"an object with the fields {sorted(_OPTIMIZER_FIELDS)} (and 'born')", config)
    settings = config["config"]
    _require(isinstance(settings, Mapping) and isinstance(settings.get("name"), str),
             f"{where}.config", "an object with a 'name'", settings)
    for key, value in settings.items():
        if key == "lr" and isinstance(value, Mapping):  # a learning-rate schedule's config
            _require(all(_plain(v, inner) for inner, v in value.items()), f"{where}.config.lr",
                     "a schedule config of names, numbers and lists of numbers", value)
            continue
        _require(_plain(value, key), f"{where}.config.{key}", "a number, true/false or null", value)
    try:
        optimizer = optimizers_module.get(dict(settings))  # looked up in the registry
    except GraphError as exc:
        raise ModelFileError(f"{where}.config: {exc}") from None
    iterations = config["iterations"]
    _require(is_int(iterations, 0, 1 << 62), f"{where}.iterations", "an integer >= 0", iterations)
    sizes = _parameter_sizes(graph)
    layout = config["layout"]
    _require(isinstance(layout, list) and len(layout) <= len(sizes), f"{where}.layout",
             f"a list of at most {len(sizes)} [key, size] pairs", layout)
    seen = set()
    for i, item in enumerate(layout):
        ok = (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
              and is_int(item[1], 1, 1 << 62))
        _require(ok, f"{where}.layout[{i}]", "a [key, size] pair", item)
        key, n = item
        _require(sizes.get(key) == n and key not in seen, f"{where}.layout[{i}]",
                 "a parameter of the graph with its size, listed once", item)
        seen.add(key)
    born = config.get("born", {})
    _require(isinstance(born, Mapping) and len(born) <= len(layout)
             and all(k in seen and is_int(v, 1, iterations + 1) for k, v in born.items()),
             f"{where}.born", "parameters of the layout, each with an iteration count in [1, iterations]", born)
    names = config["slots"]
    _require(names == sorted(optimizer.slot_names), f"{where}.slots",
             f"{sorted(optimizer.slot_names)} for {optimizer.name!r}", names)
    total = sum(n for _, n in layout)
    slots: dict[str, np.ndarray] = {}
    if names:
        if OPTIMIZER_MEMBER not in infos:
            raise ModelFileError(f"{label}: {TRAINING_MEMBER} lists optimizer state {preview(names)} "
                                 f"but {OPTIMIZER_MEMBER} is missing")
        slots = read_npz(archive, infos[OPTIMIZER_MEMBER], {n: (total,) for n in names},
                         graph.dtype, label, TRAINING_MEMBER)
        for name, value in slots.items():
            _check_slot(value, name, optimizer, layout, f"{label}: {OPTIMIZER_MEMBER}")
    elif OPTIMIZER_MEMBER in infos:
        raise ModelFileError(f"{label}: {OPTIMIZER_MEMBER} is present but {optimizer.name!r} keeps no state")
    return optimizer, {"iterations": iterations, "layout": layout, "slots": slots, "born": dict(born)}


def _check_slot(value: np.ndarray, name: str, optimizer, layout: list, where: str) -> None:
    """Refuse a state vector the optimizer could never have written: NaN or
    inf anywhere, or a negative value in a slot that is never negative
    (Adam's ``v``, RMSprop's ``mean_square``: means of squared gradients,
    whose square root the next step takes)."""
    bad = ~np.isfinite(value)
    nonnegative = name in optimizer.nonnegative_slots
    if nonnegative:
        bad |= value < 0
    if not bad.any():
        return
    index = int(np.flatnonzero(bad)[0])
    start = 0
    for key, n in layout:
        if index < start + n:
            break
        start += n
    found = value[index]
    what = "NaN or inf" if not np.isfinite(found) else f"{float(found)!r}, but it is never negative"
    raise ModelFileError(
        f"{where}: state {name!r} of parameter {key!r} (element {index - start}) holds {what}; "
        f"{optimizer.name} cannot have written it, so the file is damaged; save the model again "
        "from the graph that wrote it"
    )


def _plain(value: Any, key: str) -> bool:
    """A JSON value graphnet's own configs hold: null, true/false, a finite
    number, a string only as a ``name``, or a short list of finite numbers."""
    if key == "name":
        return isinstance(value, str)
    if isinstance(value, list):
        return len(value) <= 1000 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    return value is None or isinstance(value, bool) or (
        isinstance(value, (int, float)) and math.isfinite(value))


def read_waits(graph: Graph, state: Any, label: str) -> dict[str, str | None]:
    """The weights that wait for a vocabulary in ``training.json``'s content
    ``state`` (checked: the keys of exactly what waits in the graph just
    built, seeds of at most 128 bits), or nothing for a file without them."""
    waits = state.get("waiting", {}) if isinstance(state, Mapping) else {}
    where = f"{label}: {TRAINING_MEMBER}: waiting"
    expected = graph.lazy_init.vocabulary_waits(graph)
    _require(isinstance(waits, Mapping) and set(waits) <= set(expected), where,
             f"an object keyed by weights waiting for a vocabulary ({preview(expected)})", waits)
    for key, seed in waits.items():
        digits = isinstance(seed, str) and seed.isascii() and seed.isdigit() and len(seed) <= 39
        ok = (seed is None) == (expected[key] is None) and (seed is None or (digits and int(seed) < 2**128))
        _require(ok, f"{where}: {key}", "a seed of at most 128 bits as digits (null for a bias)", seed)
    return dict(waits)


def _require(ok: bool, where: str, expected: str, found: Any) -> None:
    if not ok:
        raise ModelFileError(f"{where}: expected {expected}, found {shown(found)}")


def _parameter_sizes(graph: Graph) -> dict[str, int]:
    return {record.key: record.size for record in graph.parameters()}
