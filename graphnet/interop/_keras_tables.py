"""Keras's preprocessing layers -> the settings of graphnet's inputs.

* ``Normalization`` directly after an input: the input normalises, with
  Keras's statistics and Keras's rule ``(x - mean) / max(sqrt(variance),
  1e-7)`` (its ``std`` is stored as that maximum).
* ``StringLookup`` / ``IntegerLookup`` directly after an input, with one
  OOV index and no mask token (Keras's defaults): the input becomes
  categorical with the lookup's vocabulary; Keras's index ``i`` is
  graphnet's code ``i`` (0 for out-of-vocabulary values). With
  ``output_mode="int"`` the codes feed an ``Embedding``; with
  ``"one_hot"`` the input is read as its one-hot columns.
* ``Embedding`` after such a lookup, or directly after an integer input
  (Keras's index ``i`` is then category ``i``, code ``i + 1``): a linear
  node without bias whose synapse from the categorical input is the table.

Anything else about these layers (masking, inverted lookups, vocabularies
that are files, several OOV indices) is refused naming the layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Codes", "TABLE_LAYERS", "EPSILON"]

#: ``keras.config.epsilon()``: the least ``std`` a Keras Normalization divides by.
EPSILON = 1e-7


@dataclass(frozen=True)
class Codes:
    """The integer output of a lookup: the codes of categorical input ``node``."""

    node: str


def _bare_input(call, what: str) -> str:
    """The input node a preprocessing layer reads, refused unless it reads a
    graph input directly and nothing else reads that input."""
    value = call.inputs[0]
    builder = call.builder
    if not (isinstance(value, str) and builder.nodes[value].kind == "input" and call.exclusive[0]
            and builder.nodes[value].settings is None):
        raise call.fail(f"reads {value!r}, not an Input read by nothing else; graphnet {what} the data of "
                        "an input, so place this layer directly after its keras.Input")
    return value


def _normalization(call):
    config, builder = call.config, call.builder
    node = _bare_input(call, "normalises")
    if config.get("invert"):
        raise call.fail("inverts a normalisation (invert=True); graphnet normalises inputs only")
    if config.get("axis", -1) not in (-1, 1, [-1], [1], (-1,), (1,)):
        raise call.fail(f"normalises over axis {config.get('axis')}; only the feature axis (-1) is supported")
    size = builder.nodes[node].size
    if call.arrays:
        mean, variance = call.arrays[0], call.arrays[1]
    elif config.get("mean") is not None and config.get("variance") is not None:
        mean, variance = config["mean"], config["variance"]
    else:  # architecture only: graphnet's adapt learns them
        builder.nodes[node].settings = {"normalize": True}
        return node
    try:
        mean = np.broadcast_to(np.asarray(mean, np.float64).reshape(-1), (size,))
        variance = np.broadcast_to(np.asarray(variance, np.float64).reshape(-1), (size,))
    except ValueError:
        raise call.fail(f"has statistics of shapes {np.shape(mean)} and {np.shape(variance)}, "
                        f"expected ({size},)") from None
    std = np.maximum(np.sqrt(variance), EPSILON)  # Keras's rule, kept exactly
    builder.nodes[node].settings = {"normalize": True, "mean": mean.tolist(), "std": std.tolist()}
    return node


def _lookup(call):
    config, builder = call.config, call.builder
    node = _bare_input(call, "looks up categories in")
    problems = []
    if config.get("invert"):
        problems.append("inverts the lookup (invert=True)")
    if config.get("num_oov_indices", 1) != 1:
        problems.append(f"has {config.get('num_oov_indices')} OOV indices (graphnet has one, code 0)")
    if config.get("mask_token") is not None:
        problems.append("has a mask token")
    mode = config.get("output_mode", "int")
    if mode not in ("int", "one_hot"):
        problems.append(f"has output_mode={mode!r} (graphnet takes 'int' into an Embedding, or 'one_hot')")
    vocabulary = config.get("vocabulary")
    if not isinstance(vocabulary, list) or not vocabulary:
        problems.append("keeps its vocabulary outside its config (adapted, or in a file); give "
                        "vocabulary=[...] as a list")
    if problems:
        raise call.fail("; ".join(problems))
    if builder.nodes[node].size != 1:
        raise call.fail(f"reads {builder.nodes[node].size} columns; graphnet's categorical inputs read one")
    builder.nodes[node].settings = {"categories": list(vocabulary)}
    builder.nodes[node].size = len(vocabulary) + 1
    return node if mode == "one_hot" else Codes(node)


def _embedding(call):
    config, builder, value = call.config, call.builder, call.inputs[0]
    if config.get("mask_zero"):
        raise call.fail("masks index 0 (mask_zero=True); graphnet has no masking")
    rows, width = config.get("input_dim"), config.get("output_dim")
    if not isinstance(rows, int) or not isinstance(width, int) or rows < 1 or width < 1:
        raise call.fail(f"has input_dim={rows!r} and output_dim={width!r}; expected positive integers")
    table = None
    if call.arrays is not None:
        if len(call.arrays) != 1 or call.arrays[0].shape != (rows, width):
            raise call.fail(f"has weight arrays of shapes {[a.shape for a in call.arrays]}, expected "
                            f"[({rows}, {width})]")
        table = call.arrays[0].astype(np.float64)
    if isinstance(value, Codes):
        node = value.node
        codes = builder.nodes[node].size
        if rows < codes:
            raise call.fail(f"has {rows} rows for the {codes} indices of its lookup; Keras would fail on the last")
        weight = None if table is None else table[:codes]
    else:
        if not (isinstance(value, str) and builder.nodes[value].kind == "input" and call.exclusive[0]
                and builder.nodes[value].settings is None and builder.nodes[value].size == 1):
            raise call.fail(f"reads {value!r}; graphnet takes an Embedding after a StringLookup or "
                            "IntegerLookup, or directly after a one-column integer keras.Input")
        node = value
        builder.nodes[node].settings = {"categories": list(range(rows))}
        builder.nodes[node].size = rows + 1
        # code 0 (anything outside 0..input_dim-1, which Keras refuses) gets a zero row
        weight = None if table is None else np.vstack([np.zeros((1, width)), table])
    return builder.dense_from(call.name, node, weight, width, None, use_bias=False, activation="linear",
                              trainable=call.config.get("trainable", True) is not False, origin=call.where)


#: Keras layer class names -> converters, added to ``_keras_layers.LAYERS``.
TABLE_LAYERS = {
    "Normalization": _normalization,
    "StringLookup": _lookup,
    "IntegerLookup": _lookup,
    "Embedding": _embedding,
}
