"""``python -m benchmarks.distributed [--quick] [--out DIR]``: graphnet on dask.

Measures, for a 784-256-128-10 MLP (float32, the speed suite's W1 model):

- ``predict`` rows/s in this process (numpy) and on a dask array computed by
  a LocalCluster of 1 and of 2 single-threaded worker processes;
- ``fit`` rows/s in this process and with ``gn.distributed.fit`` on 1 and 2
  workers (one epoch of warm-up, the second timed), and the bytes sent per
  step for ``sync_every=1`` and ``8`` (:class:`graphnet.distributed.Traffic`);
- the compute time of one worker's share of a step, from which the per-step
  cost model below predicts the scaling efficiency at N = 8 and 64 workers
  on 10 GbE.

Every worker, and this process for the "1 thread" rows, runs one BLAS
thread, so the rows compare like with like; the "all threads" row is
in-process graphnet as a user would run it. On a machine with fewer cores
than workers + client + scheduler the distributed rows measure contention,
not scaling: the report says how many cores there were.

Writes ``distributed.md`` and ``distributed.json`` to ``benchmarks/results``
(or ``--out``; ``--quick`` writes nothing unless given ``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

import graphnet as gn

RESULTS = Path(__file__).resolve().parent / "results"
TEN_GBE = 10e9 / 8  # bytes per second
LATENCY = 1e-3  # seconds per message hop: dask's own per-task overhead is of this order


def model(seed: int = 0) -> gn.Sequential:
    return gn.Sequential(
        [gn.Input(784), gn.Dense(256, activation="relu"), gn.Dense(128, activation="relu"),
         gn.Dense(10, activation="softmax")],
        loss="categorical_crossentropy", seed=seed,
    )


def data(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=rows)
    return x, y


def _timed(fn, reps: int = 1) -> float:
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class _EpochClock(gn.Callback):
    """The wall time of each epoch (the first includes warm-up: plans, fetches)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def _threads(n: int):
    try:
        import threadpoolctl
    except ImportError:  # the bench extra brings it; without it BLAS keeps its own count
        import contextlib

        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(limits=n)


def in_process(x, y, batch_size: int, predict_rows: int, threads: int) -> dict:
    with _threads(threads):
        g = model()
        xp = x[:predict_rows] if len(x) >= predict_rows else np.resize(x, (predict_rows, 784))
        g.predict(xp[:1000])
        predict = _timed(lambda: g.predict(xp), reps=3)
        clock = _EpochClock()
        g.fit(x, y, epochs=2, batch_size=batch_size, verbose=0, callbacks=[clock])
        share = _share_compute(batch_size)
    return {"predict_rows_per_s": predict_rows / predict, "fit_rows_per_s": len(x) / clock.seconds[-1],
            "share_compute_s": share}


def _share_compute(batch_size: int) -> dict:
    """Seconds of one forward + backward on a worker's share (``batch_size / N``
    rows) for N = 1 and 2, in this process at its current thread count."""
    from graphnet._data import as_inputs, as_targets
    from graphnet.training import Trainer

    out = {}
    for n in (1, 2):
        share = max(1, batch_size // n)
        g = model()
        x, y = data(share, seed=1)
        trainer = Trainer(g)
        inputs, targets = as_inputs(g, x), as_targets(g, y)
        trainer.gradient(inputs, targets, share)
        out[n] = _timed(lambda t=trainer, i=inputs, y=targets, r=share: t.gradient(i, y, r), reps=20)
    return out


def on_cluster(workers: int, x, y, batch_size: int, predict_rows: int, chunk: int) -> dict:
    import dask.array as da
    from distributed import Client, LocalCluster

    root = str(Path(__file__).resolve().parent.parent)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, env=env, silence_logs=logging.ERROR) as cluster, \
            Client(cluster, set_as_default=False) as client:
        g = model()
        # Data made on the workers and kept there: nothing is sent from here.
        xp = da.random.default_rng(0).random((predict_rows, 784), dtype=np.float32, chunks=(chunk, 784))
        xp = client.persist(xp)
        client.compute(g.predict(xp[:chunk])).result()  # warm-up: graph fetched, plans built
        predict = _timed(lambda: client.compute(g.predict(xp)).result(), reps=3)
        dx = client.persist(da.from_array(x, chunks=(chunk, 784)))
        dy = client.persist(da.from_array(y, chunks=chunk))
        result = {"workers": workers, "predict_rows_per_s": predict_rows / predict}
        for k in (1, 8):
            clock = _EpochClock()
            g = model()
            history = gn.distributed.fit(g, dx, dy, client, epochs=2, batch_size=batch_size, verbose=0,
                                         sync_every=k, callbacks=[clock])
            traffic = history.params["traffic"]
            result[f"sync_every={k}"] = {
                "fit_rows_per_s": len(x) / clock.seconds[-1],
                "step_s": clock.seconds[-1] / math.ceil(len(x) / batch_size),
                "bytes_per_step": traffic.bytes_per_step,
                "parameter_bytes_per_step": traffic.parameter_bytes_per_step,
                "loss": history.history["loss"][-1],
            }
    return result


def cost_model(params: int, t_c: float, itemsize: int = 4, bandwidth: float = TEN_GBE,
               latency: float = LATENCY) -> list[dict]:
    """Predicted communication seconds per synchronous step, and the
    weak-scaling efficiency ``t_c / (t_c + t_comm / k)`` (each worker keeps
    its share's size, so ``t_c``, one share's compute, stays; ``k`` is
    ``sync_every``).

    ``S = itemsize * P`` bytes. graphnet as built: the client scatters the
    weights to one worker and the others fetch them (at worst a star from
    that worker, ``(N-1) S/B``), the gradients are summed in a tree
    (``ceil(log2 N)`` levels of ``S/B``), and ``S`` goes each way between
    the client and the cluster: ``(N + ceil(log2 N) + 1) S/B`` and about
    ``ceil(log2 N) + 3`` hops of latency. For comparison, ring all-reduce:
    ``2 (N-1)/N S/B`` and ``2 (N-1)`` hops; tree all-reduce (reduce, then
    broadcast down the same tree): ``2 ceil(log2 N) S/B`` and as many hops.
    """
    per = itemsize * params / bandwidth
    rows = []
    for n in (2, 8, 64):
        depth = math.ceil(math.log2(n))
        schemes = {
            "graphnet (star out, tree in, via the client)": (n + depth + 1) * per + (depth + 3) * latency,
            "ring all-reduce": 2 * (n - 1) / n * per + 2 * (n - 1) * latency,
            "tree all-reduce": 2 * depth * per + 2 * depth * latency,
        }
        for name, t in schemes.items():
            for k in (1, 8):
                rows.append({"N": n, "scheme": name, "sync_every": k, "t_comm_s": t / k, "t_c_s": t_c,
                             "efficiency": t_c / (t_c + t / k)})
    return rows


def run(quick: bool = False) -> dict:
    rows, batch, predict_rows, chunk = (2048, 256, 4096, 512) if quick else (40_000, 1024, 400_000, 10_000)
    x, y = data(rows)
    report = {
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__},
        "model": "784-256-128-10 MLP, float32, adam", "rows": rows, "batch_size": batch,
        "params": model().num_params,
    }
    import dask
    import distributed

    report["machine"]["dask"] = dask.__version__
    report["machine"]["distributed"] = distributed.__version__
    report["in_process"] = {"1 thread": in_process(x, y, batch, predict_rows, 1),
                            "all threads": in_process(x, y, batch, predict_rows, os.cpu_count() or 1)}
    report["cluster"] = [on_cluster(n, x, y, batch, predict_rows, chunk) for n in (1, 2)]
    one = report["cluster"][0]["sync_every=1"]["step_s"]
    report["overhead_per_step_s"] = one - report["in_process"]["1 thread"]["share_compute_s"][1]
    # Weak scaling: each worker keeps the share it has with 2 workers (batch / 2 rows).
    report["cost_model"] = cost_model(report["params"], report["in_process"]["1 thread"]["share_compute_s"][2])
    return report


def markdown(report: dict) -> str:
    ip, cl = report["in_process"], report["cluster"]
    lines = [
        f"# graphnet on dask ({report['model']}, {report['params']:,} parameters)",
        "",
        f"Machine: {report['machine']['cores']} cores; Python {report['machine']['python']}, "
        f"numpy {report['machine']['numpy']}, dask/distributed {report['machine']['dask']}. "
        f"{report['rows']:,} training rows, global batch {report['batch_size']}.",
        "",
        "| | predict rows/s | fit rows/s (sync_every=1) | fit rows/s (sync_every=8) | bytes/step (1) | bytes/step (8) |",
        "|---|---|---|---|---|---|",
        f"| in process, 1 thread | {ip['1 thread']['predict_rows_per_s']:,.0f} | "
        f"{ip['1 thread']['fit_rows_per_s']:,.0f} | — | — | — |",
        f"| in process, all threads | {ip['all threads']['predict_rows_per_s']:,.0f} | "
        f"{ip['all threads']['fit_rows_per_s']:,.0f} | — | — | — |",
    ]
    for c in cl:
        s1, s8 = c["sync_every=1"], c["sync_every=8"]
        lines.append(
            f"| dask, {c['workers']} worker{'s' if c['workers'] > 1 else ''} | {c['predict_rows_per_s']:,.0f} | "
            f"{s1['fit_rows_per_s']:,.0f} | {s8['fit_rows_per_s']:,.0f} | "
            f"{s1['bytes_per_step']:,.0f} | {s8['bytes_per_step']:,.0f} |"
        )
    lines += ["", f"Measured here: a synchronous step on 1 worker costs "
              f"{report['overhead_per_step_s'] * 1e3:.1f} ms more than its compute (scatter, tasks, "
              "the sum back, the update; loopback, shared cores)."]
    lines += ["", "Predicted per-step communication and weak-scaling efficiency on 10 GbE "
              f"(S = 4P = {4 * report['params'] / 1e6:.2f} MB, latency {LATENCY * 1e3:g} ms a hop, "
              f"t_c = {report['cost_model'][0]['t_c_s'] * 1e3:.1f} ms of compute per worker and step):", "",
              "| N | scheme | sync_every | t_comm (ms) | efficiency |", "|---|---|---|---|---|"]
    for row in report["cost_model"]:
        if row["N"] in (8, 64):
            lines.append(f"| {row['N']} | {row['scheme']} | {row['sync_every']} | "
                         f"{row['t_comm_s'] * 1e3:.2f} | {row['efficiency']:.0%} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--out", default=None, help=f"directory for distributed.md/.json (default {RESULTS})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import distributed  # noqa: F401  (its import sets its loggers to INFO: quieten them after it)

    logging.getLogger("distributed").setLevel(logging.WARNING)
    report = run(quick=args.quick)
    text = markdown(report)
    print(text)
    out = Path(args.out) if args.out else (None if args.quick else RESULTS)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "distributed.md").write_text(text)
        (out / "distributed.json").write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
