"""``python -m benchmarks [--quick] [--only W1,W3] [--no-torch] [--no-sklearn]``."""

from __future__ import annotations

import argparse
import logging
import sys

from . import FRAMEWORKS, RESULTS, WORKLOAD_NAMES, report, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not for the targets")
    parser.add_argument("--only", default=",".join(WORKLOAD_NAMES), help="comma-separated workloads (W1..W7)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads (default: all cores)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions instead of each workload's own")
    parser.add_argument("--out", default=None,
                        help=f"directory for latest.md/.json (default {RESULTS}; quick mode writes nothing unless given)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("graphnet").setLevel(logging.WARNING)  # no epoch lines inside the timings
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


if __name__ == "__main__":
    sys.exit(main())
