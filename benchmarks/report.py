"""Targets, PASS/MISS, and the results table (Markdown and JSON)."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["evaluate", "markdown", "write"]

MiB = 2**20


def _ratio(result, variant):
    """graphnet's time over ``variant``'s: the median of per-repetition ratios when
    the two took turns, else the ratio of medians."""
    if f"ratio_{variant}" in result:
        return result[f"ratio_{variant}"]
    seconds = result.get("seconds", {})
    if "graphnet" in seconds and variant in seconds:
        return seconds["graphnet"] / seconds[variant]
    return None


def _at_most(limit):
    return lambda v: v <= limit


def _below(limit):
    return lambda v: v < limit


def _targets(name: str) -> list[tuple[str, str, object, object]]:
    """``(what, target text, value getter, test)`` per target of workload ``name``."""
    numpy_ratio = ("graphnet / numpy reference", lambda r: r.get("ratio_numpy"))
    vs = {
        "W1": [
            (*numpy_ratio, "<= 1.10", _at_most(1.10)),
            ("graphnet / torch (default Adam)", lambda r: _ratio(r, "torch"), "< 1 (faster)", _below(1.0)),
            ("stretch: graphnet / torch (fused Adam)", lambda r: _ratio(r, "torch_fused"), "< 1 (faster)",
             _below(1.0)),
        ],
        "W2": [(*numpy_ratio, "<= 1.50", _at_most(1.50)),
               ("graphnet / torch", lambda r: _ratio(r, "torch"), "< 1 (faster)", _below(1.0))],
        "W3": [
            (*numpy_ratio, "<= 1.10", _at_most(1.10)),
            ("graphnet / torch", lambda r: _ratio(r, "torch"), "<= 1.35", _at_most(1.35)),
            ("peak memory growth, graphnet / numpy", _memory_ratio, "<= 1.20", _at_most(1.20)),
        ],
        "W4": [
            (*numpy_ratio, "<= 1.05", _at_most(1.05)),
            ("graphnet / torch", lambda r: _ratio(r, "torch"), "<= 1.10", _at_most(1.10)),
            ("predict's allocations, full rows / 10% of rows", _predict_growth, "<= 1.10 (O(chunk))",
             _at_most(1.10)),
        ],
        "W5": [(*numpy_ratio, "<= 1.50", _at_most(1.50)),
               ("graphnet / torch", lambda r: _ratio(r, "torch"), "< 1 (faster)", _below(1.0))],
        "W6": [("graphnet / torch nn.Module", lambda r: _ratio(r, "torch"), "< 1 (faster)", _below(1.0))],
        "W7": [
            *[
                (f"exponent of {phase} time vs nodes+edges", _exponent(phase), "<= 1.10", _at_most(1.10))
                for phase in ("build", "plan", "first_step", "step")
            ],
            ("plan time / networkx topological_sort (largest graph)",
             lambda r: r.get("plan_over_networkx_sort"), "<= 5", _at_most(5.0)),
        ],
        "W8": [
            ("one-row predict / the same forward in hand-written numpy", lambda r: r.get("ratio_numpy"),
             "<= 1.20", _at_most(1.20)),
            ("one-row predict / onnxruntime on graphnet's ONNX export", lambda r: r.get("ratio_onnxruntime"),
             "< 1 (faster)", _below(1.0)),
            ("one-row compile_predict / onnxruntime on graphnet's ONNX export",
             lambda r: r.get("ratio_compiled_onnxruntime"), "< 1 (faster)", _below(1.0)),
        ],
    }
    return [(what, text, get, test) for what, get, text, test in vs.get(name, [])]


def _memory_ratio(r):
    memory = r.get("memory", {})
    if memory.get("graphnet") and memory.get("numpy"):
        return memory["graphnet"] / memory["numpy"]
    return None


def _predict_growth(r):
    memory = r.get("memory", {})
    if "graphnet" in memory and "graphnet_small" in memory:
        # One MiB of slack: a few small per-call objects do not make it O(rows).
        return (memory["graphnet"] + MiB) / (max(memory["graphnet_small"], 0) + MiB)
    return None


def _exponent(phase):
    return lambda r: r.get("exponents", {}).get(phase)


def evaluate(result: dict) -> list[dict]:
    """The workload's targets with their measured values and PASS/MISS (``n/a`` when
    a value could not be measured, e.g. PyTorch not installed)."""
    checks = []
    for what, text, get, test in _targets(result["workload"]):
        value = get(result)
        status = "n/a" if value is None else ("PASS" if test(value) else "MISS")
        checks.append({"what": what, "target": text, "value": value, "status": status})
    return checks


def _s(value) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.2f}"
    if value >= 0.01:
        return f"{value:.3f}"
    return f"{value * 1e3:.2f} ms"


def _x(value) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _mib(value) -> str:
    return "—" if value is None else f"{value / MiB:.1f}"


def markdown(report: dict) -> str:
    """The whole report as Markdown: header, main table, targets, W7, notes."""
    m = report["machine"]
    lines = [
        f"# graphnet benchmark{' (quick mode: small sizes, not for the targets)' if report['quick'] else ''}",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['system']}",
        f"- Python {m['python']}, numpy {m['numpy']} ({m['blas']}), scipy {m['scipy']}, "
        + ", ".join(report.get("libraries", [])),
        f"- threads: {m['threads']} (BLAS pools: "
        + ", ".join(f"{p.get('internal_api')} {p.get('num_threads')}" for p in m["thread_pools"])
        + "; PyTorch set_num_threads, MKL/OMP in its subprocess)",
        f"- sgemm {report['sgemm']['n']}³ float32: {report['sgemm']['median_gflops']:.0f} GFLOP/s median, "
        f"{report['sgemm']['best_gflops']:.0f} best",
        "- seconds are medians per unit; ratios are medians of per-repetition ratios: graphnet and the "
        "numpy reference alternate in one process, and PyTorch's repetitions (in a subprocess of its "
        "own, one process running at a time) take turns with them; scikit-learn runs afterwards "
        "in its own subprocess",
        "- graphnet runs with its numba kernel (numba is a core dependency where it has wheels, so this "
        "is a plain install); 'without numba' is the same run with it switched off (the numpy fallback "
        "of platforms without numba wheels), interleaved with the others",
        "",
        "| workload | unit | graphnet s | numpy s | graphnet/numpy | torch s | graphnet/torch | sklearn s "
        "| GFLOP/s graphnet | % of sgemm | peak MiB graphnet / numpy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    sgemm = report["sgemm"]["median_gflops"]
    for r in report["results"]:
        if r["workload"] in ("W7", "W8"):
            continue
        sec = r.get("seconds", {})
        gflops = r["flops"] / sec["graphnet"] / 1e9 if "graphnet" in sec and r.get("flops") else None
        torch_s = sec.get("torch")
        if "torch_fused" in sec:
            torch_cell = f"{_s(torch_s)} (fused Adam {_s(sec['torch_fused'])})"
            torch_ratio = f"{_x(_ratio(r, 'torch'))} ({_x(_ratio(r, 'torch_fused'))})"
        else:
            torch_cell, torch_ratio = _s(torch_s), _x(_ratio(r, "torch"))
        mem = r.get("memory", {})
        plain = f" ({_x(r['ratio_numpy_plain'])} without numba)" if "ratio_numpy_plain" in r else ""
        lines.append(
            f"| {r['workload']} {r['title']} | {r['unit']} | {_s(sec.get('graphnet'))} | {_s(sec.get('numpy'))} "
            f"| {_x(r.get('ratio_numpy'))}{plain} | {torch_cell} | {torch_ratio} | {_s(sec.get('sklearn'))} "
            f"| {'—' if gflops is None else f'{gflops:.1f}'} "
            f"| {'—' if gflops is None else f'{100 * gflops / sgemm:.0f}%'} "
            f"| {_mib(mem.get('graphnet'))} / {_mib(mem.get('numpy'))} |"
        )
    lines += ["", "## Targets", "", "| workload | what | target | measured | result |", "|---|---|---|---|---|"]
    for r in report["results"]:
        for c in r.get("checks", []):
            value = "—" if c["value"] is None else f"{c['value']:.2f}"
            lines.append(f"| {r['workload']} | {c['what']} | {c['target']} | {value} | **{c['status']}** |")
    for r in report["results"]:
        if r["workload"] != "W7":
            continue
        lines += [
            "",
            "## W7 scaling",
            "",
            "Random DAGs of hidden nodes of width 16, about two synapses per node.",
            "",
            "| nodes | synapses | build s | plan s | first train_step s | next train_step s "
            "| networkx topological_sort s | plan / sort |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in r["sizes"]:
            lines.append(
                f"| {s['nodes']:,} | {s['edges']:,} | {_s(s['build'])} | {_s(s['plan'])} | {_s(s['first_step'])} "
                f"| {_s(s['step'])} | {_s(s['networkx_sort'])} | {s['plan'] / s['networkx_sort']:.1f}× |"
            )
        lines.append("")
        lines.append(
            "Fitted exponent of time against nodes+synapses (all sizes; last two sizes): "
            + ", ".join(
                f"{phase} {r['exponents'][phase]:.2f} ({r['last_segment_exponents'][phase]:.2f})"
                for phase in r["exponents"]
            )
        )
    for r in report["results"]:
        if r["workload"] == "W8":
            lines += _latency_table(r)
    lines += ["", "## Notes", ""]
    for r in report["results"]:
        notes = []
        times = r.get("times", {})
        if r["workload"] == "W1":
            for name in ("graphnet", "numpy", "torch", "torch_fused"):
                if len(times.get(name, [])) > 1:
                    epochs = ", ".join(f"{t:.2f}" for t in times[name])
                    notes.append(f"{name} epochs (s): {epochs}; last/first {times[name][-1] / times[name][0]:.2f}")
        agreement = r.get("agreement")
        if agreement:
            notes.append(
                "agreement with the reference after the same batches: "
                + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in agreement.items())
            )
        if r["workload"] == "W4" and r.get("memory"):
            mem = r["memory"]
            notes.append(
                "predict's allocations beyond its result: "
                + ", ".join(f"{k} {_mib(v)} MiB" for k, v in mem.items())
            )
        if r.get("graph"):
            notes.append("graph: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in r["graph"].items()))
        for library, answer in r.get("others", {}).items():
            if "skipped" in answer or "error" in answer:
                notes.append(f"{library}: {answer.get('skipped') or answer.get('error')}")
        for note in notes:
            lines.append(f"- {r['workload']}: {note}")
    if report.get("closing"):
        lines += ["", "## Closing note", "", report["closing"]]
    return "\n".join(lines) + "\n"


def _latency_table(r: dict) -> list[str]:
    libraries = [k for k in ("graphnet", "compiled", "numpy", "onnxruntime") if k in r["batches"][0]["seconds"]]
    lines = [
        "",
        "## W8 serving latency",
        "",
        f"One predict call on one thread: µs per call, the median of {r['reps']} repetitions; "
        "the ratios are medians of per-repetition ratios. graphnet is `predict`, compiled is "
        "`compile_predict()`'s forward.",
        "",
        "| rows | " + " | ".join(f"{k} µs" for k in libraries)
        + " | graphnet / numpy | graphnet / onnxruntime | compiled / onnxruntime | largest difference from graphnet |",
        "|---|" + "---|" * (len(libraries) + 4),
    ]
    for row in r["batches"]:
        cells = " | ".join(f"{row['seconds'][k] * 1e6:.1f}" for k in libraries)
        diff = max(row["max_abs_diff"].values(), default=None)
        lines.append(f"| {row['batch']} | {cells} | {_x(row.get('ratio_numpy'))} "
                     f"| {_x(row.get('ratio_onnxruntime'))} | {_x(row.get('ratio_compiled_onnxruntime'))} "
                     f"| {'—' if diff is None else f'{diff:.1e}'} |")
    return lines


def write(report: dict, directory: Path, stem: str = "latest") -> tuple[Path, Path]:
    """``<stem>.md`` and ``<stem>.json`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    md, js = directory / f"{stem}.md", directory / f"{stem}.json"
    md.write_text(markdown(report))
    js.write_text(json.dumps(report, indent=1, default=float) + "\n")
    return md, js
