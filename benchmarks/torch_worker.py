"""PyTorch (CPU) on one workload, in a process of its own.

numpy and PyTorch in one process slow each other down badly on two cores, so
PyTorch runs here. Two modes:

* ``python -m benchmarks.torch_worker W1 [--quick] [--reps N]`` times every
  variant and prints one JSON line;
* ``--device cuda``: the same on an NVIDIA GPU (``python -m benchmarks
  --device cuda``): model and training data on the GPU, ``predict``'s input
  on the host sent chunk by chunk and its output brought back, every
  repetition ended by ``torch.cuda.synchronize()``;
* ``--serve``: sets up (data, models, warm-up), prints ``{"ready": ...}``,
  then runs one repetition of variant ``V`` for each line ``run V`` on its
  standard input and answers ``{"seconds": ...}``; ``quit`` ends it. The
  benchmark uses this to interleave PyTorch's repetitions with graphnet's,
  one process at a time, so that the two are compared moment by moment.

The training loop is the tight one a PyTorch user writes for data already in
memory: a ``randperm`` per epoch, ``index_select`` batches,
``zero_grad(set_to_none=True)``, the fused losses (``cross_entropy``,
``binary_cross_entropy_with_logits``, ``mse_loss``), and ``loss.item()`` per
batch for the running loss (graphnet reports it too).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import resource
import statistics
import sys
import time

from .workloads import DAG, Predict, Scaling, dag_spec, get, make_data


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def setup(torch, workload, device: str = "cpu") -> dict:
    """One callable per variant, each running one repetition; warmed up."""
    import torch.nn.functional as F

    data = make_data(workload)
    gpu = device != "cpu"
    if isinstance(workload, Predict):
        model = _mlp(torch, workload.sizes).eval().to(device)
        x = torch.from_numpy(data["x"])
        out = torch.empty((x.shape[0], workload.sizes[-1]))

        def predict():
            with torch.inference_mode():
                for lo in range(0, x.shape[0], workload.chunk):
                    hi = min(lo + workload.chunk, x.shape[0])
                    if gpu:
                        out[lo:hi].copy_(torch.softmax(model(x[lo:hi].to(device)), dim=1))
                    else:
                        torch.softmax(model(x[lo:hi]), dim=1, out=out[lo:hi])

        with torch.inference_mode():
            model(x[: workload.chunk].to(device))  # warm-up
        return {"torch": predict}

    if isinstance(workload, DAG):
        x = {k: torch.from_numpy(v).to(device) for k, v in data["x"].items()}
        y = {k: torch.from_numpy(v).to(device) for k, v in data["y"].items()}
        model = _DagModule(torch, dag_spec(workload)).to(device)

        def loss_fn(out, yb):
            return F.cross_entropy(out["cls"], yb["cls"]) + F.binary_cross_entropy_with_logits(
                out["flag"], yb["flag"]
            )

        epochs = 1
    else:
        x, y = torch.from_numpy(data["x"]).to(device), torch.from_numpy(data["y"]).to(device)
        model = _mlp(torch, workload.sizes).to(device)
        loss_fn = {
            "softmax": F.cross_entropy,
            "sigmoid": F.binary_cross_entropy_with_logits,
            "linear": F.mse_loss,
        }[workload.output]
        epochs = workload.epochs_per_rep
    variants = {"torch": {}}
    if workload.name == "W1" or gpu:
        variants["torch_fused"] = {"fused": True}  # the stretch target

    def take(tensors, index):
        if isinstance(tensors, dict):
            return {k: v.index_select(0, index) for k, v in tensors.items()}
        return tensors.index_select(0, index)

    def train(net, optimizer, rows, epochs):
        total = 0.0
        for _ in range(epochs):
            order = torch.randperm(rows, device=device)
            for lo in range(0, rows, workload.batch):
                index = order[lo : lo + workload.batch]
                xb, yb = take(x, index), take(y, index)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(net(xb), yb)
                loss.backward()
                optimizer.step()
                total += loss.item()
        if gpu:
            torch.cuda.synchronize()
        return total

    runs = {}
    for variant, options in variants.items():
        net = copy.deepcopy(model)  # every variant starts from the same weights
        warm = copy.deepcopy(model)
        train(warm, torch.optim.Adam(warm.parameters(), lr=1e-3, **options), min(workload.rows, 8 * workload.batch), 1)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, **options)
        runs[variant] = lambda net=net, optimizer=optimizer: train(net, optimizer, workload.rows, epochs)
    return runs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError as exc:
        print(json.dumps({"skipped": f"torch is not installed ({exc})"}), flush=True)
        return
    workload = get(args.workload, args.quick)
    if isinstance(workload, Scaling):
        print(json.dumps({"skipped": "no PyTorch counterpart"}), flush=True)
        return
    threads = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"skipped": "PyTorch sees no CUDA GPU"}), flush=True)
        return
    runs = setup(torch, workload, args.device)
    info = {"library": f"torch {torch.__version__}", "threads": torch.get_num_threads()}
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["library"] += " (CUDA)"
    before = _rss()
    if args.serve:
        print(json.dumps({"ready": sorted(runs), **info}), flush=True)
        for line in sys.stdin:
            command = line.split()
            if command[:1] == ["run"] and command[1] in runs:
                gc.collect()
                start = time.perf_counter()
                runs[command[1]]()
                print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
            else:
                break
        print(json.dumps({"rss_growth": max(0, _peak_rss() - before)}), flush=True)
        return
    reps = args.reps or workload.reps
    info["variants"] = {}
    for variant, run in runs.items():
        times = []
        for _ in range(reps):
            gc.collect()
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        info["variants"][variant] = {"times": times, "median": statistics.median(times)}
    info["rss_growth"] = max(0, _peak_rss() - before)
    print(json.dumps(info), flush=True)


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
