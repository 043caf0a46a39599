"""``python -m benchmarks [--quick] [--only W1,W3] [--no-torch] [--no-sklearn] [--device cuda]``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import FRAMEWORKS, RESULTS, WORKLOAD_NAMES, report, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not for the targets")
    parser.add_argument("--only", default=",".join(WORKLOAD_NAMES), help="comma-separated workloads (W1..W8)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads (default: all cores)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions instead of each workload's own")
    parser.add_argument("--out", default=None,
                        help=f"directory for latest.md/.json (default {RESULTS}; quick mode writes nothing unless given)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cuda: graphnet, the CuPy reference and PyTorch CUDA on a GPU (W1, W3, W4)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("graphnet").setLevel(logging.WARNING)  # no epoch lines inside the timings
    if args.device == "cuda":
        return _gpu(args)
    names = [n.strip().upper() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOAD_NAMES]
    if unknown:
        parser.error(f"unknown workloads {unknown}; known: {list(WORKLOAD_NAMES)}")
    frameworks = [f for f in FRAMEWORKS if not (f == "torch" and args.no_torch or f == "sklearn" and args.no_sklearn)]
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    result = run(quick=args.quick, workloads=names, frameworks=frameworks, threads=args.threads,
                 reps=args.reps, out_dir=out)
    print(report.markdown(result))
    return 0


def _gpu(args) -> int:
    from . import gpu

    why = gpu.available()
    if why is not None:
        print(f"python -m benchmarks --device cuda: {why}", file=sys.stderr)
        return 2
    default = ",".join(WORKLOAD_NAMES)
    names = list(gpu.GPU_WORKLOADS) if args.only == default else [n.strip().upper() for n in args.only.split(",")]
    unknown = [n for n in names if n not in gpu.GPU_WORKLOADS]
    if unknown:
        print(f"--device cuda runs {list(gpu.GPU_WORKLOADS)}, not {unknown}", file=sys.stderr)
        return 2
    result = gpu.run(quick=args.quick, workloads=names, reps=args.reps, torch=not args.no_torch)
    text = gpu.markdown(result)
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu.md").write_text(text)
        (out / "gpu.json").write_text(json.dumps(result, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
