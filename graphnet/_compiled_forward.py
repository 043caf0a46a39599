"""A plan's inference forward in one compiled call, for calls of a few rows.

A ``predict`` of one row pays more for its numpy calls (two or three per
node, about a microsecond each) than for their arithmetic. Where numba is
installed and the graph holds only what :func:`graphnet._kernels.dag_forward`
computes (plain inputs on the CPU; dense nodes with graphnet's own
``linear``, ``relu``, ``sigmoid``, ``tanh`` or ``softmax``; at most
:data:`MOST_ARRAYS` inputs and nodes asked), a call of fewer than
:data:`SMALL_ROWS` rows runs the whole forward in that one call instead.
It reads the weights where the plan's parameter store keeps them, so
nothing is copied and training reaches it at once.

Each row is one vector-matrix product per synapse, so a row's outputs do
not depend on the rows beside it. They may differ from the matrix-product
path's in the last bits, as BLAS's own results for different row counts
do. From :data:`SMALL_ROWS` rows on, BLAS's matrix products are faster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from . import _kernels
from ._validation import check_finite
from .backend import ACTIVATIONS_MODULE
from .errors import ShapeError

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["SMALL_ROWS", "MOST_ARRAYS", "KEPT_PROGRAMS", "Program", "forward", "program", "run"]

#: Calls of fewer rows run the compiled forward (measured on W8's net: at 8
#: rows both paths cost the same).
SMALL_ROWS = 8

#: The kernel is compiled once per number of inputs and of outputs asked, in
#: a time that grows with them: about 5 s up to 64 (on the benchmark
#: machine), 10 s at 200, 46 s at 800 outputs and over two minutes at 800
#: inputs. A graph with more inputs, or a call asking for more nodes, runs
#: the numpy passes.
MOST_ARRAYS = 64

#: Programs a plan keeps, one per set of nodes asked for (``predict(outputs=)``).
KEPT_PROGRAMS = 32


class Program(NamedTuple):
    """What :func:`graphnet._kernels.dag_forward` runs for a plan and the names asked."""

    codes: np.ndarray  # the kernel's program
    names: tuple[str, ...]  # the nodes asked, in the order asked
    inputs: tuple[str, ...]  # the inputs, in the kernel's order
    dense: tuple[str, ...]  # the dense nodes asked, in the order of the kernel's outputs
    sizes: tuple[int, ...]  # and their sizes
    copied: tuple[str, ...]  # the inputs asked (their data is copied)
    columns: tuple  # each input's column names, for the message about NaN


def program(plan: Plan, names: tuple[str, ...]) -> Program | None:
    """What the compiled forward runs to compute ``names`` with ``plan``'s
    weights, or None where the kernel cannot run the plan. Made once per
    plan and names, and kept for :data:`KEPT_PROGRAMS` sets of names: a
    server asked for ever new sets of nodes forgets the ones it kept and
    starts again (a program costs a pass over the plan's steps to make)."""
    programs = plan.programs
    made = programs.get(names, False)
    if made is False:
        made = _program(plan, names)
        if len(programs) >= KEPT_PROGRAMS:
            programs.clear()  # one step, safe beside other threads' lookups
        programs[names] = made
    return made


def _program(plan: Plan, names: tuple[str, ...]) -> Program | None:
    if plan.xp is not np or not plan.plain_inputs or plan.dtype.kind != "f" or len(plan.inputs) > MOST_ARRAYS:
        return None
    kernel_slot = {slot: i for i, (_, slot) in enumerate(plan.inputs)}  # inputs first, then the dense nodes
    dense = tuple(name for name in names if plan.slots[name] not in kernel_slot)
    if not dense or len(dense) > MOST_ARRAYS:
        return None
    out = {name: i for i, name in enumerate(dense)}
    offsets = plan.store.offsets_as_given  # each dense node's weights, then its bias (the plan's order)
    codes, at = [len(plan.steps)], 0
    for step in plan.steps:
        activation, edges = step.activation, step.edges
        code = _kernels.ACTIVATION_CODES.get(activation.name)
        if code is None or type(activation).__module__ != ACTIVATIONS_MODULE or step.gathers:
            return None
        codes += [step.size, code, offsets[at + len(edges)], len(edges)]
        for i, edge in enumerate(edges):
            codes += [kernel_slot[edge[0]], offsets[at + i]]
        codes.append(out.get(step.name, -1))
        at += len(edges) + 1
        kernel_slot[step.slot] = len(kernel_slot)
    inputs = tuple(name for name, _ in plan.inputs)
    sizes = tuple(plan.sizes[plan.slots[name]] for name in dense)
    copied = tuple(name for name in names if name in inputs)
    columns = tuple(plan.input_columns[name] for name in inputs)
    return Program(np.array(codes, dtype=np.int64), names, inputs, dense, sizes, copied, columns)


def run(made: Program, values: np.ndarray, inputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...] | None:
    """The dense nodes ``made`` computes, in its order, for ``inputs`` (every
    input's checked data as C-contiguous arrays of ``values``' dtype, in the
    program's order) with the weights in ``values``; None without numba.

    Raises
    ------
    ShapeError
        For an input holding NaN or inf, as ``predict`` says.
    """
    for array in inputs:
        if not array.flags.writeable:  # the kernel is typed for writeable arrays
            inputs = tuple(a if a.flags.writeable else a.copy() for a in inputs)
            break
    rows, dtype = inputs[0].shape[0], values.dtype
    outs = tuple([np.empty((rows, size), dtype) for size in made.sizes])
    bad = _kernels.dag_forward(inputs, outs, values, made.codes)
    if bad is None:
        return None
    if bad >= 0:
        name = made.inputs[bad]
        check_finite(inputs[bad], "input", name, made.columns[bad])  # raises, counting them
        raise ShapeError(f"input {name!r} contains NaN or inf")
    return outs


def forward(made: Program, values: np.ndarray, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """The activations of the nodes ``made`` asks for (an input's: a copy of
    its data) for ``arrays`` (as :func:`run` takes them, by name) with the
    weights in ``values``; None without numba, so the caller runs its own."""
    outs = run(made, values, tuple(map(arrays.__getitem__, made.inputs)))
    if outs is None:
        return None
    results = dict(zip(made.dense, outs))
    if made.copied:
        results.update((name, arrays[name].copy()) for name in made.copied)
        results = {name: results[name] for name in made.names}
    return results
