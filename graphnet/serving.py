"""Serving: ``g.compile_predict()``, a graph's inference forward compiled for
small calls.

``predict`` pays a fixed cost on every call (its checks, the chunk loop, a
numpy call or two per node), about 20 µs for a one-row call of a
784-256-128-10 net, more than the arithmetic. :func:`compile_predict` takes a
snapshot of the graph (structure and weights) and runs its whole forward in
one compiled call (numba; the same steps in numpy without it), so a served
model pays about the matrix products alone: see ``python -m benchmarks``,
workload W8. That call computes a row at a time (BLAS's vector-matrix
product), which is what small calls want; a call of :data:`SMALL_ROWS` rows
or more runs ``predict``'s path on the snapshot, whose matrix products are
faster there.

The snapshot does not follow the graph: train or edit it, then compile
again. It is read-only, so one compiled forward serves any number of threads
at once without a lock. Inputs are checked as ``predict`` checks them (names,
shapes, real numbers, NaN and inf). What it computes: dense nodes with the
activations ``linear``, ``relu``, ``sigmoid``, ``tanh`` and ``softmax``, from
plain inputs, on the CPU; anything else is refused by name at compile time
(``predict`` runs every graph).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from . import _kernels
from ._data import as_inputs, check_finite, common_rows, plain_features
from ._validation import check_int
from .errors import GraphError, ShapeError
from .inference import DEFAULT_CHUNK
from .plan import compile_plan

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["compile_predict", "CompiledPredict", "SMALL_ROWS"]

#: Calls of fewer rows run the compiled forward, a vector-matrix product per
#: row; from here on the matrix products of ``predict``'s path are faster
#: (measured on W8's net: 8 rows cost the same either way).
SMALL_ROWS = 8


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
        slots = {name: i for i, name in enumerate(self.inputs)}
        params, program, offset = [], [0], 0
        self._sizes = [graph.nodes[name].size for name in self.outputs]
        self._steps = []  # the same program as Python tuples (activation objects), for the numpy version
        for name in graph.topological_order:
            node = graph.nodes[name]
            if name in slots:
                continue
            code = _kernels.ACTIVATION_CODES.get(node.activation.name)
            if code is None:
                raise GraphError(
                    f"compile_predict: node {name!r} has the activation {node.activation.name!r}; the compiled "
                    f"forward computes {', '.join(_kernels.ACTIVATION_CODES)} (use predict for this graph)"
                )
            bias = node.bias
            edges = []
            for synapse in graph.incoming(name):
                weight = synapse.weight
                edges.append((slots[synapse.src], offset, weight.shape))
                params.append(weight.ravel())
                offset += weight.size
            params.append(bias.ravel())
            bias_at, offset = offset, offset + bias.size
            out = self.outputs.index(name) if name in self.outputs else -1
            program += [node.size, code, bias_at, len(edges)]
            for src, start, _ in edges:
                program += [src, start]
            program.append(out)
            self._steps.append((node.size, node.activation, bias_at, edges, out))
            slots[name] = len(slots)
        program[0] = len(self._steps)
        self._params = np.ascontiguousarray(np.concatenate(params) if params else np.zeros(0), dtype=self.dtype)
        self._params.setflags(write=False)
        self._program = np.array(program, dtype=np.int64)
        self._one = (self.inputs[0], graph.nodes[self.inputs[0]].size) if len(self.inputs) == 1 else None
        warm = tuple(np.zeros((1, graph.nodes[n].size), self.dtype) for n in self.inputs)
        self.compiled = _kernels.dag_forward(warm, tuple(np.empty((1, s), self.dtype) for s in self._sizes),
                                             self._params, self._program) is not None

    def __repr__(self) -> str:
        how = "numba" if self.compiled else "numpy"
        return (f"<CompiledPredict of graph {self._graph.name!r}: inputs {self.inputs}, outputs {self.outputs}, "
                f"{how}>")

    def __call__(self, x):
        """Outputs for ``x`` as ``predict(x)`` gives them: an array for a
        one-output graph, else a dict name -> array.

        Raises
        ------
        ShapeError
            For data that does not fit the graph, as ``predict`` says.
        """
        one = self._one
        if one is not None and type(x) is np.ndarray:  # the common call, in fewer steps
            name, size = one
            arrays = (np.ascontiguousarray(plain_features(x, size, name), dtype=self.dtype),)
        else:
            given = as_inputs(self._graph, x)
            common_rows(given)
            arrays = tuple(given[name] for name in self.inputs)
        rows = arrays[0].shape[0]
        if rows >= SMALL_ROWS:  # BLAS's matrix products win from here: predict's path, on the snapshot
            given = arrays[0] if one is not None else dict(zip(self.inputs, arrays))
            return self._graph.predict(given, batch_size=None if rows <= self.batch_size else self.batch_size)
        outs = tuple(np.empty((rows, size), dtype=self.dtype) for size in self._sizes)
        chunk = self.batch_size
        for start in range(0, rows, chunk):
            stop = min(start + chunk, rows)
            part = arrays if rows <= chunk else tuple(a[start:stop] for a in arrays)
            into = outs if rows <= chunk else tuple(o[start:stop] for o in outs)
            bad = _kernels.dag_forward(part, into, self._params, self._program)
            if bad is None:
                for name, array in zip(self.inputs, part):
                    check_finite(array, "input", name)
                self._numpy_forward(part, into)
            elif bad >= 0:
                check_finite(part[bad], "input", self.inputs[bad])  # raises, counting them
                raise ShapeError(f"input {self.inputs[bad]!r} contains NaN or inf")
        if len(outs) == 1:
            return outs[0]
        return dict(zip(self.outputs, outs))

    def _numpy_forward(self, inputs: tuple, outs: tuple) -> None:
        """The program's steps as numpy calls (where numba is missing)."""
        values, params = list(inputs), self._params
        for size, activation, bias, edges, out in self._steps:
            z = np.zeros((len(inputs[0]), size), dtype=self.dtype)
            for src, start, shape in edges:
                z += values[src] @ params[start:start + shape[0] * shape[1]].reshape(shape)
            z += params[bias:bias + size]
            values.append(activation.forward(z))
            if out >= 0:
                outs[out][:] = values[-1]
