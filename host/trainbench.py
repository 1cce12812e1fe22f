"""Training speed for ``make bench``: steps per second of every source and, per step, the
perturbation path next to the NumPy forward pass (:func:`bench_training`)."""

import time

import numpy as np

from pezo.host.data import load_dataset
from pezo.host.models import make_model
from pezo.host.parity import PAIRS
from pezo.host.train import train

__all__ = ["bench_training", "format_training_rows"]


BENCH_PAIRS = PAIRS          # every (data set, model) at the bench's batch size
BENCH_BATCH = 64
#: (label, train() settings, steps) of the ZO methods' speed rows
ALGO_BENCH = [
    ("mezo q=1", dict(algo="mezo"), 1000),
    ("ranksgd q=4", dict(algo="ranksgd", q=4), 500),
    ("deepzero cge sparsity 0.9", dict(algo="deepzero", estimator="cge", sparsity=0.9), 20),
    ("deepzero rge sparsity 0.9 (MASK)", dict(algo="deepzero", estimator="rge", sparsity=0.9),
     1000),
    ("elasticzo (RANGE + last layer by BP)", dict(algo="elasticzo"), 1000),
    ("elasticzo-int8 (Q2.6)", dict(algo="elasticzo-int8"), 1000),
]


def _train_timing(runs, **kw):
    """Median per-step figures of ``runs`` training runs with the same settings (after a short
    warm-up run that fills the caches): the trainer's own clocks, so the perturbation path
    (source: step seeds, prefetch, passes 1-3, update) and the forward pass (L+ and L-) are
    timed separately around the same calls."""
    train(**dict(kw, steps=2, eval_every=10**6))
    src, fwd, wall, last = [], [], [], None
    for _ in range(runs):
        last = train(eval_every=10**6, **kw)
        src.append(1e3 * last.source_time / last.steps_run)
        fwd.append(1e3 * last.forward_time / last.steps_run)
        wall.append(last.wall_time)
    src_ms, fwd_ms = float(np.median(src)), float(np.median(fwd))
    steps = last.steps_run
    return {"count": steps, "seconds": float(np.median(wall)),
            "rate": steps / float(np.median(wall)), "unit": "steps/s",
            "source_ms_per_step": src_ms, "forward_ms_per_step": fwd_ms,
            "ratio": src_ms / fwd_ms if fwd_ms else float("nan"), "runs": runs,
            "source": last.source}


def bench_training(quick=False):
    """Training speed (``make bench``; ``pezo parity --bench``).

    * every (data set, model) at batch 64 with the default ``pezo`` source (the fused golden
      engine): steps per second, and per step the time of the perturbation path and of the
      NumPy forward pass and their ratio (median of 3 runs of 2,000 steps; ``quick``: 1 run of
      300);
    * digits / logreg with the other reuse strategies, the iCE40 board's default engine (pregen,
      d = 4,096), streamed weights (golden STREAM in 40-word blocks, fused), the float Gaussian
      source, the golden engine one command per pass (batched front end, and the plain model)
      and the hardware in the Amaranth simulator;
    * the ZO methods (:data:`ALGO_BENCH`) on digits / mlp, golden engine and Amaranth-simulated
      hardware;
    * the NumPy forward pass alone (L+ and L-, batch 64, one BLAS thread).

    Returns rows in the format of :mod:`pezo.bench` (what, config, count, seconds, rate, unit)
    plus ``source_ms_per_step``, ``forward_ms_per_step`` and ``ratio``."""
    # lazy import: threadpoolctl is heavy and needed only here
    from threadpoolctl import threadpool_limits

    rows = []
    runs, steps = (1, 300) if quick else (3, 2000)
    for ds, model in BENCH_PAIRS:
        r = _train_timing(runs, dataset=ds, model=model, steps=steps, batch=BENCH_BATCH,
                          source="pezo")
        rows.append(dict(r, what="training step, golden engine (fused)",
                         config=f"{ds}/{model} batch {BENCH_BATCH}, pezo none"))
    ds, model = "digits", "logreg"
    others = [("training step, golden engine (fused)", "pezo pregen",
               dict(source="pezo", reuse="pregen"), runs, steps),
              ("training step, golden engine (fused)", "pezo, board ice40's default engine",
               dict(source="pezo", board="ice40"), runs, steps),
              ("training step, golden STREAM", "pezo none, streamed in 40-word blocks",
               dict(source="pezo", weights="stream", block_words=40), runs,
               100 if quick else 300),
              ("training step, golden engine (fused)", "pezo onthefly",
               dict(source="pezo", reuse="onthefly"), runs, steps),
              ("training step, float gaussian source", "gaussian", dict(source="gaussian"),
               runs, steps),
              ("training step, golden engine (batched)", "pezo none, a command per pass",
               dict(source="pezo", engine="batched"), 1, 500 if quick else 2000),
              ("training step, golden engine (plain model)", "pezo none, a command per pass",
               dict(source="pezo", engine="golden"), 1, 5 if quick else 20),
              ("training step, hardware in Amaranth sim", "pezo-sim none",
               dict(source="pezo-sim"), 1, 2 if quick else 5)]
    none = next(r for r in rows if r["config"] == f"{ds}/{model} batch {BENCH_BATCH}, pezo none")
    for what, label, kw, n_runs, n_steps in others:
        r = _train_timing(n_runs, dataset=ds, model=model, steps=n_steps, batch=BENCH_BATCH,
                          **kw)
        r["vs_none"] = r["source_ms_per_step"] / none["source_ms_per_step"]  # the same run's
        rows.append(dict(r, what=what, config=f"{ds}/{model} batch {BENCH_BATCH}, {label}"))
    # the ZO methods of pezo.host.algorithms on digits / mlp (relu for the INT8 one): golden
    # engine (fused) and the hardware in the Amaranth simulator, steps per second
    for label, kw, n_steps in ALGO_BENCH:
        for source, n_runs, k in (("pezo", runs, n_steps), ("pezo-sim", 1, 2)):
            r = _train_timing(n_runs, dataset="digits", model="mlp", batch=BENCH_BATCH,
                              source=source, steps=max(2, k // (10 if quick else 1)), **kw)
            where = "golden engine" if source == "pezo" else "hardware in Amaranth sim"
            rows.append(dict(r, what=f"algorithm step, {where}",
                             config=f"digits/mlp batch {BENCH_BATCH}, {label}"))
    d = load_dataset(ds)
    rng = np.random.default_rng(0)
    n = 200 if quick else 2000
    idx = [rng.choice(len(d.y_train), BENCH_BATCH, replace=False) for _ in range(n)]
    for kind in ("logreg", "mlp"):          # the trainer's setting: one BLAS thread
        m = make_model(kind, d.n_features, d.n_classes)
        theta = np.stack([m.init(0), m.init(1)])
        with threadpool_limits(limits=1, user_api="blas"):
            t0 = time.perf_counter()
            for i in idx:
                m.loss(theta, d.X_train[i], d.y_train[i])
            secs = time.perf_counter() - t0
        rows.append({"what": "NumPy forward pass per step (L+, L-)",
                     "config": f"{ds}/{kind} batch {BENCH_BATCH}", "count": n, "seconds": secs,
                     "rate": n / secs, "unit": "steps/s", "forward_ms_per_step": 1e3 * secs / n})
    return rows


def format_training_rows(rows) -> list:
    """Text lines: per training row, steps/s, the perturbation path and the forward pass in ms
    per step, and their ratio (the perturbation path is not the bottleneck when it is < 1)."""
    lines = [f"{'measurement':42s} {'configuration':52s} {'steps/s':>9s} {'engine ms':>10s} "
             f"{'forward ms':>10s} {'ratio':>8s}"]
    for r in rows:
        src = r.get("source_ms_per_step")
        lines.append(f"{r['what']:42s} {r['config']:52s} {r['rate']:9.1f} "
                     + (f"{src:10.4f} " if src is not None else f"{'-':>10s} ")
                     + f"{r['forward_ms_per_step']:10.4f} "
                     + (f"{r['ratio']:8.2f}" if "ratio" in r else f"{'-':>8s}"))
    return lines
