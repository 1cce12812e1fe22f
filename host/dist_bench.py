"""``pezo distbench`` / ``make distbench``: what distributed training buys on this machine.

A benchmark, not a test: figures are printed (Markdown tables) and written to
``build/distbench/distbench.json``, nothing is asserted.

* **Speed grid.** digits / mlp for a grid of hidden widths x batch sizes (the forward-pass cost
  grows with both): steps per second of the plain trainer (one process, no Dask), and of
  :func:`pezo.host.dist.train_dist` with 1 worker (1x1) and 2 workers (2x1: L+ and L- on different
  workers; 1x2: two data shards), all on one LocalCluster of 2 single-threaded worker processes.
  Each cell runs every variant ``repeats`` times, interleaved (so load from other processes hits
  all of them alike), for a step count calibrated to about ``seconds`` per run of 1x1; the table
  gives the mean and its 95 % t-interval, the speed-up of each layout over 1x1 paired by repeat
  (mean and 95 % t-interval of the per-repeat ratios), the forward-pass time per step of the plain
  trainer, and the bytes exchanged per step. The crossover is the smallest forward cost at which
  a 2-worker layout's speed-up interval lies above 1.
* **Parallel capacity.** Before and after the grid, a fixed NumPy loop on one worker, then on
  both at once: the ratio of the work done is the number of cores the two workers actually had
  (the machine may be shared).
* **Accuracy.** The default digits runs (logreg and mlp, 8,000 steps) with the plain trainer and
  the 1x1, 2x1 and 1x2 layouts: test accuracy and the final weight hash.
"""

import json
import math
import os
from pathlib import Path
import time

import numpy as np

from pezo.argtypes import positive_int, progress_printer
from pezo.cluster import check_scheduler, dask_client
from pezo.host.data import load_dataset
from pezo.host.dist import _build_source, _weights_hash, train_dist
from pezo.host.models import make_model
from pezo.host.train import TrainConfig, train

__all__ = ["register", "cmd_distbench", "bench_speed", "bench_accuracy", "interval",
           "parallel_capacity"]

HIDDEN = (16, 128, 256, 512, 1024)
BATCHES = (64, 0)               # 0: the full training set (1,077 examples)
LAYOUTS = ("1x1", "2x1", "1x2")


def interval(xs):
    """(mean, low, high): the mean of ``xs`` and its two-sided 95 % Student-t interval."""
    xs = np.asarray(xs, dtype=float)
    m = float(xs.mean())
    if len(xs) < 2:
        return m, float("nan"), float("nan")
    # lazy import: scipy is heavy and needed only here
    from scipy.stats import t
    h = float(t.ppf(0.975, len(xs) - 1) * xs.std(ddof=1) / math.sqrt(len(xs)))
    return m, m - h, m + h


def _spin(seconds):
    """NumPy work for ``seconds`` on one thread (a 135x64 by 64x1024 product and its tanh, the
    shape of the 1024-wide MLP's first layer on one chunk); returns the iterations done."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    X, W = rng.random((135, 64)), rng.random((64, 1024))
    with threadpool_limits(limits=1, user_api="blas"):
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            np.tanh(X @ W)
            n += 1
    return n


def parallel_capacity(client, seconds=2.0):
    """The cores two workers get right now: the work both do at the same time over the work one
    does alone (2.0 on two free cores; about 1.0 when other processes leave one core's worth).
    Returns (capacity, load average over the last minute)."""
    ws = sorted(client.scheduler_info(n_workers=-1)["workers"])[:2]
    one = client.submit(_spin, seconds, workers=[ws[0]], pure=False).result()
    both = [client.submit(_spin, seconds, workers=[w], pure=False) for w in ws]
    return sum(f.result() for f in both) / one, os.getloadavg()[0]


def _rate_plain(kw):
    r = train(eval_every=10**6, **kw)
    return r.steps_run / r.wall_time, 1e3 * r.forward_time / r.steps_run


def _rate_dist(client, layout, kw):
    r = train_dist(layout=layout, client=client, eval_every=10**6, check_every=10**6, **kw)
    n = r.steps_run
    return (r.loop_steps_per_s, r.bytes_per_step, r.round_trip_ms,
            (1e3 / r.loop_steps_per_s, 1e3 * r.source_time / n, 1e3 * r.forward_time / n))


def bench_speed(client, hidden=HIDDEN, batches=BATCHES, repeats=5, seconds=1.0, say=None):
    """The speed grid (module docstring); returns one dict per (hidden, batch)."""
    rows = []
    for h in hidden:
        for b in batches:
            kw = dict(dataset="digits", model="mlp", hidden=h, batch=b, lr=1e-3)
            r = train_dist(layout="1x1", client=client, steps=20, eval_every=10**6, **kw)
            steps = int(min(3000, max(30, seconds * r.loop_steps_per_s)))
            kw["steps"] = steps
            _rate_plain(dict(kw, steps=5))              # warm caches
            runs = {"plain": [], **{lay: [] for lay in LAYOUTS}}
            fwd, nbytes, trip, split = [], {}, {}, {}
            for _ in range(repeats):
                rate, f = _rate_plain(kw)
                runs["plain"].append(rate)
                fwd.append(f)
                for lay in LAYOUTS:
                    rate, nb, rt, ms = _rate_dist(client, lay, kw)
                    runs[lay].append(rate)
                    nbytes[lay] = nb
                    trip.setdefault(lay, []).append(rt)
                    split.setdefault(lay, []).append(ms)
            base = np.asarray(runs["1x1"])
            row = {"hidden": h, "batch": b or 1077, "n_params": r.n_params, "steps": steps,
                   "forward_ms": float(np.median(fwd)), "work": h * (b or 1077),
                   "rates": {k: interval(v) for k, v in runs.items()}, "raw": runs,
                   # paired by repeat (the runs of one repeat ran back to back)
                   "speedup": {k: interval(np.asarray(runs[k]) / base)
                               for k in ("plain", "2x1", "1x2")},
                   "bytes_per_step": nbytes,
                   "round_trip_ms": {k: float(np.median(v)) for k, v in trip.items()},
                   # per step: wall ms, worker 0's engine ms and forward ms (medians)
                   "step_ms": {k: [float(x) for x in np.median(v, axis=0)]
                               for k, v in split.items()}}
            rows.append(row)
            if say:
                say(f"hidden {h} batch {row['batch']}: " + ", ".join(
                    f"{k} {v[0]:.1f}" for k, v in row["rates"].items()) + " steps/s")
    return rows


def crossover(rows):
    """For each 2-worker layout: the smallest forward cost (plain trainer's ms per step) of the
    cells where it beats 1x1, the lower end of the 95 % interval of its paired speed-up above 1,
    and whether every costlier cell does too (None: never)."""
    out = {}
    for lay in ("2x1", "1x2"):
        wins = sorted((r["forward_ms"], r["speedup"][lay][1] > 1.0) for r in rows)
        first = next((i for i, (_, w) in enumerate(wins) if w), None)
        out[lay] = None if first is None else {
            "forward_ms": wins[first][0], "all_above": all(w for _, w in wins[first:])}
    return out


def bench_accuracy(client, say=None):
    """The default digits runs, plain and 1x1 / 2x1 / 1x2 (module docstring)."""
    rows = []
    for model in ("logreg", "mlp"):
        cfg = TrainConfig(dataset="digits", model=model).resolved()
        ds = load_dataset(cfg.dataset)
        src = _build_source(cfg, make_model(cfg.model, ds.n_features, ds.n_classes).n_params,
                            None)
        plain = train(cfg, src=src)
        row = {"model": model, "steps": plain.steps_run,
               "plain": {"test_acc": plain.test_acc, "steps_per_s": plain.steps_per_s,
                         "hash": _weights_hash(src)}}
        for lay in LAYOUTS:
            r = train_dist(dataset="digits", model=model, layout=lay, client=client)
            row[lay] = {"test_acc": r.test_acc, "hash": r.final_hash,
                        "steps_per_s": r.loop_steps_per_s, "bytes_per_step": r.bytes_per_step}
        rows.append(row)
        if say:
            say(f"accuracy {model}: plain {plain.test_acc:.4f}, " + ", ".join(
                f"{lay} {row[lay]['test_acc']:.4f}" for lay in LAYOUTS))
    return rows


def _fmt(iv):
    m, lo, hi = iv
    return f"{m:.1f} [{lo:.1f}, {hi:.1f}]" if math.isfinite(lo) else f"{m:.1f}"


def speed_table(rows) -> str:
    head = ("| hidden | batch | d | width x batch | forward ms/step (plain) | plain | 1x1 | 2x1 "
            "| 1x2 | 2x1 / 1x1 | 1x2 / 1x1 | bytes/step 1x1 / 2x1 / 1x2 |")
    ratio = lambda iv: (f"{iv[0]:.2f} [{iv[1]:.2f}, {iv[2]:.2f}]" if math.isfinite(iv[1])
                        else f"{iv[0]:.2f}")
    lines = [head, "|" + "---|" * 12]
    for r in sorted(rows, key=lambda r: r["forward_ms"]):
        v = r["rates"]
        nb = r["bytes_per_step"]
        lines.append(f"| {r['hidden']} | {r['batch']} | {r['n_params']:,} | {r['work']:,} | "
                     f"{r['forward_ms']:.2f} | {_fmt(v['plain'])} | {_fmt(v['1x1'])} | "
                     f"{_fmt(v['2x1'])} | {_fmt(v['1x2'])} | {ratio(r['speedup']['2x1'])} | "
                     f"{ratio(r['speedup']['1x2'])} | {nb['1x1']:.0f} / {nb['2x1']:.0f} / "
                     f"{nb['1x2']:.0f} |")
    return "\n".join(lines)


def split_table(rows) -> str:
    """Where a step's time goes, per layout: wall, worker 0's engine passes, its forward passes,
    and the rest (round trip, driver, waiting for the slower worker)."""
    lines = ["| hidden | batch | " + " | ".join(f"{lay}: step / engine / forward / rest ms"
                                                for lay in LAYOUTS) + " |", "|" + "---|" * 5]
    for r in sorted(rows, key=lambda r: r["forward_ms"]):
        cells = []
        for lay in LAYOUTS:
            w, e, f = r["step_ms"][lay]
            cells.append(f"{w:.2f} / {e:.2f} / {f:.2f} / {w - e - f:.2f}")
        lines.append(f"| {r['hidden']} | {r['batch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_table(rows) -> str:
    lines = ["| digits model | steps | test accuracy plain / 1x1 / 2x1 / 1x2 | final weight hash "
             "plain / 1x1 / 2x1 / 1x2 | steps/s plain / 1x1 / 2x1 / 1x2 |", "|" + "---|" * 5]
    keys = ("plain",) + LAYOUTS
    for r in rows:
        lines.append(f"| {r['model']} | {r['steps']} | " +
                     " / ".join(f"{r[k]['test_acc']:.4f}" for k in keys) + " | " +
                     " / ".join(r[k]["hash"] for k in keys) + " | " +
                     " / ".join(f"{r[k]['steps_per_s']:.0f}" for k in keys) + " |")
    return "\n".join(lines)


def register(subparsers):
    """Add ``pezo distbench`` to an argparse sub-parser set."""
    b = subparsers.add_parser("distbench", help="distributed training benchmark: steps/s of 1 vs "
                              "2 Dask workers over a grid of forward-pass costs, bytes per step, "
                              "accuracy against the plain trainer (make distbench; "
                              "docs/distributed.md)")
    b.add_argument("--repeats", type=positive_int, default=5,
                   help="runs of every variant per cell (default 5)")
    b.add_argument("--seconds", type=float, default=1.0,
                   help="target length of one run in seconds (default 1)")
    b.add_argument("--hidden", default=",".join(map(str, HIDDEN)),
                   help=f"comma list of mlp hidden widths (default {','.join(map(str, HIDDEN))})")
    b.add_argument("--batches", default=",".join(map(str, BATCHES)),
                   help="comma list of batch sizes, 0 = full training set (default "
                        f"{','.join(map(str, BATCHES))})")
    b.add_argument("--no-accuracy", action="store_true",
                   help="skip the accuracy runs (2 x 4 runs of 8,000 steps)")
    b.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                   help="use this Dask scheduler (2 workers or more) instead of a local cluster")
    b.add_argument("--out", "-o", default="build/distbench", metavar="DIR",
                   help="folder for distbench.json (default build/distbench)")
    b.set_defaults(func=cmd_distbench)
    return b


def _ints(text, what):
    try:
        vals = [int(x) for x in text.split(",")]
    except ValueError:
        vals = [-1]
    if not vals or min(vals) < 0:
        raise ValueError(f"{what} must be a comma list of non-negative integers, not {text!r}")
    return vals


def cmd_distbench(args):
    hidden = _ints(args.hidden, "Hidden widths (--hidden)")
    batches = _ints(args.batches, "Batch sizes (--batches)")
    if args.scheduler is not None:
        check_scheduler(args.scheduler)
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        raise ValueError(f"Run length (--seconds) must be a positive number, not "
                         f"{args.seconds!r}")
    say = progress_printer("distbench")
    t0 = time.perf_counter()
    with dask_client(args.scheduler, workers=2) as client:
        cap = [parallel_capacity(client)]
        say(f"parallel capacity {cap[0][0]:.2f} cores (load average {cap[0][1]:.1f})")
        rows = bench_speed(client, hidden, batches, args.repeats, args.seconds, say)
        cap.append(parallel_capacity(client))
        say(f"parallel capacity {cap[1][0]:.2f} cores (load average {cap[1][1]:.1f})")
        acc = None if args.no_accuracy else bench_accuracy(client, say)
    result = {"speed": rows, "crossover": crossover(rows), "accuracy": acc,
              "capacity": cap, "repeats": args.repeats, "seconds": time.perf_counter() - t0}
    print(f"Parallel capacity of the 2 workers (work of both at once / one alone): "
          f"{cap[0][0]:.2f} before, {cap[1][0]:.2f} after the speed grid (load average "
          f"{cap[0][1]:.1f}, {cap[1][1]:.1f})\n")
    print("Steps per second, mean [95 % interval] of", args.repeats, "runs:\n")
    print(speed_table(rows))
    print("\nPer step, medians:\n")
    print(split_table(rows))
    print("\nCrossover (smallest plain forward ms/step where the layout's paired speed-up over "
          "1x1 is above 1 with 95 % confidence):", json.dumps(result["crossover"]))
    if acc:
        print("\nTest accuracy, digits defaults:\n")
        print(accuracy_table(acc))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "distbench.json").write_text(json.dumps(result, indent=1))
    print(f"\nwritten {out / 'distbench.json'} ({result['seconds']:.0f} s)")
    return 0

