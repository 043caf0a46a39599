"""Serving: ``g.compile_predict()``, a snapshot of a graph for small calls.

``predict`` itself runs a call of fewer than :data:`SMALL_ROWS` rows as one
compiled call where it can (:mod:`graphnet._compiled_forward`: numba
installed, plain inputs, dense nodes with the activations ``linear``,
``relu``, ``sigmoid``, ``tanh`` and ``softmax``, on the CPU), about the
matrix products alone. :func:`compile_predict` is for a model that answers
many small requests: it refuses, by name and at once, a graph that would
keep calls off that path, and takes a snapshot of the graph (structure and
weights), so its calls skip what ``predict`` does for a graph that may
change (the lock, the plan's lookup): see ``python -m benchmarks``, workload
W8. A call of :data:`SMALL_ROWS` rows or more runs ``predict``'s path on the
snapshot, whose matrix products are faster there.

The snapshot does not follow the graph: train or edit it, then compile
again. It is read-only, so one compiled forward serves any number of threads
at once without a lock. Inputs are checked as ``predict`` checks them (names,
shapes, real numbers, NaN and inf). Without numba the same steps run as
numpy calls.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from . import _compiled_forward, _kernels
from ._compiled_forward import SMALL_ROWS
from ._data import as_inputs, common_rows, plain_features
from ._text import preview
from ._validation import as_dtype, check_finite, check_int
from .errors import GraphError, ShapeError
from .inference import DEFAULT_CHUNK
from .plan import compile_plan

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["compile_predict", "CompiledPredict", "SMALL_ROWS"]


def compile_predict(graph: Graph, batch_size: int | None = None) -> CompiledPredict:
    """The graph's inference forward compiled for small calls (serving).

    A snapshot of the graph as it is now (later training or edits do not
    reach it); call the result as ``predict`` is called. Compiling costs
    about a second the first time in a process for a number of inputs and
    outputs (numba caches it on disk); each call then costs little more than
    its matrix products. Use it where one model answers many small requests;
    ``predict`` for big batches, dask arrays, frames with categories, devices.

    Parameters
    ----------
    batch_size : int, optional
        Rows per chunk (4,096 by default): memory grows with the chunk, not
        with the rows of a call.

    Returns
    -------
    CompiledPredict

    Raises
    ------
    GraphError
        For a graph that cannot run (as ``predict`` says), one on a device, an
        input that transforms its data (categories, normalize, missing), or a
        node whose activation is not one of ``linear``, ``relu``, ``sigmoid``,
        ``tanh``, ``softmax``; each names the node.

    Examples
    --------
    >>> import numpy as np, graphnet as gn
    >>> g = gn.Sequential([gn.Input(3), gn.Dense(8, activation="relu"), gn.Dense(2, activation="softmax")], seed=0)
    >>> serve = g.compile_predict()
    >>> x = np.ones((1, 3), dtype=np.float32)
    >>> bool(np.allclose(serve(x), g.predict(x), atol=1e-6))
    True
    """
    chunk = DEFAULT_CHUNK if batch_size is None else check_int(batch_size, "compile_predict: batch_size")
    if graph.device != "cpu":
        raise GraphError(f"compile_predict: graph {graph.name!r} is on {graph.device!r}; the compiled forward "
                         "runs on the CPU (use predict on a device, or g.to('cpu') first)")
    with graph.lock.reading():  # the structure and weights of one moment
        compile_plan(graph)  # refuses a graph that cannot run, and draws weights still waiting
        frozen = copy.deepcopy(graph)
    return CompiledPredict(frozen, chunk)


class CompiledPredict:
    """A graph's inference forward, compiled: made by ``Graph.compile_predict``
    (see :func:`compile_predict`), not constructed directly.

    Parameters
    ----------
    graph : Graph
        The snapshot it runs: a copy of the graph, not the graph itself.
    batch_size : int
        Rows per chunk, kept as :attr:`batch_size`.

    Attributes
    ----------
    inputs : list of str
        The input names, in the graph's order.
    outputs : list of str
        The output names, in the graph's order.
    batch_size : int
        Rows per chunk.
    compiled : bool
        Whether numba runs it (False: the same steps as numpy calls).
    """

    def __init__(self, graph: Graph, batch_size: int):
        self._graph = graph
        self.inputs, self.outputs, self.batch_size = list(graph.inputs), list(graph.outputs), batch_size
        self.dtype = graph.dtype
        for name in self.inputs:
            if graph.nodes[name].transforms:
                raise GraphError(f"compile_predict: input {name!r} transforms its data (categories, normalize or "
                                 "missing); the compiled forward takes plain inputs (use predict)")
        for name in graph.topological_order:
            node = graph.nodes[name]
            if name not in self.inputs and node.activation.name not in _kernels.ACTIVATION_CODES:
                raise GraphError(
                    f"compile_predict: node {name!r} has the activation {node.activation.name!r}; the compiled "
                    f"forward computes {', '.join(_kernels.ACTIVATION_CODES)} (use predict for this graph)"
                )
        plan = compile_plan(graph)
        self._program = _compiled_forward.program(plan, plan.output_names)
        self._values = plan.store.values
        self._one = (self.inputs[0], graph.nodes[self.inputs[0]].size) if len(self.inputs) == 1 else None
        warm = tuple(np.zeros((1, graph.nodes[name].size), self.dtype) for name in self.inputs)
        self.compiled = (self._program is not None
                         and _compiled_forward.run(self._program, self._values, warm) is not None)

    def __repr__(self) -> str:
        how = "numba" if self.compiled else "numpy"
        return (f"<CompiledPredict of graph {self._graph.name!r}: inputs {preview(self.inputs)}, outputs "
                f"{preview(self.outputs)}, {how}>")

    def __call__(self, x):
        """Outputs for ``x`` as ``predict(x)`` gives them: an array for a
        one-output graph, else a dict name -> array.

        Parameters
        ----------
        x : ndarray of shape (n, size), or dict input name -> ndarray
            The inputs, as for ``predict``.

        Raises
        ------
        ShapeError
            For data that does not fit the graph, as ``predict`` says.
        """
        one = self._one
        plain = one is not None and type(x) is np.ndarray and x.dtype.kind in "biuf"
        if plain:  # the common call, in fewer steps
            name, size = one
            given = plain_features(x, size, name)
            arrays, rows = (as_dtype(given, self.dtype),), given.shape[0]
        else:
            given = as_inputs(self._graph, x)  # checked, C-contiguous, of the graph's dtype
            arrays, rows = tuple(map(given.__getitem__, self.inputs)), common_rows(given)
        outs = None
        if self.compiled and 0 < rows < SMALL_ROWS:
            try:
                outs = _compiled_forward.run(self._program, self._values, arrays)
            except ShapeError:  # NaN or inf, said of the data as given: finite there is too large for the dtype
                if plain:
                    check_finite(arrays[0], "input", name, self._program.columns[0], given=given)
                raise
        if outs is not None:
            return outs[0] if len(outs) == 1 else dict(zip(self.outputs, outs))
        # Predict's path on the snapshot: BLAS's matrix products win from SMALL_ROWS rows on.
        return self._graph.predict(given, batch_size=None if rows <= self.batch_size else self.batch_size)
