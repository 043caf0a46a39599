"""graphnet's speed suite: each workload against a hand-fused numpy trainer,
PyTorch (CPU) and scikit-learn. Run it with ``python -m benchmarks`` (or
``make bench``); ``--quick`` runs everything small in seconds.

Beside it, ``python -m benchmarks.quality`` (:mod:`benchmarks.quality`) is the
quality panel: whether graphnet's defaults learn as well as PyTorch's, Keras's
and scikit-learn's on eight small problems.

Neither is part of the test run: ``tests/test_benchmarks.py`` only smoke-tests
the quick mode's graphnet-versus-numpy part and the panel's verdicts, and
never asserts a time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import machine, report, runner

__all__ = ["run", "WORKLOAD_NAMES", "RESULTS"]

WORKLOAD_NAMES = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8")
FRAMEWORKS = ("graphnet", "numpy", "torch", "sklearn")
RESULTS = Path(__file__).resolve().parent / "results"
CLOSING = Path(__file__).resolve().parent / "closing.md"

log = logging.getLogger("benchmarks")


def run(quick: bool = False, workloads=WORKLOAD_NAMES, frameworks=FRAMEWORKS, threads: int | None = None,
        reps: int | None = None, out_dir: Path | None = None, sgemm_size: int | None = None) -> dict:
    """Run ``workloads`` and return the report (a JSON-safe dict).

    Parameters
    ----------
    quick : bool
        Small sizes (seconds in all), for smoke tests; not for the targets.
    workloads : sequence of str
        Any of ``W1`` ... ``W8``.
    frameworks : sequence of str
        ``graphnet`` always runs; ``numpy`` (the reference, in this process),
        ``torch`` and ``sklearn`` (each in a subprocess, when installed).
    threads : int, optional
        BLAS/OpenMP threads for every library; all cores by default.
    reps : int, optional
        Repetitions per workload instead of each workload's own count.
    out_dir : Path, optional
        Where to write ``latest.md`` and ``latest.json``; nothing is written
        when it is None.
    """
    threads = threads or runner.env_threads()
    pools = machine.pin_threads(threads)
    info = machine.describe(threads, pools)
    log.info("machine: %s, %s cores; threads pinned to %d", info["cpu"], info["cores"], threads)
    sgemm = machine.sgemm_gflops(n=sgemm_size or (512 if quick else 2048), reps=3 if quick else 7)
    log.info("sgemm: %.0f GFLOP/s", sgemm["median_gflops"])
    results, libraries = [], []
    for name in workloads:
        result = runner.run_workload(name, quick, frameworks, threads, reps)
        result["checks"] = report.evaluate(result)
        for other in result.get("others", {}).values():
            if other.get("library") and other["library"] not in libraries:
                libraries.append(other["library"])
        results.append(result)
        for check in result["checks"]:
            log.info("%s: %s %s: %s", name, check["what"], check["target"], check["status"])
    full = {"quick": quick, "machine": info, "sgemm": sgemm, "libraries": libraries, "results": results}
    if not quick and CLOSING.exists():
        full["closing"] = CLOSING.read_text().strip()
    if out_dir is not None:
        report.write(full, Path(out_dir))
    return full
