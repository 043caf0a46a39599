"""``python -m benchmarks --device cuda``: graphnet on an NVIDIA GPU against the
numpy reference trainer ported to CuPy and against PyTorch CUDA.

Workloads W1 and W3 (training) and W4 (inference), with the CPU suite's
interleaving rules (see :mod:`benchmarks.runner`): data made before any
timing, a warm-up first, the implementations taking turns one repetition
each (order swapped every repetition), ratios the medians of per-repetition
ratios; PyTorch runs in a process of its own (``torch_worker --device
cuda --serve``). Every repetition ends with the device synchronised, so a
time covers all the work it queued.

What each side gets: the training data already on the GPU (graphnet is
given CuPy inputs, which ``fit`` keeps there, and host labels, which it
sends once per call; the reference and PyTorch hold both on the GPU);
``predict``'s input on the host, sent chunk by chunk, and its output
brought back to the host, for all three.

It needs CuPy and a GPU; without them it says so and exits with status 2.
No figure from it is in the README until it has run on a GPU.
"""

from __future__ import annotations

import importlib.util
import logging
import platform
import statistics
import time

import numpy as np

from . import models
from .reference import ReferenceMLP
from .runner import Server, interleave, paired_ratio
from .workloads import MLP, get, make_data

__all__ = ["GPU_WORKLOADS", "available", "run", "markdown"]

log = logging.getLogger("benchmarks")

GPU_WORKLOADS = ("W1", "W3", "W4")
#: The issue's targets: graphnet on CUDA over PyTorch CUDA.
TARGETS = {"W1": 1.3, "W3": 1.3, "W4": 1.2}


def available() -> str | None:
    """None when CuPy and a GPU are there, else why not (the message to print)."""
    try:
        from graphnet import backend

        backend.get("cuda")
    except Exception as exc:  # GraphError with what to install, or a broken CUDA
        return f"the GPU benchmark needs CuPy and an NVIDIA GPU: {exc}"
    return None


def _sync(cupy) -> None:
    cupy.cuda.Device().synchronize()


def run(quick: bool = False, workloads=GPU_WORKLOADS, reps: int | None = None, torch: bool = True) -> dict:
    """Run the GPU workloads; a JSON-safe report."""
    import cupy

    from graphnet import backend

    cuda = backend.get("cuda")
    info = {"gpu": cuda.describe(), "cupy": cupy.__version__, "python": platform.python_version(),
            "numpy": np.__version__}
    log.info("GPU: %s, CuPy %s", info["gpu"], info["cupy"])
    results = []
    for name in workloads:
        workload = get(name, quick)
        count = reps or workload.reps
        log.info("%s (%s) on cuda: %d repetitions", name, workload.title, count)
        server, extra = None, {}
        if torch and importlib.util.find_spec("torch") is not None:
            server = Server("torch", name, quick, 1, extra=("--device", "cuda"))
            extra = {f"{v}_cuda": (lambda v=v: server.run(v)) for v in server.variants}
        try:
            runner = _predict if workload.kind == "predict" else _train
            result = runner(cupy, workload, count, extra)
        finally:
            if server is not None:
                result_torch = server.close()
        result.update(workload=name, title=workload.title, unit=workload.unit, reps=count)
        if server is not None:
            result["torch"] = result_torch
        for variant in result["times"]:
            if variant != "graphnet_cuda":
                result[f"ratio_{variant}"] = paired_ratio(result["times"]["graphnet_cuda"], result["times"][variant])
        target = TARGETS.get(name)
        measured = result.get("ratio_torch_cuda")
        result["check"] = {"target": f"graphnet/PyTorch CUDA <= {target}", "value": measured,
                           "status": "n/a" if measured is None else ("PASS" if measured <= target else "MISS")}
        results.append(result)
    return {"device": "cuda", "quick": quick, "machine": info, "results": results}


def _train(cupy, workload: MLP, reps: int, extra: dict) -> dict:
    data = make_data(workload)
    x_host, y_host = data["x"], data["y"]
    x_gpu, y_gpu = cupy.asarray(x_host), cupy.asarray(y_host)
    fit_args = dict(epochs=workload.epochs_per_rep, batch_size=workload.batch, verbose=0)
    warm = min(workload.rows, 8 * workload.batch)
    spare = models.build_mlp(workload.sizes, workload.output, seed=1).to("cuda")
    spare.fit(x_gpu[:warm], y_host[:warm], **{**fit_args, "epochs": 1})
    ReferenceMLP(workload.sizes, workload.output, workload.batch, seed=1, xp=cupy).train_epoch(
        x_gpu[:warm], y_gpu[:warm])

    model = models.build_mlp(workload.sizes, workload.output, seed=0).to("cuda")
    reference = ReferenceMLP(workload.sizes, workload.output, workload.batch,
                             weights=models.mlp_weights(model), rng=models.clone_rng(model), xp=cupy)
    losses = {"graphnet": [], "reference": []}

    def graphnet_rep():
        losses["graphnet"].append(model.fit(x_gpu, y_host, **fit_args).history["loss"][-1])
        _sync(cupy)

    def reference_rep():
        for _ in range(workload.epochs_per_rep):
            loss = reference.train_epoch(x_gpu, y_gpu)
        losses["reference"].append(loss)
        _sync(cupy)

    times = interleave({"graphnet_cuda": graphnet_rep, "cupy_reference": reference_rep, **extra}, reps)
    result = _timings(times)
    worst = 0.0
    for (wg, bg), (wr, br) in zip(models.mlp_weights(model), reference.weights()):
        scale = max(float(np.max(np.abs(wr))), 1e-12)
        worst = max(worst, float(np.max(np.abs(wg - wr))) / scale, float(np.max(np.abs(bg - br))) / scale)
    result["agreement"] = {"max_rel_weight_diff": worst, "loss_graphnet": losses["graphnet"][-1],
                           "loss_reference": losses["reference"][-1]}
    return result


def _predict(cupy, workload, reps: int, extra: dict) -> dict:
    x = make_data(workload)["x"]
    model = models.build_mlp(workload.sizes, workload.output, seed=0).to("cuda")
    reference = ReferenceMLP(workload.sizes, workload.output, 1, weights=models.mlp_weights(model), xp=cupy)
    model.predict(x[: 2 * workload.chunk], batch_size=workload.chunk)
    reference.predict(x[: 2 * workload.chunk], workload.chunk)
    outputs = {}
    runs = {
        "graphnet_cuda": lambda: outputs.__setitem__("graphnet", model.predict(x, batch_size=workload.chunk)),
        "cupy_reference": lambda: outputs.__setitem__("reference", cupy.asnumpy(reference.predict(x, workload.chunk))),
    }
    times = interleave({**runs, **extra}, reps)
    result = _timings(times)
    result["agreement"] = {"max_abs_diff": float(np.max(np.abs(outputs["graphnet"] - outputs["reference"])))}
    return result


def _timings(times: dict[str, list[float]]) -> dict:
    return {"times": times, "seconds": {k: statistics.median(v) for k, v in times.items()}}


def markdown(report: dict) -> str:
    """The GPU table: seconds per unit and graphnet's ratios."""
    lines = [
        "# graphnet GPU benchmark",
        "",
        f"- date: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}",
        f"- GPU: {report['machine']['gpu']}, CuPy {report['machine']['cupy']}, numpy {report['machine']['numpy']}",
        "- seconds are medians per unit; ratios are medians of per-repetition ratios (implementations taking turns)",
        "",
        "| workload | unit | graphnet s | CuPy reference s | PyTorch CUDA s | PyTorch fused Adam s "
        "| graphnet / reference | graphnet / PyTorch | target | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        s = r["seconds"]

        def cell(key, fmt="{:.4f}"):
            return fmt.format(s[key]) if key in s else "—"

        def ratio(key):
            return f"{r[key]:.2f}×" if key in r else "—"

        check = r["check"]
        lines.append(
            f"| {r['workload']} {r['title']} | {r['unit']} | {cell('graphnet_cuda')} | {cell('cupy_reference')} "
            f"| {cell('torch_cuda')} | {cell('torch_fused_cuda')} | {ratio('ratio_cupy_reference')} "
            f"| {ratio('ratio_torch_cuda')} | {check['target']} | **{check['status']}** |"
        )
    return "\n".join(lines) + "\n"
