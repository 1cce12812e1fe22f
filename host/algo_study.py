"""``pezo algorithms`` (``make algorithms``): the measurements of docs/algorithms.md, one table per
ZO method, every source on the same data, seeds and forward-pass budgets, with paired 95 %
intervals (:func:`pezo.host.parity.paired_interval`) of the differences that decide the question.

=================  =================================================================================
table              what is compared (all runs paired by seed: same init, minibatches, oracle noise)
=================  =================================================================================
ZO-RankSGD         synthetic objectives in d = 100 (a quadratic with eigenvalues 0.1..10 and the
                   Rosenbrock function), final f(x_T) / f(x_0): ZO-SGD with value access vs the
                   ranking oracle (full, top-k, noisy); and a classifier (digits, logreg) whose
                   oracle only orders minibatch losses; float (gaussian) vs engine (pezo) z
DeepZero           CGE vs RGE at equal forward-pass budgets and CGE accuracy vs sparsity (ZO-GraSP
                   layer ratios, random masks re-drawn), digits and wine, float vs engine
ElasticZO          vanilla ZO (MeZO) vs ElasticZO vs backpropagation, same models, data, steps;
                   memory overhead of the backpropagated last layer
ElasticZO-INT8     vanilla ZO vs float ElasticZO vs ElasticZO-INT8 (8-bit engine weights, integer
                   forward pass, loss and gradients); memory and time ratios; digits, wine and the
                   synthetic set of issue 23, with the Q1.7 settings it saturated with
=================  =================================================================================

Every classifier table also gives, per cell, the engine's saturation (passes that raised the
sticky flag, in how many runs; weights clipped when written) and the fraction of coordinate
updates that rounded to nothing (``TrainResult.saturation`` and ``updates``).

The tables are written into ``docs/algorithms.md`` between the markers ``<!-- results -->`` and
``<!-- /results -->`` (the text around them is the page's own), and every run into
``docs/algorithms.json``.
"""

import argparse
import json
import math
import os
from pathlib import Path
import re
import sys
import time
import warnings

import numpy as np

from pezo.host.data import load_dataset
from pezo.host.models import make_model
from pezo.host.parity import paired_interval, run_jobs
from pezo.host.perturb import derive_seed, derive_seeds, make_source
from pezo.host.algorithms import rank_weights
from pezo.host.train import TrainingWarning, train

__all__ = ["OBJECTIVES", "objective", "run_synthetic", "bp_train", "memory_bytes", "run_study",
           "write_tables", "main"]

OBJECTIVES = ("quadratic", "rosenbrock")
DIM = 100


def objective(name, d=DIM):
    """(f, x0): f maps (k, d) points to k values. ``quadratic``: 0.5 sum_i l_i (x_i - c_i)^2
    with l log-spaced in 0.1..10 and c uniform in [-1, 1] (a fixed draw); ``rosenbrock``:
    sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 (its minimum 0 at x = 1). Both start
    at x0 = 0."""
    if name == "quadratic":
        lam = np.logspace(-1, 1, d)
        c = np.random.default_rng(20250101).uniform(-1, 1, d)
        return (lambda x: 0.5 * ((np.atleast_2d(x) - c) ** 2 * lam).sum(axis=1)), np.zeros(d)
    if name == "rosenbrock":
        def f(x):
            x = np.atleast_2d(x)
            return (100 * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (1 - x[:, :-1]) ** 2).sum(axis=1)
        return f, np.zeros(d)
    raise ValueError(f"Objective must be one of {', '.join(OBJECTIVES)}, not {name!r}")


def run_synthetic(obj, method, source, seed, steps, q=4, lr=1e-3, mu=1e-2, top_k=0,
                  noise=0.0):
    """ZO on a synthetic objective through a perturbation source (the trainer's query and seed
    scheme): ``method`` ``value`` (ZO-SGD, g = (f+ - f-) / 2 mu) or ``rank`` (the oracle sees
    only the order of the 2q values, plus Gaussian noise of std ``noise`` times |f(x_0)|).
    Returns f(x_T) / f(x_0)."""
    f, x0 = objective(obj)
    src = make_source(source, x0.size)
    try:
        src.reset(x0, seed)
        real_mu = src.set_mu(mu)
        f0 = float(f(src.params())[0])
        rng = np.random.default_rng([seed, 12])
        for t in range(steps):
            seeds = derive_seeds(seed, 3, t, np.arange(q)).tolist()
            queries, vals = [], []
            for s in seeds:
                qy = src.begin(s)
                fp, fm = f(src.perturb_pair(qy))
                queries.append(qy)
                vals += [fp, fm]
            if method == "value":
                for i, qy in enumerate(queries):
                    src.update(qy, -lr * (vals[2 * i] - vals[2 * i + 1]) / (2 * real_mu) / q)
                continue
            scores = np.asarray(vals) + noise * abs(f0) * rng.standard_normal(2 * q)
            w, e = rank_weights(np.argsort(scores, kind="stable"), 2 * q, top_k or None)
            for i, qy in enumerate(queries):
                c = (w[2 * i] - w[2 * i + 1]) / e
                if c:
                    src.update(qy, -lr * c)
        return float(f(src.params())[0]) / f0
    finally:
        src.close()


def bp_train(dataset, model_name, steps, lr, batch, seed, activation="tanh", hidden=16):
    """Plain minibatch SGD by backpropagation through the whole MLP (the first-order reference of
    the ElasticZO table): the same init, minibatch order and steps as ``pezo train``."""
    ds = load_dataset(dataset)
    model = make_model(model_name, ds.n_features, ds.n_classes, hidden, activation)
    theta = model.init(derive_seed(seed, 1))
    rng = np.random.default_rng(derive_seed(seed, 2))
    n = len(ds.y_train)
    perm, at = None, n
    for _ in range(steps):
        if at + batch > n:
            perm, at = rng.permutation(n), 0
        idx = perm[at:at + batch]
        at += batch
        X, y = ds.X_train[idx], ds.y_train[idx]
        p = model.unpack(theta)
        a = X @ p["W1"] + p["b1"]
        h = np.tanh(a) if activation == "tanh" else np.maximum(a, 0)
        g_head, _ = model.head_grad(theta, X, y)
        z = h @ p["W2"] + p["b2"]
        e = np.exp(z - z.max(1, keepdims=True))
        prob = e / e.sum(1, keepdims=True)
        prob[np.arange(len(y)), y] -= 1
        prob /= len(y)
        dh = prob @ p["W2"].T
        da = dh * (1 - h ** 2) if activation == "tanh" else dh * (a > 0)
        g = np.concatenate([(X.T @ da).reshape(-1), da.sum(0), g_head])
        theta = theta - lr * g
    return model.evaluate(theta, ds.X_test, ds.y_test)[1]


def memory_bytes(model, batch, algo, wbytes=4, abytes=4):
    """Training memory of one step, counted as the paper counts it (weights, the activations
    kept, the gradient buffer), in bytes: ZO keeps the weights and one layer's activations at a
    time (the widest, batch x width); ElasticZO also keeps the last layer's input (batch x
    hidden) and output error (batch x classes) for backpropagation and its gradient (the last
    layer's parameters, in 4-byte words); ``wbytes``/``abytes``: 4 (float) or 1 (int8 weights,
    int8 activations; the int32 accumulators of one layer, batch x width x 4, are counted)."""
    width = max(model.n_in, model.hidden or 0, model.n_out)
    zo = model.n_params * wbytes + batch * width * abytes
    if algo == "mezo":
        return zo
    n_head = model.n_params - model.block_start("W2")
    extra = batch * (model.hidden + model.n_out) * abytes + n_head * 4
    if abytes == 1:
        extra += batch * width * 4          # one layer's int32 accumulators
    return zo + extra


# The study ------------------------------------------------------------------------------------

SOURCES = ("gaussian", "pezo")
#: The data sets of the ElasticZO tables: synthetic is issue 23's reproducer.
ELASTIC_SETS = ("digits", "wine", "synthetic")
#: ElasticZO-INT8 with its settings before issue 23 (Q1.7 weights, mu 5e-3, bp_lr 0.05): the
#: weights saturated the engine on the synthetic set and on wine.
INT8_OLD = "ElasticZO-INT8, Q1.7 (old defaults)"
INT8_OLD_SETTINGS = dict(weight_format="Q1.7", mu=5e-3, bp_lr=0.05)
#: How the tables name the sources: weights in float64 with Gaussian z, or in the golden engine.
LABELS = {"gaussian": "float", "pezo": "engine", "float": "float (no ZO)"}


def _jobs(quick, seeds):
    S = range(seeds)
    jobs = []
    # ZO-RankSGD, synthetic
    steps = 300 if quick else 1500
    # learning rates: the best of three (x3 apart) for each method on 2 seeds
    for obj, lr, rlr in (("quadratic", 1e-2, 1e-2), ("rosenbrock", 3e-4, 3e-3)):
        for name, kw in (("ZO-SGD (values)", dict(method="value", lr=lr)),
                         ("RankSGD full", dict(method="rank", lr=rlr)),
                         ("RankSGD top-2 of 8", dict(method="rank", lr=rlr, top_k=2)),
                         ("RankSGD noisy 1 %", dict(method="rank", lr=rlr, noise=0.01))):
            for src in SOURCES:
                for s in S:
                    jobs.append((("rank-synth", obj, name, src, s), ("synth", dict(
                        obj=obj, source=src, seed=s, steps=steps, **kw))))
    # ZO-RankSGD, classifier (digits logreg, q = 4)
    steps = 500 if quick else 3000
    for name, kw in (("ZO-SGD (values)", dict(algo="mezo", lr=5e-3)),
                     ("RankSGD full", dict(algo="ranksgd", lr=3e-3)),
                     ("RankSGD top-2 of 8", dict(algo="ranksgd", lr=3e-3, top_k=2)),
                     ("RankSGD noisy 0.05", dict(algo="ranksgd", lr=3e-3, rank_noise=0.05))):
        for src in SOURCES:
            for s in S:
                jobs.append((("rank-clf", "digits", name, src, s), ("train", dict(
                    dataset="digits", model="logreg", source=src, seed=s, steps=steps, q=4,
                    **kw))))
    # DeepZero: equal forward-pass budgets
    budget = {"digits": 6000 if quick else 30000, "wine": 3000 if quick else 12000}
    for ds in ("digits", "wine"):
        model = make_model("mlp", *_shape(ds))
        for sp in (0.0, 0.5, 0.9):
            kept = _kept(model, sp)
            cge_steps = max(1, budget[ds] // (kept + 1))
            for src in SOURCES:
                for s in S:
                    jobs.append((("deepzero", ds, f"CGE sparsity {sp}", src, s), ("train", dict(
                        dataset=ds, model="mlp", source=src, seed=s, algo="deepzero",
                        estimator="cge", sparsity=sp, steps=cge_steps, lr=1.0,
                        mask_every=max(1, cge_steps // 5)))))
                    jobs.append((("deepzero", ds, f"RGE sparsity {sp}", src, s), ("train", dict(
                        dataset=ds, model="mlp", source=src, seed=s, algo="deepzero",
                        estimator="rge", sparsity=sp, steps=budget[ds] // 2,
                        mask_every=max(1, budget[ds] // 10)))))
    # ElasticZO and INT8
    for ds in ELASTIC_SETS:
        steps = (1500 if quick else 6000) if ds == "digits" else (600 if quick else 2000)
        base = dict(dataset=ds, model="mlp", steps=steps, activation="relu")
        for name, kw in (("vanilla ZO", dict(algo="mezo")),
                         ("ElasticZO", dict(algo="elasticzo")),
                         ("ElasticZO-INT8", dict(algo="elasticzo-int8")),
                         ("ElasticZO-INT8, stochastic rounding", dict(
                             algo="elasticzo-int8", rounding="stochastic")),
                         (INT8_OLD, dict(algo="elasticzo-int8", **INT8_OLD_SETTINGS))):
            for src in SOURCES:
                if name.startswith("ElasticZO-INT8") and src != "pezo":
                    continue            # integer weights live in the engine
                for s in S:
                    jobs.append((("elastic", ds, name, src, s), ("train", dict(
                        base, source=src, seed=s, **kw))))
        for s in S:
            jobs.append((("elastic", ds, "backpropagation", "float", s), ("bp", dict(
                dataset=ds, model_name="mlp", steps=steps, lr=0.05, batch=_batch(ds), seed=s,
                activation="relu"))))
    return jobs


def _shape(ds):
    d = load_dataset(ds)
    return d.n_features, d.n_classes


def _batch(ds):
    from pezo.host.train import DEFAULTS
    return DEFAULTS[(ds, "mlp")]["batch"]


def _kept(model, sparsity):
    w = sum(math.prod(s) for n, s in model.shapes if n.startswith("W"))
    return int(round((1 - sparsity) * w)) + model.n_params - w


def _run(job):
    key, (kind, kw) = job
    t0 = time.perf_counter()
    if kind == "synth":
        return key, {"value": run_synthetic(**kw), "seconds": time.perf_counter() - t0}
    if kind == "bp":
        return key, {"value": bp_train(**kw), "seconds": time.perf_counter() - t0}
    with warnings.catch_warnings():     # kept in the result: the tables count them
        warnings.simplefilter("ignore", TrainingWarning)
        r = train(**kw)
    fwd_ms = 1e3 * r.forward_time / max(1, r.steps_run)
    return key, {"value": r.test_acc, "seconds": r.wall_time, "forward_passes": r.forward_passes,
                 "steps": r.steps_run, "steps_per_s": r.steps_per_s, "forward_ms": fwd_ms,
                 "stats": r.stats, "saturation": r.saturation, "updates": r.updates}


def run_study(quick=False, seeds=None, jobs=2, progress=True):
    seeds = seeds or (3 if quick else 10)
    out = {}
    for key, res in run_jobs(_run, _jobs(quick, seeds), jobs, progress, "algorithms study"):
        out.setdefault(key[:4], {})[key[4]] = res
    return {"seeds": seeds, "quick": quick, "runs": {"|".join(map(str, k)): v
                                                      for k, v in out.items()}}


# Tables ----------------------------------------------------------------------------------------

def _cells(study, table, case):
    """{(name, source): {seed: result}} of one table's case, in job order."""
    out = {}
    for k, v in study["runs"].items():
        t, c, name, src = k.split("|")
        if t == table and c == case:
            out[(name, src)] = {int(s): r for s, r in v.items()}
    return out


def _fmt(vals, pct):
    v = np.asarray(vals, dtype=float) * (100 if pct else 1)
    return f"{v.mean():.1f} +- {v.std():.1f}" if pct else f"{v.mean():.3g} +- {v.std():.2g}"


def _diff(a, b, pct, margin):
    seeds = sorted(set(a) & set(b))
    d = [(a[s]["value"] - b[s]["value"]) * (100 if pct else 1) for s in seeds]
    iv = paired_interval(d, margin)
    f = "{:+.2f}" if pct else "{:+.2g}"
    return f"{f.format(iv['mean'])} [{f.format(iv['lo'])}, {f.format(iv['hi'])}]"


def _table(study, table, case, ref, pct, margin, extra=None):
    cells = _cells(study, table, case)
    unit = "test accuracy %" if pct else "f(x_T) / f(x_0)"
    head = ["method", "source", unit,
            f"paired diff vs {ref[0]} ({LABELS.get(ref[1], ref[1])}), 95 % CI"]
    if extra:
        head += [e[0] for e in extra]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = cells.get(ref)
    for (name, src), runs in cells.items():
        vals = [r["value"] for r in runs.values()]
        diff = "-" if (name, src) == ref or base is None else _diff(runs, base, pct, margin)
        row = [name, LABELS.get(src, src), _fmt(vals, pct), diff]
        if extra:
            row += [e[1](runs) for e in extra]
        rows.append("| " + " | ".join(row) + " |")
    return rows


def _mean_of(field, fmt="{:,.0f}"):
    def cell(runs):
        v = [r[field] for r in runs.values() if field in r]
        return fmt.format(np.mean(v)) if v else "-"
    return cell


def _saturated(runs):
    """Mean saturated passes per run, and in how many runs any ("-": float weights)."""
    v = [r["saturation"]["saturated_passes"] for r in runs.values() if r.get("saturation")]
    return f"{np.mean(v):.1f} ({sum(x > 0 for x in v)}/{len(v)})" if v else "-"


def _clipped(runs):
    """Mean weights clipped when written per run, and in how many runs any."""
    v = [r["saturation"]["clipped_writes"] for r in runs.values() if r.get("saturation")]
    return f"{np.mean(v):.1f} ({sum(x > 0 for x in v)}/{len(v)})" if v else "-"


def _zero(runs):
    """Zero-rounded coordinate updates, % of those watched (mean over runs)."""
    v = [r["updates"]["fraction"] for r in runs.values() if r.get("updates")]
    return f"{100 * np.mean(v):.0f} %" if v else "-"


#: The saturation columns of every classifier table.
SATURATION = [("saturated passes (runs)", _saturated), ("clipped writes (runs)", _clipped),
              ("zero-rounded updates", _zero)]


def write_tables(study, path):
    """The results section of docs/algorithms.md (between the markers) and algorithms.json."""
    path = Path(path)
    n = study["seeds"]
    L = [f"Measured by `make algorithms` ({'--quick, ' if study['quick'] else ''}{n} seeds per "
         f"cell, seeds 0..{n - 1}; the same seeds give every source the same initial weights, "
         f"minibatches and oracle noise). Mean +- std over seeds; paired differences with "
         f"their 95 % t-interval.", ""]
    L += ["### ZO-RankSGD: synthetic objectives (d = 100, q = 4 directions, 8 points)", ""]
    for obj in OBJECTIVES:
        L += [f"**{obj}** (lower is better)", ""]
        L += _table(study, "rank-synth", obj, ("ZO-SGD (values)", "gaussian"), False, 0.0)
        L.append("")
    L += ["### ZO-RankSGD: digits / logreg, the oracle ranks minibatch losses (q = 4)", ""]
    L += _table(study, "rank-clf", "digits", ("ZO-SGD (values)", "gaussian"), True, 1.0,
                [("forward passes", _mean_of("forward_passes"))] + SATURATION)
    L += ["", "### DeepZero: CGE vs RGE at equal forward-pass budgets, accuracy vs sparsity", ""]
    for ds in ("digits", "wine"):
        L += [f"**{ds} / mlp**", ""]
        L += _table(study, "deepzero", ds, ("RGE sparsity 0.0", "gaussian"), True, 1.0,
                    [("forward passes", _mean_of("forward_passes")),
                     ("steps", _mean_of("steps"))] + SATURATION)
        L.append("")
    L += ["### ElasticZO and ElasticZO-INT8 (mlp, ReLU)", ""]
    for ds in ELASTIC_SETS:
        if not _cells(study, "elastic", ds):
            continue
        L += [f"**{ds} / mlp**", ""]
        L += _table(study, "elastic", ds, ("vanilla ZO", "pezo"), True, 1.0,
                    [("forward ms/step", _mean_of("forward_ms", "{:.3f}")),
                     ("steps/s", _mean_of("steps_per_s", "{:,.0f}"))] + SATURATION)
        L.append("")
        model = make_model("mlp", *_shape(ds), activation="relu")
        b = _batch(ds)
        zo = memory_bytes(model, b, "mezo")
        ez = memory_bytes(model, b, "elasticzo")
        i8 = memory_bytes(model, b, "elasticzo", wbytes=1, abytes=1)
        L += [f"Memory per step (`memory_bytes`, batch {b}): vanilla ZO {zo:,} B, ElasticZO "
              f"{ez:,} B (overhead {100 * (ez - zo) / zo:.1f} %), ElasticZO-INT8 {i8:,} B "
              f"(float / INT8 = {ez / i8:.2f}x).", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(study, indent=1))
    text = path.read_text() if path.exists() else "<!-- results -->\n<!-- /results -->\n"
    block = "<!-- results -->\n" + "\n".join(L) + "\n<!-- /results -->"
    if "<!-- results -->" not in text:
        text += "\n" + block + "\n"
    else:
        text = re.sub(r"<!-- results -->.*?<!-- /results -->", lambda _: block, text, flags=re.S)
    path.write_text(text)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(prog="pezo algorithms", description="The ZO methods' "
                                "measurements (docs/algorithms.md): ZO-RankSGD, DeepZero, "
                                "ElasticZO, ElasticZO-INT8 on every source")
    p.add_argument("--quick", action="store_true", help="shorter runs, 3 seeds")
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 10; quick 3)")
    p.add_argument("--jobs", "-j", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes (default 2)")
    p.add_argument("--out", "-o", default="docs", metavar="DIR",
                   help="folder of algorithms.md (default docs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if (args.seeds is not None and args.seeds < 2) or args.jobs < 1:
        p.error("--seeds must be >= 2 (paired intervals) and --jobs >= 1")
    t0 = time.perf_counter()
    study = run_study(args.quick, args.seeds, args.jobs, not args.no_progress)
    out = write_tables(study, Path(args.out) / "algorithms.md")
    print(f"written {out} and {out.with_suffix('.json')} in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    return 0
