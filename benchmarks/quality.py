"""The quality panel: does graphnet, with its defaults, learn as well as the best peer?

``python -m benchmarks.quality [--quick] [--tasks diabetes,wine] [--libraries graphnet,sklearn]
[--seeds 0,1,2,3,4] [--graphnet-init NAME] [--out DIR] [--name quality]``

Eight small tasks (:mod:`benchmarks.quality_tasks`), each trained with the same
data, split, architecture, epochs, batch 32 and Adam(1e-3) by graphnet,
PyTorch, Keras 3 (torch backend) and scikit-learn's MLP, every library with
its own initialisation defaults, five seeds each. Each library runs in a
subprocess of its own (:mod:`benchmarks.quality_worker`, one for all the
tasks), one at a time, with one thread: the test metrics do not depend on
the machine's load, the times do (they are medians over the seeds, compared
as ratios).

The target, per task: graphnet's mean is at least the best peer's mean minus
one standard error, the standard error being that of the difference of the
two means, ``sqrt(se_graphnet² + se_peer²)`` with ``se = std / sqrt(seeds)``
(``std`` with ``ddof=1``). For the MSE task (lower is better) the signs turn
round. The table also says whether graphnet is within the stricter margin of
the best peer's own standard error.

A full run takes about 6 minutes on two cores (Keras is most of it); writes
``benchmarks/results/quality.md`` and ``.json``. ``--quick`` (a few epochs,
two seeds) takes a minute and writes nothing unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import logging
import math
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from . import machine
from .quality_tasks import TASK_NAMES, get
from .quality_worker import LIBRARIES

__all__ = ["run", "summarise", "markdown", "write", "main"]

log = logging.getLogger("benchmarks")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PEERS = ("torch", "keras", "sklearn")
_MODULE = {"graphnet": "graphnet", "torch": "torch", "keras": "keras", "sklearn": "sklearn"}
_LABEL = {"graphnet": "graphnet", "torch": "PyTorch", "keras": "Keras 3", "sklearn": "scikit-learn"}


def _worker(library: str, tasks, seeds, quick: bool, graphnet_init: str | None) -> dict[str, dict]:
    """Every task for ``library`` in one subprocess; its answer per task."""
    if importlib.util.find_spec(_MODULE[library]) is None:
        return {t: {"skipped": f"{library} is not installed (pip install -e '.[bench]')"} for t in tasks}
    command = [sys.executable, "-m", "benchmarks.quality_worker", library, ",".join(tasks),
               "--seeds", ",".join(map(str, seeds))]
    if quick:
        command.append("--quick")
    if graphnet_init and library == "graphnet":
        command += ["--graphnet-init", graphnet_init]
    env = machine.thread_env(1)
    env.setdefault("KERAS_BACKEND", "torch")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    answers = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            answer = json.loads(line)
            answers[answer["task"]] = answer
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        error = lines[-1] if lines else f"exit {done.returncode}"
        answers.update({t: {"error": error} for t in tasks if t not in answers})
    return answers


def _stats(scores: list[float]) -> dict:
    n = len(scores)
    mean = statistics.fmean(scores)
    std = statistics.stdev(scores) if n > 1 else 0.0
    return {"mean": mean, "std": std, "se": std / math.sqrt(n), "n": n}


def summarise(task_name: str, answers: dict) -> dict:
    """Statistics per library and the verdict of one task."""
    task = get(task_name)
    sign = 1.0 if task.higher_is_better else -1.0
    stats = {lib: {**_stats(a["scores"]), "seconds": statistics.median(a["seconds"])}
             for lib, a in answers.items() if "scores" in a}
    summary = {"task": task_name, "title": task.title, "architecture": task.architecture, "metric": task.metric,
               "higher_is_better": task.higher_is_better, "epochs": next(
                   (a["epochs"] for a in answers.values() if "epochs" in a), None),
               "stats": stats, "answers": answers}
    peers = [lib for lib in PEERS if lib in stats]
    if "graphnet" not in stats or not peers:
        summary["verdict"] = "n/a"
        return summary
    best = max(peers, key=lambda lib: sign * stats[lib]["mean"])
    g, b = stats["graphnet"], stats[best]
    se_diff = math.sqrt(g["se"] ** 2 + b["se"] ** 2)
    target = b["mean"] - sign * se_diff
    summary.update(
        best_peer=best,
        se_diff=se_diff,
        target=target,
        verdict="PASS" if sign * (g["mean"] - target) >= 0 else "MISS",
        within_peer_se=bool(sign * (g["mean"] - (b["mean"] - sign * b["se"])) >= 0),
        gap_in_se=(sign * (g["mean"] - b["mean"]) / se_diff) if se_diff > 0 else 0.0,
    )
    return summary


def run(tasks=TASK_NAMES, libraries=LIBRARIES, quick: bool = False, seeds=None,
        graphnet_init: str | None = None, out_dir: Path | None = None, name: str = "quality") -> dict:
    """Run the panel and return it as a JSON-safe dict (written to ``out_dir`` when given)."""
    seeds = list(seeds if seeds is not None else ((0, 1) if quick else range(5)))
    answers = {task: {} for task in tasks}
    for library in libraries:
        log.info("%s: %d tasks, %d seeds", library, len(tasks), len(seeds))
        for task, answer in _worker(library, tasks, seeds, quick, graphnet_init).items():
            answers[task][library] = answer
    results = [summarise(task, answers[task]) for task in tasks]
    for r in results:
        log.info("%s: %s", r["task"], r["verdict"])
    versions = sorted({a["library"] for r in results for a in r["answers"].values() if "library" in a})
    report = {
        "quick": quick,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{machine._cpu_model()}, {machine.os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "libraries": versions,
        "seeds": seeds,
        "graphnet_init": graphnet_init,
        "results": results,
    }
    if out_dir is not None:
        write(report, Path(out_dir), name)
    return report


def _cell(s: dict, digits: int) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} (se {s['se']:.{digits}f})"


def markdown(report: dict) -> str:
    """The panel as Markdown: the quality table, the time table, the notes."""
    libs = [lib for lib in LIBRARIES if any(lib in r["stats"] for r in report["results"])]
    init = report.get("graphnet_init")
    lines = [
        f"# graphnet quality panel{' (quick mode: a smoke test, not for the target)' if report['quick'] else ''}",
        "",
        f"- date: {report['date']}; {report['machine']}; Python {report['python']}",
        "- " + ", ".join(report["libraries"]),
        f"- seeds {report['seeds']}; graphnet " + (f"with --graphnet-init {init!r}" if init else "with its defaults")
        + "; every other library with its own defaults",
        "- same data, split, architecture, epochs, batch 32, Adam(lr=1e-3), no weight penalty, "
        "reshuffled every epoch, one thread per library, each in a process of its own",
        "- cells: mean ± std (se = std/√seeds) of the test metric over the seeds; "
        "target: graphnet's mean ≥ best peer's mean − sqrt(se_graphnet² + se_peer²) "
        "(for MSE, ≤ best + that); 'strict' uses the best peer's se alone",
        "",
        "| task | net, epochs | metric | " + " | ".join(_LABEL[lib] for lib in libs)
        + " | best peer | target | result | strict |",
        "|---|---|---|" + "---|" * len(libs) + "---|---|---|---|",
    ]
    for r in report["results"]:
        digits = 5 if r["metric"] == "mse" else 3
        metric = {"r2": "R² ↑", "accuracy": "accuracy ↑", "mse": "MSE ↓"}[r["metric"]]
        cells = [_cell(r["stats"][lib], digits) if lib in r["stats"] else "—" for lib in libs]
        best = _LABEL.get(r.get("best_peer"), "—")
        target = f"{r['target']:.{digits}f}" if "target" in r else "—"
        strict = {True: "yes", False: "no"}.get(r.get("within_peer_se"), "—")
        lines.append(f"| {r['task']} | {r['architecture']}, {r['epochs']} | {metric} | " + " | ".join(cells)
                     + f" | {best} | {target} | **{r['verdict']}** | {strict} |")
    passed = sum(r["verdict"] == "PASS" for r in report["results"])
    lines += ["", f"graphnet meets the target on {passed} of {len(report['results'])} tasks.", ""]
    lines += ["## Training time", "",
              "Median seconds per model over the seeds (the `fit` call or the training loop only), "
              "and each peer's time over graphnet's.", "",
              "| task | " + " | ".join(_LABEL[lib] for lib in libs) + " |",
              "|---|" + "---|" * len(libs)]
    for r in report["results"]:
        g = r["stats"].get("graphnet", {}).get("seconds")
        cells = []
        for lib in libs:
            s = r["stats"].get(lib, {}).get("seconds")
            if s is None:
                cells.append("—")
            elif lib == "graphnet" or not g:
                cells.append(f"{s:.3f} s")
            else:
                cells.append(f"{s:.3f} s ({s / g:.1f}×)")
        lines.append(f"| {r['task']} | " + " | ".join(cells) + " |")
    notes = [f"{r['task']} {lib}: {a.get('skipped') or a.get('error')}" for r in report["results"]
             for lib, a in r["answers"].items() if "scores" not in a]
    if notes:
        lines += ["", "## Not run", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write(report: dict, out_dir: Path, name: str = "quality") -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / f"{name}.md", out_dir / f"{name}.json"
    md.write_text(markdown(report))
    js.write_text(json.dumps(report, indent=1) + "\n")
    return md, js


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs, two seeds: a smoke test")
    parser.add_argument("--tasks", default=",".join(TASK_NAMES))
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--seeds", default=None, help="comma-separated (default 0-4; quick: 0,1)")
    parser.add_argument("--graphnet-init", default=None,
                        help="NAME for every graphnet layer, or hidden=NAME,output=NAME (a study, not the panel)")
    parser.add_argument("--out", default=None, help=f"directory for NAME.md/.json (default {RESULTS}; "
                                                    "quick mode and --graphnet-init write nothing unless given)")
    parser.add_argument("--name", default="quality")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    libraries = [lib.strip() for lib in args.libraries.split(",") if lib.strip()]
    bad = [t for t in tasks if t not in TASK_NAMES] + [lib for lib in libraries if lib not in LIBRARIES]
    if bad:
        parser.error(f"unknown {bad}; tasks: {list(TASK_NAMES)}, libraries: {list(LIBRARIES)}")
    seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",")]
    out = args.out if args.out is not None else (None if args.quick or args.graphnet_init else RESULTS)
    report = run(tasks, libraries, args.quick, seeds, args.graphnet_init, out, args.name)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
