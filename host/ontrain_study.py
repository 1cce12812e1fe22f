"""Measurements of the on-chip training golden model (docs/on_device.md): accuracy over seeds
against the host's float MeZO trainer (gaussian z), the cost of each approximation on its own
(one change from the design per variant), and the golden model's time per step.

``python -m pezo.host.ontrain_study --seeds 10 --out build/ontrain`` (``--model mlp`` for the
MLP, ``--workers 2``; ``--quick`` for a 3-seed, 1,000-step smoke run). Writes ``study.json``
and prints Markdown tables. Every variant uses the same seeds, so differences are paired.
"""

import argparse
import concurrent.futures
import json
import os
import time

import numpy as np

from pezo.host.ontrain import train_on_chip_model
from pezo.host.parity import paired_interval
from pezo.sim.ontrain import Arith, OnChipConfig, param_count

__all__ = ["VARIANTS", "run_one", "run_study", "time_steps", "sampler_stats", "main"]

#: variant -> (description, train_on_chip_model keyword arguments beyond the design's)
VARIANTS = {
    "design": ("the design (4-bit codes, table, table loss)", {}),
    "exact-loss": ("exact base-2 cross-entropy instead of the tables (not hardware)",
                   {"loss": "exact"}),
    "5-bit": ("5-bit codes (digits stored exactly)", {"feature_bits": 5}),
    "no-table": ("no standardisation: x / 16", {"standardise": False}),
    "log64": ("64-entry log table (log_bits 6)", {"arith": Arith(log_bits=6)}),
    "tanh4096": ("MLP: tanh table of 4,096 entries (tanh_frac 10)",
                 {"arith": Arith(tanh_frac=10)}),
    "fine-all": ("5-bit codes, exact loss and the 4,096-entry tanh table together",
                 {"feature_bits": 5, "loss": "exact", "arith": Arith(tanh_frac=10)}),
}


def run_one(job):
    """One run: ``job`` = (kind, variant, model, seed, steps); returns a dict of figures."""
    kind, variant, model, seed, steps = job
    t0 = time.perf_counter()
    if kind == "host":
        # lazy import: the host trainer (and its sources) is needed only for this job kind
        from pezo.host.train import train
        r = train(dataset="digits", model=model, source="gaussian", seed=seed, steps=steps)
        return {"kind": kind, "variant": "host-gaussian", "model": model, "seed": seed,
                "test_acc": r.test_acc, "val_acc": r.val_acc, "best_step": r.best_step,
                "wall": time.perf_counter() - t0}
    kw = dict(VARIANTS[variant][1])
    r = train_on_chip_model(model=model, seed=seed, steps=steps, **kw)
    late = slice(max(0, steps - 1000), steps)
    dl = np.abs(r.sum_plus[late] - r.sum_minus[late])
    return {"kind": kind, "variant": variant, "model": model, "seed": seed,
            "test_acc": r.test_acc, "val_acc": r.val_acc, "best_step": r.best_step,
            "step_ms": r.step_ms, "wall": time.perf_counter() - t0,
            "median_abs_dsum_late": float(np.median(dl)),
            "zero_dsum_late": float(np.mean(dl == 0)),
            **{k: int(v) for k, v in r.stats.items()}}


def run_study(seeds, model="logreg", steps=8000, variants=None, workers=2, progress=True,
              host=True):
    """Every variant and the host's gaussian trainer on the same seeds; returns the rows and
    the paired summaries."""
    variants = list(VARIANTS) if variants is None else variants
    jobs = [("chip", v, model, s, steps) for v in variants for s in seeds]
    if host:
        jobs += [("host", "host-gaussian", model, s, steps) for s in seeds]
    rows = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as ex:
        for row in ex.map(run_one, jobs):
            rows.append(row)
            if progress:
                print(f"  {row['variant']:<16} seed {row['seed']:>3}: test "
                      f"{100 * row['test_acc']:.2f} % ({row['wall']:.1f} s)", flush=True)
    return rows, summarise(rows, seeds)


def summarise(rows, seeds):
    acc = {}
    for r in rows:
        acc.setdefault(r["variant"], {})[r["seed"]] = 100 * r["test_acc"]
    out = {}
    for v, by in acc.items():
        a = np.array([by[s] for s in seeds])
        out[v] = {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
                  "n": len(a)}
        for ref in ("host-gaussian", "design"):
            if ref in acc and v != ref:
                d = a - np.array([acc[ref][s] for s in seeds])
                out[v][f"vs_{ref}"] = paired_interval(d)
    return out


def time_steps(model="logreg", steps=2000, golden_steps=20, seed=0):
    """ms per step of the golden model: the fused engine over ``steps`` steps, the plain golden
    engine over ``golden_steps`` (the per-thread CPU clock and the wall clock)."""
    out = {}
    for engine, n in (("fused", steps), ("golden", golden_steps)):
        c0, w0 = time.thread_time(), time.perf_counter()
        r = train_on_chip_model(model=model, steps=n, seed=seed, engine=engine)
        out[engine] = {"steps": n, "cpu_ms": 1e3 * (time.thread_time() - c0) / n,
                       "wall_ms": 1e3 * (time.perf_counter() - w0) / n,
                       "loop_ms": r.step_ms}
    return out


def sampler_stats(seed=0, n=1077, batch=1024, steps=10_000, cells=32):
    """The sampler's indices against uniform: chi-square over the N indices, KS of r / 2^24
    (the first 2,048,000 fields), chi-square of consecutive pairs in cells x cells bins (cell
    c holds the indices i with i cells // N = c: 33 or 34 of them, so the expected count of a
    pair of cells is proportional to the product of their widths), and the largest relative
    deviation of a count from its expectation (``steps`` x ``batch`` draws)."""
    # lazy import: scipy is heavy and needed only here
    from scipy import stats
    from pezo.sim.ontrain import Sampler
    smp = Sampler(seed, n, batch)
    counts = np.zeros(n, dtype=np.int64)
    pairs = np.zeros(cells * cells, dtype=np.int64)
    rs = []
    prev = None
    for _ in range(0, steps, 500):
        _, idx, r = smp.next(500)
        flat = idx.reshape(-1)
        counts += np.bincount(flat, minlength=n)
        c = flat * cells // n
        if prev is not None:
            c = np.concatenate([[prev], c])
        pairs += np.bincount(c[:-1] * cells + c[1:], minlength=cells * cells)
        prev = c[-1]
        if len(rs) < 4:
            rs.append(r.reshape(-1))
    draws = int(counts.sum())
    exp = draws / n
    width = np.bincount(np.arange(n) * cells // n, minlength=cells)     # indices per cell
    pair_exp = np.outer(width, width).reshape(-1) / n ** 2 * pairs.sum()
    return {"seed": seed, "n": n, "draws": draws,
            "chi2_p": float(stats.chisquare(counts).pvalue),
            "max_rel_dev": float(np.abs(counts / exp - 1).max()),
            "ks_p_r": float(stats.kstest(np.concatenate(rs) / 2.0 ** 24, "uniform").pvalue),
            "pairs_chi2_p": float(stats.chisquare(pairs, pair_exp).pvalue),
            "rule_max_rel_error": n / 2.0 ** 24}


def _table(summary, order):
    lines = ["| variant | test % (mean ± std) | vs host gaussian, points [95 % CI] | vs design |",
             "|---|---|---|---|"]
    for v in order:
        if v not in summary:
            continue
        s = summary[v]
        cells = []
        for ref in ("host-gaussian", "design"):
            p = s.get(f"vs_{ref}")
            cells.append(f"{p['mean']:+.2f} [{p['lo']:+.2f}, {p['hi']:+.2f}]" if p else "")
        lines.append(f"| {v} | {s['mean']:.2f} ± {s['std']:.2f} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m pezo.host.ontrain_study", description=__doc__)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--model", default="logreg", choices=("logreg", "mlp"))
    p.add_argument("--variants", default=None, help="comma-separated (default: all)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="build/ontrain")
    p.add_argument("--no-timing", action="store_true")
    p.add_argument("--no-host", action="store_true", help="skip the host's gaussian runs")
    p.add_argument("--sampler", action="store_true", help="only the sampler's statistics")
    p.add_argument("--quick", action="store_true", help="3 seeds, 1,000 steps")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.steps = 3, 1000
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    if args.sampler:
        res = [sampler_stats(s) for s in seeds]
        print(json.dumps(res, indent=1))
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "sampler.json"), "w") as f:
            json.dump(res, f, indent=1)
        return res
    variants = args.variants.split(",") if args.variants else None
    for v in variants or ():
        if v not in VARIANTS:
            p.error(f"variant must be among {', '.join(VARIANTS)}, not {v!r}")
    t0 = time.perf_counter()
    rows, summary = run_study(seeds, args.model, args.steps, variants, args.workers,
                              host=not args.no_host)
    result = {"model": args.model, "steps": args.steps, "seeds": seeds,
              "design": OnChipConfig(model=args.model).resolved().to_dict(),
              "n_params": param_count(args.model, 64, 10), "rows": rows, "summary": summary,
              "wall_s": time.perf_counter() - t0}
    if not args.no_timing:
        result["timing"] = time_steps(args.model)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"study_{args.model}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(_table(summary, list(VARIANTS) + ["host-gaussian"]))
    if "timing" in result:
        print(json.dumps(result["timing"], indent=1))
    print(f"wrote {path} ({result['wall_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
