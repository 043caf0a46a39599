"""The tabular benchmark: tables with categorical columns and missing values.

``python -m benchmarks.tables [--quick] [--seeds 0,1,2,3,4] [--libraries graphnet,torch,keras,sklearn]
[--out DIR]``

Two real tables that ship inside installed packages (:mod:`benchmarks.tables_data`:
palmerpenguins' penguins, vega_datasets' cars; nothing is downloaded), each
trained by graphnet (the DataFrame itself, its preprocessing inside the
graph), a scikit-learn ``Pipeline`` (``SimpleImputer``, ``StandardScaler``,
``OneHotEncoder``, MLP), Keras 3 (torch backend) with its ``Normalization``
and ``Embedding`` layers, and PyTorch with ``nn.Embedding``: the same net,
epochs, batch and Adam (see :mod:`benchmarks.tables_worker`), five seeds.
Each library runs in a subprocess of its own, one at a time, with one thread.

Targets (a benchmark's, not a test's):

* per table, graphnet's mean test metric at least the best peer's, within two
  standard errors of the difference of the means
  (``sqrt(se_graphnet² + se_peer²)``, ``se = std / sqrt(seeds)``);
* training at least 5x faster than Keras and 2x faster than PyTorch (the
  median of the seeds' times, per table);
* the embedding path within 1.2x the time of the same net fed one-hot rows at
  50 categories, and far faster at 10,000.

Writes ``benchmarks/results/tables.md`` and ``.json`` (``--quick``: nothing
unless ``--out`` is given).
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
from .tables_data import TABLES
from .tables_worker import LIBRARIES

__all__ = ["run", "summarise", "markdown", "main"]

log = logging.getLogger("benchmarks")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PEERS = ("torch", "keras", "sklearn")
SPEED = {"keras": 5.0, "torch": 2.0}
_MODULE = {"graphnet": "graphnet", "torch": "torch", "keras": "keras", "sklearn": "sklearn",
           "embedding": "graphnet"}
_LABEL = {"graphnet": "graphnet", "torch": "PyTorch", "keras": "Keras 3", "sklearn": "scikit-learn"}


def _worker(library: str, seeds, quick: bool) -> list[dict]:
    if importlib.util.find_spec(_MODULE[library]) is None:
        return [{"skipped": f"{library} is not installed"}]
    command = [sys.executable, "-m", "benchmarks.tables_worker", library, "--seeds", ",".join(map(str, seeds))]
    if quick:
        command.append("--quick")
    env = machine.thread_env(1)
    env.setdefault("KERAS_BACKEND", "torch")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        answers.append({"error": lines[-1] if lines else f"exit {done.returncode}"})
    return answers


def _stats(scores: list[float]) -> dict:
    n = len(scores)
    std = statistics.stdev(scores) if n > 1 else 0.0
    return {"mean": statistics.fmean(scores), "std": std, "se": std / math.sqrt(n), "n": n}


def summarise(name: str, answers: dict) -> dict:
    """Statistics per library and the verdicts of one table."""
    table = TABLES[name]
    sign = 1.0 if table.higher_is_better else -1.0
    stats = {lib: {**_stats(a["scores"]), "seconds": statistics.median(a["seconds"])}
             for lib, a in answers.items() if "scores" in a}
    summary = {"table": name, "title": table.title, "metric": table.metric, "stats": stats,
               "answers": answers, "verdict": "n/a", "speed": {}}
    peers = [lib for lib in PEERS if lib in stats]
    if "graphnet" not in stats or not peers:
        return summary
    best = max(peers, key=lambda lib: sign * stats[lib]["mean"])
    g, b = stats["graphnet"], stats[best]
    se_diff = math.sqrt(g["se"] ** 2 + b["se"] ** 2)
    target = b["mean"] - 2 * sign * se_diff
    summary.update(best_peer=best, se_diff=se_diff, target=target,
                   verdict="PASS" if sign * (g["mean"] - target) >= 0 else "MISS")
    for peer, factor in SPEED.items():
        if peer in stats:
            speedup = stats[peer]["seconds"] / g["seconds"]
            summary["speed"][peer] = {"speedup": speedup, "target": factor,
                                      "verdict": "PASS" if speedup >= factor else "MISS"}
    return summary


def run(libraries=LIBRARIES, quick: bool = False, seeds=None, out_dir: Path | None = None) -> dict:
    seeds = list(seeds if seeds is not None else ((0, 1) if quick else range(5)))
    answers = {name: {} for name in TABLES}
    for library in libraries:
        log.info("%s: %d tables, %d seeds", library, len(TABLES), len(seeds))
        for answer in _worker(library, seeds, quick):
            for name in ([answer["table"]] if "table" in answer else TABLES):
                answers[name].setdefault(library, answer)
    embedding = next((a.get("embedding") for a in _worker("embedding", seeds, quick) if "embedding" in a), None)
    report = {
        "quick": quick,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{machine._cpu_model()}, {machine.os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "seeds": seeds,
        "results": [summarise(name, answers[name]) for name in TABLES],
        "embedding": embedding,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "tables.json").write_text(json.dumps(report, indent=1))
        (out_dir / "tables.md").write_text(markdown(report))
    return report


def markdown(report: dict) -> str:
    lines = ["# Tabular benchmark", "", f"- date: {report['date']}", f"- machine: {report['machine']} "
             "(shared with other work while it ran: times are noisy)",
             f"- Python {report['python']}; seeds {report['seeds']}; one thread per library, one library at a time",
             "- same net (categorical columns and numbers -> relu 32 -> relu 16 -> output), 100 epochs, "
             "batch 32, Adam(1e-3), each library's own initialisation", ""]
    for r in report["results"]:
        lower = "" if r["metric"] == "accuracy" else " (lower is better)"
        lines += [f"## {r['title']}: test {r['metric']}{lower}", "",
                  "| library | version | mean ± se | std | training s (median) | graphnet's speed-up |",
                  "|---|---|---|---|---|---|"]
        g = r["stats"].get("graphnet")
        for lib, answer in r["answers"].items():
            s = r["stats"].get(lib)
            if s is None:
                lines.append(f"| {_LABEL.get(lib, lib)} | — | {answer.get('error') or answer.get('skipped')} | | | |")
                continue
            speed = f"{s['seconds'] / g['seconds']:.1f}×" if g and lib != "graphnet" else ""
            lines.append(f"| {_LABEL.get(lib, lib)} | {answer.get('library', '')} | {s['mean']:.4f} ± "
                         f"{s['se']:.4f} | {s['std']:.4f} | {s['seconds']:.3f} | {speed} |")
        if "best_peer" in r:
            lines += ["", f"- quality: {r['verdict']}: graphnet {g['mean']:.4f} against the best peer "
                      f"({_LABEL[r['best_peer']]}) {r['stats'][r['best_peer']]['mean']:.4f}, target "
                      f"{'≥' if r['metric'] == 'accuracy' else '≤'} {r['target']:.4f} (two se of the difference)"]
            for peer, v in r["speed"].items():
                lines.append(f"- speed: {v['verdict']}: {v['speedup']:.1f}× faster than {_LABEL[peer]} "
                             f"(target {v['target']:g}×)")
        lines.append("")
    if report.get("embedding"):
        lines += ["## The embedding path against one-hot rows", "",
                  "| categories | embedding s/epoch | one-hot s/epoch | ratio | target |", "|---|---|---|---|---|"]
        for k, t in report["embedding"].items():
            target = "≤ 1.2×" if k == "50" else "far below 1×"
            lines.append(f"| {int(k):,} | {t['embedding']:.4f} | {t['one_hot']:.4f} | {t['ratio']:.2f}× | {target} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tables", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", default=None)
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",")]
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    report = run([lib.strip() for lib in args.libraries.split(",")], args.quick, seeds, out)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
