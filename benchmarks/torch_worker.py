"""PyTorch (CPU) on one workload, in a process of its own.

Run by the benchmark as ``python -m benchmarks.torch_worker W1 [--quick]``; it
prints one JSON line. numpy and PyTorch in one process slow each other down
badly on two cores, hence the subprocess. The training loop is the tight one a
PyTorch user writes for data already in memory: a ``randperm`` per epoch,
``index_select`` batches, ``zero_grad(set_to_none=True)``, the fused losses
(``cross_entropy``, ``binary_cross_entropy_with_logits``, ``mse_loss``), and
``loss.item()`` per batch for the running loss (graphnet reports it too).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time

from .workloads import DAG, MLP, Predict, Scaling, dag_spec, get, make_data


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as exc:
        print(json.dumps({"skipped": f"torch is not installed ({exc})"}))
        return
    threads = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    workload = get(args.workload, args.quick)
    reps = args.reps or workload.reps
    result = {"library": f"torch {torch.__version__}", "threads": torch.get_num_threads()}
    if isinstance(workload, Scaling):
        print(json.dumps({"skipped": "no PyTorch counterpart"}))
        return
    data = make_data(workload)

    def to_tensor(a):
        return torch.from_numpy(a)

    if isinstance(workload, Predict):
        model = _mlp(torch, workload.sizes).eval()
        x = to_tensor(data["x"])
        out = torch.empty((x.shape[0], workload.sizes[-1]))

        def run():
            with torch.inference_mode():
                for lo in range(0, x.shape[0], workload.chunk):
                    hi = min(lo + workload.chunk, x.shape[0])
                    torch.softmax(model(x[lo:hi]), dim=1, out=out[lo:hi])

        with torch.inference_mode():
            model(x[: workload.chunk])  # warm-up
        result["variants"] = {"torch": _time(run, reps)}
        print(json.dumps(result))
        return

    if isinstance(workload, DAG):
        spec = dag_spec(workload)
        x = {k: to_tensor(v) for k, v in data["x"].items()}
        y = {"cls": torch.from_numpy(data["y"]["cls"]), "flag": to_tensor(data["y"]["flag"])}
        model = _DagModule(torch, spec)

        def loss_fn(out, yb):
            return F.cross_entropy(out["cls"], yb["cls"]) + F.binary_cross_entropy_with_logits(
                out["flag"], yb["flag"]
            )

        variants = {"torch": {}}
    else:
        x, y = to_tensor(data["x"]), torch.from_numpy(data["y"])
        model = _mlp(torch, workload.sizes)
        loss_fn = {
            "softmax": F.cross_entropy,
            "sigmoid": F.binary_cross_entropy_with_logits,
            "linear": F.mse_loss,
        }[workload.output]
        variants = {"torch": {}}
        if workload.name == "W1":
            variants["torch_fused"] = {"fused": True}  # the stretch target
    rows = workload.rows
    epochs = workload.epochs_per_rep if isinstance(workload, MLP) else 1

    def take(data_, index):
        if isinstance(data_, dict):
            return {k: v.index_select(0, index) for k, v in data_.items()}
        return data_.index_select(0, index)

    result["variants"] = {}
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    for variant, options in variants.items():

        def train(optimizer, rows, epochs):
            total = 0.0
            for _ in range(epochs):
                order = torch.randperm(rows)
                for lo in range(0, rows, workload.batch):
                    index = order[lo : lo + workload.batch]
                    xb, yb = take(x, index), take(y, index)
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(model(xb), yb)
                    loss.backward()
                    optimizer.step()
                    total += loss.item()
            return total

        # Warm-up on a few batches, then start again from the same weights.
        model.load_state_dict(initial)
        train(torch.optim.Adam(model.parameters(), lr=1e-3, **options), min(rows, 8 * workload.batch), 1)
        model.load_state_dict(initial)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **options)
        before = _rss()
        timing = _time(lambda: train(optimizer, rows, epochs), reps)
        timing["rss_growth"] = max(0, _peak_rss() - before)
        result["variants"][variant] = timing
    print(json.dumps(result))


def _time(fn, reps: int) -> dict:
    times = []
    for _ in range(reps):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"times": times, "median": statistics.median(times)}


def _mlp(torch, sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _DagModule(torch, spec):
    """The W6 DAG as a ``torch.nn.Module``, written the idiomatic way: each node one
    ``Linear`` over the concatenation of its sources, relu on hidden nodes, logits
    out (the losses apply softmax/sigmoid, fused)."""

    class Dag(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sources: dict[str, list[str]] = {}
            for src, dst in spec["edges"]:
                self.sources.setdefault(dst, []).append(src)
            self.order = spec["hidden"] + spec["outputs"]
            self.hidden = set(spec["hidden"])
            self.linears = torch.nn.ModuleDict(
                {
                    dst: torch.nn.Linear(sum(spec["sizes"][s] for s in srcs), spec["sizes"][dst])
                    for dst, srcs in self.sources.items()
                }
            )

        def forward(self, inputs):
            values = dict(inputs)
            for name in self.order:
                srcs = self.sources[name]
                joined = values[srcs[0]] if len(srcs) == 1 else torch.cat([values[s] for s in srcs], dim=1)
                z = self.linears[name](joined)
                values[name] = torch.relu(z) if name in self.hidden else z
            return {name: values[name] for name in spec["outputs"]}

    return Dag()


if __name__ == "__main__":
    sys.exit(main())
