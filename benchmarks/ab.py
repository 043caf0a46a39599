"""``python -m benchmarks.ab OTHER_CHECKOUT``: this checkout's graphnet against
another's, on the CPU, in one process.

A change to the engine must not make the numpy path slower. The suite's
graphnet/reference ratios say so only through a third party (the reference
trainer) and runs taken minutes apart; on a shared machine that is noisy.
Here both versions of graphnet are imported side by side (the other one as
the package ``graphnet_other``), build the same nets from the same seed,
and take turns one repetition each, order swapped every repetition; the
figure per workload is the median of the per-repetition ratios this/other
(below 1: this checkout is faster). Both must give the same weights.

``--only W7`` times the phases of W7's largest random DAG instead: each
repetition builds it afresh with each checkout, in turn, and times
compiling its plan, the first training step and the next one.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import models as bench_models
from .runner import interleave
from .workloads import get, make_data

__all__ = ["load_other", "main"]


def load_other(checkout: Path):
    """The ``graphnet`` package of ``checkout``, imported as ``graphnet_other``
    (every import inside graphnet is relative, so it keeps to its own files)."""
    package = Path(checkout) / "graphnet"
    spec = importlib.util.spec_from_file_location("graphnet_other", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["graphnet_other"] = module
    spec.loader.exec_module(module)
    return module


def _mlp(gn, sizes, output):
    layers = [gn.Input(sizes[0]), *[gn.Dense(n, activation="relu") for n in sizes[1:-1]],
              gn.Dense(sizes[-1], activation=output)]
    return gn.Sequential(layers, seed=0, name="bench")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__)
    parser.add_argument("other", type=Path, help="the other checkout (its graphnet/ folder is loaded)")
    parser.add_argument("--only", default="W1,W2,W3,W4,W5", help="workloads, W1-W5 and W7")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    # numba caches a kernel beside its source, under the name of the module that
    # compiled it: cached as graphnet_other's, the other checkout's kernels would
    # fail to load (and fall back to numpy) the next time it is imported as
    # graphnet. This run's caches go to a folder of its own.
    cache = tempfile.TemporaryDirectory(prefix="graphnet-ab-numba-")  # removed on return
    if "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_CACHE_DIR", cache.name)
    import graphnet as this

    other = load_other(args.other)
    rows = []
    for name in [n.strip().upper() for n in args.only.split(",") if n.strip()]:
        workload = get(name, args.quick)
        if workload.kind == "scaling":
            rows += _scaling(this, other, workload, args.reps)
            continue
        data = make_data(workload)
        models = {"this": _mlp(this, workload.sizes, workload.output),
                  "other": _mlp(other, workload.sizes, workload.output)}
        # The same starting weights (the other's): a changed default
        # initialisation is not the engine's speed.
        models["this"].set_weights(models["other"].get_weights())
        if workload.kind == "predict":
            x = data["x"]
            runs = {k: (lambda m=m: m.predict(x, batch_size=workload.chunk)) for k, m in models.items()}
            for run in runs.values():
                run()  # warm-up
        else:
            x, y = data["x"], data["y"]
            fit = dict(epochs=workload.epochs_per_rep, batch_size=workload.batch, verbose=0)
            for gn in (this, other):  # warm-up on throwaway nets
                _mlp(gn, workload.sizes, workload.output).fit(x[: 8 * workload.batch], y[: 8 * workload.batch],
                                                              **{**fit, "epochs": 1})
            runs = {k: (lambda m=m: m.fit(x, y, **fit)) for k, m in models.items()}
        times = interleave(runs, args.reps)
        ratio = statistics.median(a / b for a, b in zip(times["this"], times["other"]))
        same = all(np.array_equal(a, models["other"].get_weights()[k])
                   for k, a in models["this"].get_weights().items())
        rows.append((name, workload.unit, statistics.median(times["this"]), statistics.median(times["other"]),
                     ratio, min(a / b for a, b in zip(times["this"], times["other"])),
                     max(a / b for a, b in zip(times["this"], times["other"])), same))
        print(f"{name}: this/other {ratio:.3f}", file=sys.stderr, flush=True)
    print("| workload | unit | this s | other s | this / other (median) | min | max | same weights |")
    print("|---|---|---|---|---|---|---|---|")
    for name, unit, a, b, ratio, low, high, same in rows:
        print(f"| {name} | {unit} | {a:.3f} | {b:.3f} | {ratio:.3f} | {low:.3f} | {high:.3f} | {same} |")
    cache.cleanup()
    return 0


def _scaling(this, other, workload, reps: int) -> list[tuple]:
    """Rows for W7's largest graph: plan, first step and next step, this/other."""
    nodes, phases = workload.sizes[-1], ("plan", "first step", "next step")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((workload.batch, workload.width), dtype=np.float32)
    y = rng.standard_normal((workload.batch, workload.width), dtype=np.float32)
    for package in (this, other):  # warm-up: the kernels compiled, numba loaded
        bench_models.build_scaling(workload.sizes[0], workload.width, package=package).train_step(x, y)
    times = {side: {phase: [] for phase in phases} for side in ("this", "other")}
    weights = {}
    for rep in range(reps):
        sides = [("this", this), ("other", other)]
        for side, package in sides if rep % 2 == 0 else sides[::-1]:
            gc.collect()
            g = bench_models.build_scaling(nodes, workload.width, package=package)
            marks = [time.perf_counter()]
            g.plan  # noqa: B018 - compiling is the point
            marks.append(time.perf_counter())
            for _ in range(2):
                g.train_step(x, y)
                marks.append(time.perf_counter())
            for phase, start, stop in zip(phases, marks, marks[1:]):
                times[side][phase].append(stop - start)
            weights[side] = g.get_weights()
            del g
    same = all(np.array_equal(a, weights["other"][k]) for k, a in weights["this"].items())
    rows = []
    for phase in phases:
        a, b = times["this"][phase], times["other"][phase]
        ratios = [p / q for p, q in zip(a, b)]
        rows.append((f"{workload.name} {phase}", f"{nodes:,} nodes", statistics.median(a), statistics.median(b),
                     statistics.median(ratios), min(ratios), max(ratios), same))
        print(f"{workload.name} {phase}: this/other {statistics.median(ratios):.3f}", file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
