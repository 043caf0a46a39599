"""``python -m benchmarks.plan_floor``: the part of W7's plan that any plan
of the same engine must do, against networkx's topological sort.

W7's target is a plan within 5× of networkx's sort of the same graph. Before
a plan can make a single view, step or gradient buffer, it has to check the
graph, order it, turn its synapses into slots, and read and copy every
weight into the one buffer the optimizer updates. Those phases are timed
here on their own, each repetition on a freshly built graph (its arrays
made at build time, as a user's are), with the whole plan of another fresh
graph beside them: the floor over the sort says how much of the 5× is left
for everything else.
"""

from __future__ import annotations

import argparse
import gc
import operator
import statistics
import sys
import time

import networkx as nx
import numpy as np

from . import models
from .workloads import get

__all__ = ["floor", "main"]

_SRC, _DST = operator.attrgetter("src"), operator.attrgetter("dst")
_ARRAY = operator.attrgetter("parameter_array")


def floor(graph) -> tuple[dict[str, float], np.ndarray]:
    """Seconds per phase of what any plan of ``graph`` does first, and the
    buffer of every weight and bias it copied (the garbage collector off, as
    the plan has it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        marks = [time.perf_counter()]
        graph.validate()
        order = graph.topological_order
        marks.append(time.perf_counter())
        slots = dict(zip(order, range(len(order))))
        synapses = graph.synapses
        m = len(synapses)
        src = np.fromiter(map(slots.__getitem__, map(_SRC, synapses)), np.intp, m)
        dst = np.fromiter(map(slots.__getitem__, map(_DST, synapses)), np.intp, m)
        by_dst = np.argsort(dst, kind="stable")
        src, dst = src[by_dst], dst[by_dst]
        marks.append(time.perf_counter())
        inputs = set(graph.inputs)
        dense = [graph.nodes[name] for name in order if name not in inputs]
        arrays = list(map(_ARRAY, synapses + dense))
        values = np.empty(sum(a.size for a in arrays), graph.dtype)
        np.concatenate(arrays, axis=None, out=values)
        marks.append(time.perf_counter())
    finally:
        if was_enabled:
            gc.enable()
    names = ("validate and order", "slot columns", "read and copy weights")
    return dict(zip(names, np.diff(marks).tolist())), values


def main(argv=None) -> int:
    w7 = get("W7")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan_floor", description=__doc__)
    parser.add_argument("--nodes", type=int, default=w7.sizes[-1], help="W7's largest graph by default")
    parser.add_argument("--width", type=int, default=w7.width, help="W7's width by default")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {}
    for _ in range(args.reps):
        gc.collect()
        g = models.build_scaling(args.nodes, args.width)
        phases, _ = floor(g)
        phases["floor"] = sum(phases.values())
        structure = g.structure  # a copy, made before the clock starts (as the suite's W7 does)
        start = time.perf_counter()
        list(nx.topological_sort(structure))
        phases["networkx sort"] = time.perf_counter() - start
        del g, structure
        gc.collect()
        g = models.build_scaling(args.nodes, args.width)
        start = time.perf_counter()
        g.plan  # noqa: B018 - compiling is the point
        phases["whole plan"] = time.perf_counter() - start
        del g
        for name, seconds in phases.items():
            times.setdefault(name, []).append(seconds)
    sort = times["networkx sort"]
    print(f"W7's random DAG of {args.nodes:,} nodes, width {args.width}: {args.reps} fresh graphs per column")
    print("| phase | ms (median) | min-max | / sort (median) |")
    print("|---|---|---|---|")
    for name, seconds in times.items():
        ratio = statistics.median(s / q for s, q in zip(seconds, sort))
        print(f"| {name} | {1e3 * statistics.median(seconds):.1f} | {1e3 * min(seconds):.1f}-{1e3 * max(seconds):.1f}"
              f" | {ratio:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
