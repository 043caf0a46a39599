"""``python -m benchmarks.distributed [--quick] [--out DIR]``: graphnet on dask.

Measures, for a 784-256-128-10 MLP (float32, the speed suite's W1 model):

- ``predict`` rows/s in this process (numpy) and on a dask array computed by
  a LocalCluster of 1 and of 2 single-threaded worker processes;
- ``fit`` rows/s in this process and with ``gn.distributed.fit`` on 1 and 2
  workers, ``sync_every=1`` and ``8`` (one epoch of warm-up, the best of the
  next three), and the bytes a step moves (:class:`graphnet.distributed.Traffic`);
- the per-step overhead on one local worker: its step time less the
  in-process step time (same batch, one BLAS thread);
- the cost model measured on the 2-worker synchronous run (the compute and
  update of a 512-row share, the latency and bandwidth of distributed's comms
  between the workers) and its predicted weak-scaling efficiency for N = 8
  and 64 on 10 GbE, ``sync_every`` 1 to 8 (:meth:`Traffic.table`), also with
  the share's compute measured alone in this process;
- ``gn.distributed.search`` of the same 16 configurations (a 4 x 4 grid of
  widths and learning rates) on 1 and on 2 workers.

Every worker, and this process for the "1 thread" rows, runs one BLAS
thread, so the rows compare like with like; the "all threads" row is
in-process graphnet as a user would run it. The workers start without the
``MALLOC_TRIM_THRESHOLD_=65536`` dask's nanny sets by default (it turns off
glibc's adaptive mmap threshold, so every large numpy temporary is a fresh
mapping and its pages are faulted in again each step); the one-worker
overhead is also measured with dask's default, for comparison. On a machine with fewer cores
than workers + client + scheduler the distributed rows measure contention,
not scaling: the report says how many cores there were and how loaded.

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
#: Epochs of each timed fit: the first warms up, the best of the others is
#: reported (the machine may be shared: a burst of other work spoils an epoch, not the result).
EPOCHS = 4
SEARCH_WIDTHS = (32, 64, 128, 256)
SEARCH_RATES = (3e-4, 1e-3, 3e-3, 1e-2)


def model(seed: int = 0, width: int = 256) -> gn.Sequential:
    return gn.Sequential(
        [gn.Input(784), gn.Dense(width, activation="relu"), gn.Dense(128, activation="relu"),
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
        g.fit(x, y, epochs=EPOCHS, batch_size=batch_size, verbose=0, callbacks=[clock])
        share = _share_work(batch_size // 2) if threads == 1 else None
    steps = math.ceil(len(x) / batch_size)
    best = min(clock.seconds[1:])
    return {"predict_rows_per_s": predict_rows / predict, "fit_rows_per_s": len(x) / best,
            "step_s": best / steps, "share_work_s": share}


def _share_work(rows: int) -> float:
    """Seconds of one forward, backward and Adam update on ``rows`` rows, in
    this process (best of 20): a rank's work per step without the machine's
    other load."""
    from graphnet._data import as_inputs, as_targets
    from graphnet.trainer import Trainer

    g = model()
    x, y = data(rows, seed=1)
    trainer = Trainer(g)
    inputs, targets = as_inputs(g, x), as_targets(g, y)

    def step():
        trainer.gradient(inputs, targets, rows)
        trainer.update()

    step()
    return _timed(step, reps=20)


def _cluster(workers: int, trim: bool = False):
    import dask
    from distributed import Client, LocalCluster

    root = str(Path(__file__).resolve().parent.parent)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    spawn = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    if not trim:
        spawn.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, env=env, silence_logs=logging.ERROR)
    return cluster, Client(cluster, set_as_default=False)


def with_dask_defaults(x, y, batch_size: int, chunk: int) -> float:
    """Seconds per synchronous step on one worker started with dask's default environment."""
    import dask.array as da

    cluster, client = _cluster(1, trim=True)
    with cluster, client:
        dx = client.persist(da.from_array(x, chunks=(chunk, 784)))
        dy = client.persist(da.from_array(y, chunks=chunk))
        clock = _EpochClock()
        gn.distributed.fit(model(), dx, dy, client, epochs=EPOCHS, batch_size=batch_size, verbose=0,
                           callbacks=[clock])
    return min(clock.seconds[1:]) / math.ceil(len(x) / batch_size)


def on_cluster(workers: int, x, y, batch_size: int, predict_rows: int, chunk: int) -> dict:
    import dask.array as da

    cluster, client = _cluster(workers)
    with cluster, client:
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
            history = gn.distributed.fit(g, dx, dy, client, epochs=EPOCHS, batch_size=batch_size, verbose=0,
                                         sync_every=k, callbacks=[clock])
            traffic = history.params["traffic"]
            best = min(clock.seconds[1:])
            result[f"sync_every={k}"] = {
                "fit_rows_per_s": len(x) / best,
                "step_s": best / math.ceil(len(x) / batch_size),
                "bytes_per_step": traffic.bytes_per_step,
                "parameter_bytes_per_step": traffic.parameter_bytes_per_step,
                "loss": history.history["loss"][-1],
                "measured": {name: getattr(traffic, name) for name in
                             ("compute_s", "update_s", "reduce_s", "client_s", "step_s", "latency_s",
                              "bandwidth", "parameter_size")},
            }
            if k == 1 and workers > 1:
                result["traffic"] = traffic
                result["at_this_size"] = {"measured_reduce_s": traffic.reduce_s,
                                          "model_reduce_s": traffic.predict(workers, bandwidth=math.inf)[
                                              "allreduce_s"]}
    return result


def _search_build(trial):
    width = trial.suggest_categorical("width", list(SEARCH_WIDTHS))
    lr = trial.suggest_categorical("lr", list(SEARCH_RATES))
    return model(width=width), {"optimizer": {"name": "adam", "lr": lr}}


def search(workers: int, rows: int, epochs: int) -> dict:
    """The same 16 configurations (a grid) searched on ``workers`` workers."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    x, y = data(rows, seed=2)
    cluster, client = _cluster(workers)
    with cluster, client:
        client.wait_for_workers(workers)
        grid = {"width": list(SEARCH_WIDTHS), "lr": list(SEARCH_RATES)}
        study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
        start = time.perf_counter()
        result = gn.distributed.search(_search_build, x, y, study=study, n_trials=16, client=client,
                                       epochs=epochs, batch_size=128, validation_split=0.2)
        seconds = time.perf_counter() - start
    return {"workers": workers, "seconds": seconds, "trials": len(result.trials), "failed": len(result.failed),
            "best_params": result.best_params, "best_value": result.best_value,
            "trial_seconds": sum(t.seconds for t in result.trials)}


def run(quick: bool = False) -> dict:
    rows, batch, predict_rows, chunk = (2048, 256, 4096, 512) if quick else (40_000, 1024, 400_000, 10_000)
    search_rows, search_epochs = (1024, 1) if quick else (16_000, 5)
    x, y = data(rows)
    report = {
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__,
                    "load_before": os.getloadavg()},
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
    report["overhead_per_step_s"] = one - report["in_process"]["1 thread"]["step_s"]
    report["dask_default_step_s"] = with_dask_defaults(x, y, batch, chunk)
    traffic = report["cluster"][1].pop("traffic")
    quiet = report["in_process"]["1 thread"]["share_work_s"]
    report["cost_model"] = [{**run, "quiet_efficiency": best["efficiency"], "quiet_batch_s": best["batch_s"]}
                            for run, best in zip(traffic.table(), traffic.table(work_s=quiet))]
    runs = [search(n, search_rows, search_epochs) for n in (1, 2, 1, 2)]  # alternated, the faster of each kept
    report["search"] = [min(runs[i::2], key=lambda r: r["seconds"]) for i in (0, 1)]
    report["machine"]["load_after"] = os.getloadavg()
    return report


def markdown(report: dict) -> str:
    ip, cl = report["in_process"], report["cluster"]
    machine = report["machine"]
    lines = [
        f"# graphnet on dask ({report['model']}, {report['params']:,} parameters)",
        "",
        f"Machine: {machine['cores']} cores (load average {machine['load_before'][0]:.1f} before, "
        f"{machine['load_after'][0]:.1f} after); Python {machine['python']}, numpy {machine['numpy']}, "
        f"dask/distributed {machine['dask']}. {report['rows']:,} training rows, global batch "
        f"{report['batch_size']}.",
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
    m1, m2 = cl[0]["sync_every=1"]["measured"], cl[1]["sync_every=1"]["measured"]
    lines += ["", f"Per-step overhead on one local worker: a synchronous step takes "
              f"{cl[0]['sync_every=1']['step_s'] * 1e3:.1f} ms against {ip['1 thread']['step_s'] * 1e3:.1f} ms "
              f"in this process, {report['overhead_per_step_s'] * 1e3:+.1f} ms (the rank's compute "
              f"{m1['compute_s'] * 1e3:.1f} ms and update {m1['update_s'] * 1e3:.2f} ms a step; the client's "
              f"own work {m1['client_s'] * 1e3:.2f} ms, while the rank runs ahead). With dask's default "
              f"MALLOC_TRIM_THRESHOLD_ on the worker the step takes {report['dask_default_step_s'] * 1e3:.1f} ms."]
    size = report["cluster"][1]["at_this_size"]
    lines += ["", "Measured on the 2-worker synchronous run: a 512-row share's compute "
              f"{m2['compute_s'] * 1e3:.2f} ms and update {m2['update_s'] * 1e3:.2f} ms a step; "
              f"distributed's comms between the workers {m2['latency_s'] * 1e3:.3f} ms a message and "
              f"{m2['bandwidth'] / 1e6:,.0f} MB/s (S = {m2['parameter_size'] / 1e6:.2f} MB of parameters). "
              f"The model gives {size['model_reduce_s'] * 1e3:.2f} ms for the all-reduce at N = 2 on "
              f"these comms; the run's steps measured {size['measured_reduce_s'] * 1e3:.2f} ms (which also "
              "waits for the slower rank).",
              "", "Predicted weak-scaling efficiency on 10 GbE (each worker keeps a 512-row share; "
              "`Traffic.table()`), with the share's compute and update as the ranks measured them "
              f"({(m2['compute_s'] + m2['update_s']) * 1e3:.2f} ms, slowed by whatever else ran on the machine) "
              "and as this process measured them alone (best of 20: "
              f"{ip['1 thread']['share_work_s'] * 1e3:.2f} ms; the conservative column, less compute to hide "
              "the all-reduce behind):", "",
              "| N | sync_every | all-reduce (ms) | per batch (ms) | efficiency | per batch, quiet (ms) | "
              "efficiency, quiet |", "|---|---|---|---|---|---|---|"]
    for row in report["cost_model"]:
        lines.append(f"| {row['workers']} | {row['sync_every']} | {row['allreduce_s'] * 1e3:.2f} | "
                     f"{row['batch_s'] * 1e3:.2f} | {row['efficiency']:.0%} | {row['quiet_batch_s'] * 1e3:.2f} | "
                     f"{row['quiet_efficiency']:.0%} |")
    s1, s2 = report["search"]
    lines += ["", f"Search of 16 configurations (widths {list(SEARCH_WIDTHS)} x learning rates "
              f"{list(SEARCH_RATES)}, one trial per worker at a time; each run twice, alternately, the "
              f"faster kept): {s1['seconds']:.1f} s on 1 worker, "
              f"{s2['seconds']:.1f} s on 2 ({s2['seconds'] / s1['seconds']:.2f}x); trials trained "
              f"{s1['trial_seconds']:.1f} s and {s2['trial_seconds']:.1f} s in all; failed: "
              f"{s1['failed']}, {s2['failed']}; best {s2['best_params']}."]
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
