"""``pezo parity``: the command line of the parity study (:mod:`pezo.host.parity`)."""

import argparse
import os
from pathlib import Path
import sys
import time

from pezo.host.data import DATASETS
from pezo.host.models import MODELS
from pezo.host.parity import VARIANTS, run_study
from pezo.host.parity_report import write_report
from pezo.host.trainbench import bench_training, format_training_rows

__all__ = ["main"]


def main(argv=None):
    p = argparse.ArgumentParser(prog="pezo parity",
                                description="Training-quality parity study: gaussian vs uniform "
                                            "vs pezo perturbations (tables and plots)")
    p.add_argument("--quick", action="store_true", help="reduced setting for CI (logreg, fewer "
                   "steps and variants; under 2 minutes on 2 cores)")
    p.add_argument("--out", "-o", default="docs", metavar="DIR",
                   help="output folder (default docs)")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per cell (default 20; 3 with --quick)")
    p.add_argument("--jobs", "-j", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes (default 2)")
    p.add_argument("--datasets", help="comma list of data sets (default: all; quick: all)")
    p.add_argument("--models", help="comma list of models (default: logreg,mlp; quick: logreg)")
    p.add_argument("--variants", help="semicolon list of variant names (default: the setting's); "
                   "known: " + "; ".join(VARIANTS))
    p.add_argument("--no-pool", action="store_true", help="skip the pool-size study")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--bench", action="store_true", help="only print bench_training() figures "
                   "(training steps/s; perturbation path vs forward pass per step; with --quick: "
                   "a short run)")
    args = p.parse_args(argv)
    if args.bench:
        print("\n".join(format_training_rows(bench_training(args.quick))))
        return 0
    if args.seeds is None:
        args.seeds = 3 if args.quick else 20
    if args.seeds < 1 or args.jobs < 1:
        p.error("--seeds and --jobs must be positive")
    pairs = variants = None
    if args.datasets or args.models:
        dss = args.datasets.split(",") if args.datasets else list(DATASETS)
        mds = args.models.split(",") if args.models else (["logreg"] if args.quick
                                                           else list(MODELS))
        for v, known, what in [(d, DATASETS, "Dataset") for d in dss] + \
                [(m, MODELS, "Model") for m in mds]:
            if v not in known:
                p.error(f"{what} must be one of {', '.join(known)}, not {v!r}")
        pairs = [(d, m) for d in dss for m in mds]
    if args.variants:
        variants = [v.strip() for v in args.variants.split(";") if v.strip()]
        for v in variants:
            if v not in VARIANTS:
                p.error(f"Variant must be one of {'; '.join(VARIANTS)}, not {v!r}")
    command = "pezo parity" + (" --quick" if args.quick else "") + \
        f" --out {args.out}" + (f" --seeds {args.seeds}" if args.seeds != (3 if args.quick else 20) else "") + \
        (f" --datasets {args.datasets}" if args.datasets else "") + \
        (f" --models {args.models}" if args.models else "") + \
        (f" --variants '{args.variants}'" if args.variants else "") + \
        (" --no-pool" if args.no_pool else "") + \
        (f" --jobs {args.jobs}" if args.jobs != min(2, os.cpu_count() or 1) else "")
    t0 = time.perf_counter()
    study = run_study(quick=args.quick, seeds=args.seeds, jobs=args.jobs, pairs=pairs,
                      variants=variants, pool_sizes=[] if args.no_pool else None,
                      progress=not args.no_progress)
    elapsed = time.perf_counter() - t0
    summary, pool_rows = write_report(study, args.out, args.quick, args.seeds, elapsed, command)
    print(f"parity study ({'quick' if args.quick else 'full'}): {elapsed:.0f} s")
    for key, cells in summary.items():
        g = cells.get("gaussian", {}).get("acc_mean", float("nan"))
        parts = [f"{v} {c['acc_mean']:.2f}" for v, c in cells.items()]
        print(f"  {key}: " + ", ".join(parts) + f" (gaussian {g:.2f})")
    for n, c in pool_rows:
        print(f"  pool N={n}: {c['acc_mean']:.2f} +- {c['acc_std']:.2f}")
    print(f"written {Path(args.out) / 'parity.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
