"""What the benchmark runs on: thread pinning, a description, and sgemm's speed.

GFLOP/s figures are only meaningful next to what this machine's BLAS reaches
on a large single-precision matrix product, so that is measured at the start
of every run (median of several, the machine is noisy).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time

import numpy as np

__all__ = ["pin_threads", "describe", "sgemm_gflops", "thread_env"]

_limiter = None  # kept alive: threadpoolctl's limits last as long as the object


def pin_threads(threads: int) -> list[dict]:
    """Limit BLAS/OpenMP pools in this process to ``threads``; returns what was found."""
    global _limiter
    try:
        import threadpoolctl
    except ImportError:  # the bench extra brings it; without it, say so in the report
        return [{"internal_api": "unknown (threadpoolctl not installed)", "num_threads": None}]
    _limiter = threadpoolctl.threadpool_limits(limits=threads)
    return [
        {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
        for info in threadpoolctl.threadpool_info()
    ]


def thread_env(threads: int) -> dict[str, str]:
    """Environment for a worker subprocess: its own library gets ``threads``; numpy's
    BLAS (only used there to make data) gets one, so its idle threads cannot spin
    against the library being timed."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        OPENBLAS_NUM_THREADS="1",
        BENCH_THREADS=str(threads),
    )
    return env


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def describe(threads: int, pools: list[dict]) -> dict:
    """Date, CPU, cores, memory, Python/numpy/BLAS versions and thread counts."""
    import scipy

    blas = next((p for p in pools if p.get("internal_api") in ("openblas", "mkl", "blis")), {})
    info = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "blas": " ".join(str(blas.get(k)) for k in ("internal_api", "version", "architecture") if blas.get(k)),
        "threads": threads,
        "thread_pools": pools,
    }
    try:
        import graphnet

        info["graphnet"] = graphnet.__version__
    except ImportError:  # pragma: no cover - the benchmark needs graphnet anyway
        pass
    return info


def sgemm_gflops(n: int = 2048, reps: int = 7) -> dict:
    """Median and best GFLOP/s of an ``n x n x n`` float32 product."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    np.dot(a, b, out=c)  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        np.dot(a, b, out=c)
        times.append(time.perf_counter() - start)
    flops = 2.0 * n**3
    return {
        "n": n,
        "median_gflops": flops / statistics.median(times) / 1e9,
        "best_gflops": flops / min(times) / 1e9,
    }
