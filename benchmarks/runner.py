"""Running the workloads: graphnet against the numpy reference in this process,
PyTorch and scikit-learn each in a subprocess of their own.

Timing rules (see ENGINE-NOTES: this machine is noisy):

* data is made before any timing; a warm-up on throwaway instances first;
* graphnet and the reference alternate, one repetition each, the order
  swapped every repetition; their ratio is the median of the per-repetition
  ratios, never a ratio of absolute times taken minutes apart;
* memory is measured in separate, untimed runs (``tracemalloc`` sees every
  numpy buffer but slows Python down while it traces).
"""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import networkx as nx
import numpy as np

from graphnet import _kernels as kernels

from . import machine, models
from .reference import ReferenceMLP
from .workloads import DAG, MLP, Latency, Predict, Scaling, get, make_data

__all__ = ["run_workload", "interleave", "peak_growth"]

log = logging.getLogger("benchmarks")

ROOT = Path(__file__).resolve().parent.parent


def interleave(runs: dict, reps: int) -> dict[str, list[float]]:
    """Time ``reps`` repetitions of each callable in ``runs``, alternating them and
    swapping their order every repetition. A callable that returns a number
    (a :class:`Server` repetition) reports its own time."""
    names = list(runs)
    times = {name: [] for name in names}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            gc.collect()
            time.sleep(_SETTLE)
            start = time.perf_counter()
            reported = runs[name]()
            elapsed = time.perf_counter() - start
            times[name].append(reported if isinstance(reported, float) else elapsed)
    return times


# Idle BLAS/OpenMP threads spin for a while after their last job (OpenBLAS: up to
# ~0.1 s); a pause lets them sleep before the other process runs its repetition.
_SETTLE = 0.2


class Server:
    """A worker in ``--serve`` mode: one repetition per request, run while this
    process waits, so PyTorch's repetitions interleave with graphnet's."""

    def __init__(self, library: str, name: str, quick: bool, threads: int, extra: tuple[str, ...] = ()):
        command = [sys.executable, "-m", f"benchmarks.{library}_worker", name, "--serve", *extra]
        if quick:
            command.append("--quick")
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(command, cwd=ROOT, env=machine.thread_env(threads), text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self.info = self._read()
        self.variants = self.info.pop("ready", [])

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self._stderr.seek(0)
            lines = self._stderr.read().strip().splitlines()
            return {"error": lines[-1] if lines else f"exit {self.process.returncode}"}
        return json.loads(line)

    def run(self, variant: str) -> float:
        self.process.stdin.write(f"run {variant}\n")
        self.process.stdin.flush()
        answer = self._read()
        if "seconds" not in answer:
            raise RuntimeError(f"{variant} worker failed: {answer}")
        return float(answer["seconds"])

    def close(self) -> dict:
        """Stop the worker; its setup info and memory figure."""
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            self.info.update(self._read())
            self.process.wait(timeout=60)
        self._stderr.close()
        return self.info


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of the per-repetition ratios ``a[i] / b[i]``."""
    return statistics.median(x / y for x, y in zip(a, b))


def peak_growth(fn) -> int:
    """Bytes allocated (numpy buffers included) at the peak of ``fn()``, beyond
    what was allocated when it started."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base


def worker(library: str, name: str, quick: bool, threads: int, reps: int | None) -> dict:
    """One workload in ``python -m benchmarks.<library>_worker``; its JSON answer."""
    module = {"torch": "torch", "sklearn": "sklearn"}[library]
    if importlib.util.find_spec(module) is None:
        return {"skipped": f"{module} is not installed (pip install -e '.[bench]')"}
    command = [sys.executable, "-m", f"benchmarks.{library}_worker", name]
    if quick:
        command.append("--quick")
    if reps:
        command += ["--reps", str(reps)]
    done = subprocess.run(command, cwd=ROOT, env=machine.thread_env(threads),
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ workloads
def run_workload(name: str, quick: bool, frameworks, threads: int, reps: int | None) -> dict:
    """Every measurement of one workload, as a JSON-safe dict."""
    workload = get(name, quick)
    reps = reps or workload.reps
    log.info("%s (%s): %d repetitions", name, workload.title, reps)
    runner = {"mlp": _mlp, "predict": _predict, "dag": _dag, "scaling": _scaling,
              "latency": _latency}[workload.kind]
    result = {"workload": name, "title": workload.title, "unit": workload.unit, "reps": reps}
    # PyTorch's repetitions take turns with graphnet's (see Server).
    server, extra = None, {}
    if "torch" in frameworks and workload.kind not in ("scaling", "latency"):
        if importlib.util.find_spec("torch") is None:
            result.setdefault("others", {})["torch"] = {"skipped": "torch is not installed (pip install -e '.[bench]')"}
        else:
            server = Server("torch", name, quick, threads)
            extra = {variant: (lambda v=variant: server.run(v)) for variant in server.variants}
    try:
        result.update(runner(workload, reps, frameworks, extra))
    finally:
        if server is not None:
            result.setdefault("others", {})["torch"] = server.close()
    for variant in extra:
        result[f"ratio_{variant}"] = paired_ratio(result["times"]["graphnet"], result["times"][variant])
    if "sklearn" in frameworks and workload.kind in ("mlp", "predict"):
        answer = worker("sklearn", name, quick, threads, reps)
        result.setdefault("others", {})["sklearn"] = answer
        for variant, timing in answer.get("variants", {}).items():
            result["seconds"][variant] = timing["median"]
            result["times"][variant] = timing["times"]
    return result


def _mlp(workload: MLP, reps: int, frameworks, extra: dict) -> dict:
    data = make_data(workload)
    x, y = data["x"], data["y"]
    epochs = workload.epochs_per_rep
    fit_args = dict(epochs=epochs, batch_size=workload.batch, verbose=0)

    # Warm-up on throwaway instances: code paths, BLAS threads, caches.
    warm = min(workload.rows, 8 * workload.batch)
    spare = models.build_mlp(workload.sizes, workload.output, seed=1)
    spare.fit(x[:warm], y[:warm], **{**fit_args, "epochs": 1})
    ReferenceMLP(workload.sizes, workload.output, workload.batch, seed=1).train_epoch(x[:warm], y[:warm])

    model = models.build_mlp(workload.sizes, workload.output, seed=0)
    reference = ReferenceMLP(workload.sizes, workload.output, workload.batch,
                             weights=models.mlp_weights(model), rng=models.clone_rng(model))
    losses = {"graphnet": [], "numpy": []}

    def graphnet_rep():
        losses["graphnet"].append(model.fit(x, y, **fit_args).history["loss"][-1])

    def numpy_rep():
        for _ in range(epochs):
            loss = reference.train_epoch(x, y)
        losses["numpy"].append(loss)

    runs = {"graphnet": graphnet_rep}
    if "numpy" in frameworks:
        runs["numpy"] = numpy_rep
    # graphnet without its compiled kernels (the numpy fallback where numba has no wheels).
    plain = models.build_mlp(workload.sizes, workload.output, seed=0) if kernels.available() else None
    if plain is not None:

        def plain_rep():
            kernels.ENABLED = False
            try:
                plain.fit(x, y, **fit_args)
            finally:
                kernels.ENABLED = True

        runs["graphnet_plain"] = plain_rep
    times = interleave({**runs, **extra}, reps)
    result = _timings(times, workload.train_flops())
    if "numpy" in frameworks:
        result["agreement"] = _agreement(models.mlp_weights(model), reference.weights(), losses)
    if plain is not None:
        same = all(np.array_equal(a, b) for pair in zip(models.mlp_weights(model), models.mlp_weights(plain))
                   for a, b in zip(*pair))
        result.setdefault("agreement", {})["kernels_bit_identical"] = same
        if "numpy" in times:
            result["ratio_numpy_plain"] = paired_ratio(times["graphnet_plain"], times["numpy"])
    # Memory: a fresh model trained on a few batches (the peak is reached in the first step).
    few = min(workload.rows, 4 * workload.batch)

    def graphnet_memory():
        m = models.build_mlp(workload.sizes, workload.output, seed=2)
        m.fit(x[:few], y[:few], **{**fit_args, "epochs": 1})

    def numpy_memory():
        ReferenceMLP(workload.sizes, workload.output, workload.batch, seed=2).train_epoch(x[:few], y[:few])

    result["memory"] = {"graphnet": peak_growth(graphnet_memory)}
    if "numpy" in frameworks:
        result["memory"]["numpy"] = peak_growth(numpy_memory)
    return result


def _predict(workload: Predict, reps: int, frameworks, extra: dict) -> dict:
    x = make_data(workload)["x"]
    model = models.build_mlp(workload.sizes, workload.output, seed=0)
    reference = ReferenceMLP(workload.sizes, workload.output, 1, weights=models.mlp_weights(model))
    model.predict(x[: 2 * workload.chunk], batch_size=workload.chunk)  # warm-up
    reference.predict(x[: 2 * workload.chunk], workload.chunk)
    outputs = {}
    runs = {"graphnet": lambda: outputs.__setitem__("graphnet", model.predict(x, batch_size=workload.chunk))}
    if "numpy" in frameworks:
        runs["numpy"] = lambda: outputs.__setitem__("numpy", reference.predict(x, workload.chunk))
    times = interleave({**runs, **extra}, reps)
    result = _timings(times, workload.flops())
    if "numpy" in frameworks:
        diff = float(np.max(np.abs(outputs["graphnet"] - outputs["numpy"])))
        result["agreement"] = {"max_abs_diff": diff, "ok": bool(diff < 1e-4)}
    outputs.clear()
    result_bytes = workload.rows * workload.sizes[-1] * 4
    small_bytes = workload.small_rows * workload.sizes[-1] * 4
    # predict's own allocations beyond its result, at two row counts: O(chunk) means equal.
    memory = {
        "graphnet": peak_growth(lambda: model.predict(x, batch_size=workload.chunk)) - result_bytes,
        "graphnet_small": peak_growth(lambda: model.predict(x[: workload.small_rows], batch_size=workload.chunk))
        - small_bytes,
    }
    if "numpy" in frameworks:
        memory["numpy"] = peak_growth(lambda: reference.predict(x, workload.chunk)) - result_bytes
    result["memory"] = memory
    return result


def _dag(workload: DAG, reps: int, frameworks, extra: dict) -> dict:
    data = make_data(workload)
    x, y = data["x"], data["y"]
    warm = 8 * workload.batch
    spare = models.build_dag(workload, seed=1)
    spare.fit({k: v[:warm] for k, v in x.items()}, {k: v[:warm] for k, v in y.items()},
              batch_size=workload.batch, verbose=0)
    model = models.build_dag(workload, seed=0)
    times = interleave({"graphnet": lambda: model.fit(x, y, batch_size=workload.batch, verbose=0), **extra}, reps)
    result = _timings(times, workload.train_flops())
    few = 4 * workload.batch

    def graphnet_memory():
        m = models.build_dag(workload, seed=2)
        m.fit({k: v[:few] for k, v in x.items()}, {k: v[:few] for k, v in y.items()},
              batch_size=workload.batch, verbose=0)

    result["memory"] = {"graphnet": peak_growth(graphnet_memory)}
    g = model
    result["graph"] = {
        "nodes": len(g.nodes),
        "synapses": len(g.synapses),
        "params": g.num_params,
        "mean_fan_out": len(g.synapses) / (len(g.nodes) - len(g.outputs)),
    }
    return result


def _scaling(workload: Scaling, reps: int, frameworks, extra: dict) -> dict:
    sizes = []
    rng = np.random.default_rng(0)
    for nodes in workload.sizes:
        x = rng.standard_normal((workload.batch, workload.width), dtype=np.float32)
        y = rng.standard_normal((workload.batch, workload.width), dtype=np.float32)
        phases = {"build": [], "plan": [], "first_step": [], "step": [], "networkx_sort": []}
        for _ in range(reps):
            gc.collect()
            start = time.perf_counter()
            g = models.build_scaling(nodes, workload.width)
            phases["build"].append(time.perf_counter() - start)
            start = time.perf_counter()
            g.plan  # noqa: B018 - compiling is the point
            phases["plan"].append(time.perf_counter() - start)
            start = time.perf_counter()
            g.train_step(x, y)
            phases["first_step"].append(time.perf_counter() - start)
            start = time.perf_counter()
            g.train_step(x, y)
            phases["step"].append(time.perf_counter() - start)
            structure = g.structure
            start = time.perf_counter()
            list(nx.topological_sort(structure))
            phases["networkx_sort"].append(time.perf_counter() - start)
            edges = len(g.synapses)
            del g, structure
        sizes.append({"nodes": nodes, "edges": edges, **{k: statistics.median(v) for k, v in phases.items()}})
    work = np.log([s["nodes"] + s["edges"] for s in sizes])
    exponents = {}
    last_segment = {}
    for phase in ("build", "plan", "first_step", "step"):
        t = np.log([s[phase] for s in sizes])
        exponents[phase] = float(np.polyfit(work, t, 1)[0])
        last_segment[phase] = float((t[-1] - t[-2]) / (work[-1] - work[-2]))
    largest = sizes[-1]
    return {
        "sizes": sizes,
        "exponents": exponents,
        "last_segment_exponents": last_segment,
        "plan_over_networkx_sort": largest["plan"] / largest["networkx_sort"],
        "seconds": {},
        "times": {},
    }


def _latency(workload: Latency, reps: int, frameworks, extra: dict) -> dict:
    """Per-call time of graphnet's ``predict`` and of its compiled forward
    (``compile_predict``), the same forward written by hand in numpy, and
    onnxruntime on graphnet's own ONNX export, each on one thread."""
    model = models.build_mlp(workload.sizes, workload.output, seed=0)
    weights = models.mlp_weights(model)
    last = len(weights) - 1

    def numpy_forward(x):
        h = x
        for i, (w, b) in enumerate(weights):
            h = h @ w + b
            if i < last:
                np.maximum(h, 0, out=h)
        e = np.exp(h - h.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    forwards = {"graphnet": model.predict, "compiled": model.compile_predict()}
    if "numpy" in frameworks:
        forwards["numpy"] = numpy_forward
    session = _onnx_session(model)
    if isinstance(session, str):
        skipped = {"onnxruntime": {"skipped": session}}
    else:
        skipped = {}
        name = session.get_inputs()[0].name
        forwards["onnxruntime"] = lambda x: session.run(None, {name: x})[0]
    rng = np.random.default_rng(0)
    rows = []
    with _one_thread():
        for batch in workload.batches:
            x = rng.standard_normal((batch, workload.sizes[0]), dtype=np.float32)
            answers = {}
            for library, forward in forwards.items():  # warm-up, and every answer the same
                for _ in range(10):
                    answers[library] = forward(x)
            runs = {library: _calls(forward, x, workload.calls) for library, forward in forwards.items()}
            times = interleave(runs, reps)
            row = {"batch": batch, "times": times, "seconds": {k: statistics.median(v) for k, v in times.items()},
                   "max_abs_diff": {k: float(np.max(np.abs(v - answers["graphnet"])))
                                    for k, v in answers.items() if k != "graphnet"}}
            for library in forwards:
                if library != "graphnet":
                    row[f"ratio_{library}"] = paired_ratio(times["graphnet"], times[library])
            if "onnxruntime" in times:
                row["ratio_compiled_onnxruntime"] = paired_ratio(times["compiled"], times["onnxruntime"])
            rows.append(row)
    first = rows[0]
    result = {"batches": rows, "seconds": first["seconds"], "times": first["times"], "flops": None,
              **{k: v for k, v in first.items() if k.startswith("ratio_")}}
    if skipped:
        result["others"] = skipped
    return result


def _calls(forward, x, calls: int):
    """One repetition: ``calls`` calls of ``forward(x)``; returns the time per call."""

    def rep() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            forward(x)
        return (time.perf_counter() - start) / calls

    return rep


def _onnx_session(model):
    """An onnxruntime session on one thread over ``model``'s ONNX export, or why not."""
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed (pip install -e '.[interop]')"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        model.to_onnx(path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class _one_thread:
    """BLAS on one thread while the latency workload runs (as a served model would)."""

    def __enter__(self):
        try:
            import threadpoolctl
        except ImportError:
            self._limits = None
        else:
            self._limits = threadpoolctl.threadpool_limits(limits=1)
        return self

    def __exit__(self, *exc):
        if self._limits is not None:
            self._limits.restore_original_limits()


# -------------------------------------------------------------------- helpers
def _timings(times: dict[str, list[float]], flops: float) -> dict:
    result = {
        "times": times,
        "seconds": {k: statistics.median(v) for k, v in times.items()},
        "flops": flops,
    }
    if "numpy" in times:
        result["ratio_numpy"] = paired_ratio(times["graphnet"], times["numpy"])
    return result


def _agreement(graphnet_weights, reference_weights, losses) -> dict:
    """How far graphnet's weights ended from the reference's after the same batches."""
    worst = 0.0
    for (wg, bg), (wr, br) in zip(graphnet_weights, reference_weights):
        scale = max(float(np.max(np.abs(wr))), 1e-12)
        worst = max(worst, float(np.max(np.abs(wg - wr))) / scale, float(np.max(np.abs(bg - br))) / scale)
    loss_g, loss_r = losses["graphnet"][-1], losses["numpy"][-1]
    loss_diff = abs(loss_g - loss_r) / max(abs(loss_r), 1e-12)
    return {
        "max_rel_weight_diff": worst,
        "loss_graphnet": loss_g,
        "loss_numpy": loss_r,
        "rel_loss_diff": loss_diff,
        "ok": bool(worst < 1e-3 and loss_diff < 1e-3 and math.isfinite(loss_g)),
    }


def env_threads() -> int:
    return int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
