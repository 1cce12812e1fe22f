"""The parity study (running it): does PeZO's cheap perturbation train as well as Gaussian perturbation?

``pezo parity [--quick] [--out docs]`` (``make parity``, ``QUICK=1``) trains every
(data set, model) pair with the float baselines (``gaussian``, ``uniform``) and the bit-exact engine
(``pezo``: each reuse strategy, both bank layouts, a few pregen pool sizes), 3 seeds
each, the same number of steps (so the same number of forward passes: 2 per step, q = 1) and the
same minibatches for every source. It writes into the output folder:

* ``parity.md``: the tables (test accuracy mean +- std over seeds, test and train loss, the
  difference to ``gaussian`` in accuracy points), the pool-size study and, when the output folder
  holds ``parity_ablation.json`` (written by ``pezo ablation``), the "Why pezo
  trails on digits" section rendered from it;
* ``parity_<dataset>_<model>.png``: learning curves (mean over seeds);
* ``parity_pool.png``: test accuracy against the pregen pool size N, down to small pools;
* ``parity.json``: every run's final figures and the mean curves.

The full setting runs all three data sets with both models (about 5 minutes of wall time on 2
cores); ``--quick`` (for CI, under 2 minutes on 2 cores) runs the logistic regression with fewer
steps and variants.

:func:`bench_training` measures training steps per second with the golden engine (fused, batched
and plain) and with the simulated hardware, and per step the time of the perturbation path next to
that of the NumPy forward pass, for ``make bench`` (``--bench`` prints it alone).
"""

from concurrent.futures import ProcessPoolExecutor, as_completed
import numpy as np

from pezo.host.train import DEFAULTS, train

__all__ = ["run_study", "run_jobs", "paired_interval", "VARIANTS", "QUICK_VARIANTS", "POOL_SIZES", "PAIRS"]

VARIANTS = {
    "gaussian": dict(source="gaussian"),
    "uniform": dict(source="uniform"),
    "pezo none, independent lanes": dict(source="pezo", reuse="none", shared=False),
    "pezo none, shared bank": dict(source="pezo", reuse="none", shared=True),
    "pezo onthefly": dict(source="pezo", reuse="onthefly"),
    "pezo pregen": dict(source="pezo", reuse="pregen"),
}
QUICK_VARIANTS = list(VARIANTS)
PLOTTED = list(VARIANTS)
POOL_SIZES = [16, 64, 256, 1024, 4096]
QUICK_POOL_SIZES = [64, 1024, 16384]
POOL_CASE = ("digits", "logreg")
PAIRS = [(d, m) for d in ("digits", "breast_cancer", "wine") for m in ("logreg", "mlp")]
QUICK_STEPS = {"digits": 1500, "breast_cancer": 600, "wine": 600}


def _run(job):
    key, overrides = job
    r = train(**overrides)
    return key, {"test_acc": r.test_acc, "test_loss": r.test_loss, "val_acc": r.val_acc,
                 "val_loss": r.val_loss, "train_loss": r.train_loss, "train_acc": r.train_acc,
                 "forward_passes": r.forward_passes, "wall_time": r.wall_time,
                 "source_time": r.source_time, "forward_time": r.forward_time,
                 "best_step": r.best_step, "depth": r.depth, "n_params": r.n_params,
                 "stats": r.stats, "source": r.source,
                 "curve": [(p["step"], p["train_loss"], p["val_acc"]) for p in r.curve]}


def _jobs(quick, seeds, pairs, variants, pool_sizes):
    jobs = []
    for ds, model in pairs:
        steps = QUICK_STEPS[ds] if quick else DEFAULTS[(ds, model)]["steps"]
        for name in variants:
            for seed in range(seeds):
                jobs.append((("main", ds, model, name, seed),
                             dict(VARIANTS[name], dataset=ds, model=model, seed=seed,
                                  steps=steps)))
    ds, model = POOL_CASE
    if pool_sizes and (ds, model) in pairs:
        steps = QUICK_STEPS[ds] if quick else DEFAULTS[(ds, model)]["steps"]
        for n in pool_sizes:
            for seed in range(seeds):
                jobs.append((("pool", ds, model, f"pezo pregen N={n}", seed),
                             dict(source="pezo", reuse="pregen", pool_size=n, dataset=ds,
                                  model=model, seed=seed, steps=steps)))
    # longest first (digits, mlp, engine sources) for a balanced pool of workers
    jobs.sort(key=lambda j: (j[0][1] != "digits", j[0][2] != "mlp", j[1]["source"] != "pezo"))
    return jobs


def run_study(quick=False, seeds=3, jobs=2, pairs=None, variants=None, pool_sizes=None,
              progress=True):
    """Run the study; returns {"main": {(ds, model, variant): [run, ...]}, "pool": {...}}."""
    pairs = pairs or ([(d, "logreg") for d in ("digits", "breast_cancer", "wine")] if quick
                      else PAIRS)
    variants = variants or (QUICK_VARIANTS if quick else list(VARIANTS))
    if pool_sizes is None:
        pool_sizes = QUICK_POOL_SIZES if quick else POOL_SIZES
    todo = _jobs(quick, seeds, pairs, variants, pool_sizes)
    # a pool-study run identical to a main-table run is not trained twice
    main_keys = {(k[1], k[2], k[3], k[4]) for k, _ in todo if k[0] == "main"}
    todo = [j for j in todo if j[0][0] == "main" or (j[0][1], j[0][2], j[0][3], j[0][4])
            not in main_keys]
    out = {"main": {}, "pool": {}}
    for (kind, ds, model, name, seed), res in run_jobs(_run, todo, jobs, progress,
                                                       "parity study"):
        out[kind].setdefault((ds, model, name), []).append(dict(res, seed=seed))
    for (ds, model, name), runs in list(out["main"].items()):
        if (ds, model) == POOL_CASE and name.startswith("pezo pregen N="):
            n = int(name.split("=")[1])
            if n in pool_sizes:
                out["pool"][(ds, model, name)] = runs
    for runs in list(out["main"].values()) + list(out["pool"].values()):
        runs.sort(key=lambda r: r["seed"])
    return out


def run_jobs(fn, todo, jobs=2, progress=True, title="study"):
    """Yield ``fn(job)`` for every job of ``todo`` (in completion order), in ``jobs`` worker
    processes (in this process for ``jobs <= 1``), with a rich progress bar titled ``title``."""
    bar = None
    if progress:
        # lazy import: rich is heavy and needed only here
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
        bar = Progress(title, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        bar.start()
        task = bar.add_task("runs", total=len(todo))
    try:
        if jobs <= 1:
            results = map(fn, todo)
        else:
            ex = ProcessPoolExecutor(jobs)
            results = (f.result() for f in as_completed([ex.submit(fn, j) for j in todo]))
        for res in results:
            yield res
            if bar:
                bar.advance(task)
    finally:
        if bar:
            bar.stop()
        if jobs > 1:
            ex.shutdown(cancel_futures=True)


def _agg(runs):
    acc = np.array([r["test_acc"] for r in runs]) * 100
    return {"acc_mean": float(acc.mean()), "acc_std": float(acc.std()),
            "test_loss": float(np.mean([r["test_loss"] for r in runs])),
            "train_loss": float(np.mean([r["train_loss"] for r in runs])),
            "forward_passes": int(runs[0]["forward_passes"]), "seeds": len(runs),
            "seconds": float(np.mean([r["wall_time"] for r in runs])),
            "coef_clipped": float(np.mean([r["stats"].get("coef_clipped", 0) for r in runs])),
            "saturated": float(np.mean([r["stats"].get("saturated_passes", 0) for r in runs]))}


def paired_interval(diffs, margin=0.5):
    """Mean of paired differences with its 95 % t-interval and the equivalence verdict for
    +-``margin`` points."""
    # lazy import: scipy is heavy and needed only here
    from scipy import stats
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    lo, hi = mean - half, mean + half
    verdict = ("within 0.5" if -margin <= lo and hi <= margin else "behind" if hi < -margin
               else "ahead" if lo > margin else "undecided")
    if margin != 0.5:
        verdict = verdict.replace("0.5", str(margin))
    return {"n": n, "mean": mean, "lo": lo, "hi": hi, "verdict": verdict}
