"""Why does pezo trail gaussian on digits? Controlled one-factor experiments.

``pezo ablation [--seeds 10] [--models logreg,mlp] [--configs ...] [--out docs]``
trains digits with the data set's default steps, learning rate, mu and minibatches (so the same
forward passes; the ``16k steps`` rows double the steps for both sources) for every configuration
below, one factor changed at a time, and writes ``parity_ablation.json``
(one record per run) into the output folder; :func:`pezo.host.parity_report.write_report` renders it as
the "Why pezo trails on digits" section of ``parity.md``. Runs are sequential; a run already in the
JSON file (same configuration, model and seed) is not trained again, so an interrupted study
resumes where it stopped.

Besides the trainer's sources, one source exists only here: ``lfsr-float`` keeps the weights in
float64 (like ``gaussian``) but perturbs them with exactly the engine's z (the shared LFSR bank,
leap stepping, the K = 3 CSD scaler, Q3.13), so that ``pezo`` minus ``lfsr-float`` with the same
seed is the cost of the fixed-point datapath alone (same z, same minibatches, same initial
weights), and ``lfsr-float`` minus ``gaussian`` that of the random stream.
"""

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np

from pezo.host.data import load_dataset
from pezo.host.models import make_model
from pezo.host.perturb import FloatSource, bank_first_cycles, engine_config
from pezo.host.train import train
from pezo.sim import scaler as smodel

__all__ = ["CONFIGS", "LfsrFloatSource", "run_ablation", "summarise"]

# name -> train() overrides; "lfsr-float" is the float-weight source with the engine's z.
CONFIGS = {
    "gaussian": dict(source="gaussian"),
    "uniform": dict(source="uniform"),
    "lfsr-float": dict(source="lfsr-float"),
    "pezo Q4.12": dict(source="pezo"),
    "pezo Q4.16": dict(source="pezo", weight_format="Q4.16"),
    "pezo Q8.24": dict(source="pezo", weight_format="Q8.24"),
    "pezo Q4.12 nearest": dict(source="pezo", rounding="nearest"),
    "pezo Q4.12 coef24": dict(source="pezo", coef_bits=24, coef_frac=28),
    "lfsr-float exact alpha": dict(source="lfsr-float", exact_alpha=True),
    "pezo Q4.12 mu 2e-3": dict(source="pezo", mu=2e-3),
    "gaussian 16k steps": dict(source="gaussian", steps=16000),
    "pezo Q4.12 16k steps": dict(source="pezo", steps=16000),
}
# the row each configuration is compared with, seed by seed (default: pezo Q4.12), and the
# gaussian row with the same step count
REFERENCE = {"lfsr-float exact alpha": "lfsr-float", "gaussian 16k steps": "gaussian"}
BASELINE = {"pezo Q4.12 16k steps": "gaussian 16k steps",
            "gaussian 16k steps": "gaussian 16k steps"}
FILE = "parity_ablation.json"


class LfsrFloatSource(FloatSource):
    """Float64 weights perturbed with the ``pezo`` engine's z (shared bank, leap, default scaler
    digits, Qz_int.z_frac converted to float): no fixed-point weights, coefficients or rounding."""

    def __init__(self, n_params, lanes=4, exact_alpha=False):
        super().__init__(n_params, "uniform")
        self.name = "lfsr-float"
        cfg = engine_config(n_params, lanes=lanes, shared=True)
        self.gen, self.words, self.depth = cfg.generator, cfg.words, cfg.depth
        self.digits = smodel.default_digits(self.gen)
        self.exact_alpha = exact_alpha

    def z(self, seed):
        u = bank_first_cycles(self.gen, [int(seed)], self.words).reshape(self.depth)
        if self.exact_alpha:        # alpha0 = sqrt(3) / 2^(w-1) in float64, no CSD, no Q3.13
            return u[:self.n_params] * self.gen.alpha0
        z, saturated = smodel.scale_values(u, self.digits, self.gen)
        if saturated:
            raise ValueError(f"The scaler saturates for seed {seed:#x}")
        return z[:self.n_params] * 2.0 ** -self.gen.z_frac


def _one(name, model, seed, dataset="digits"):
    kw = dict(CONFIGS[name])
    src = None
    exact = kw.pop("exact_alpha", False)
    if kw["source"] == "lfsr-float":
        ds = load_dataset(dataset)
        src = LfsrFloatSource(make_model(model, ds.n_features, ds.n_classes).n_params,
                              exact_alpha=exact)
        kw["source"] = "uniform"            # only names the run's defaults; src does the work
    r = train(dataset=dataset, model=model, seed=seed, src=src, **kw)
    return {"config": name, "dataset": dataset, "model": model, "seed": seed,
            "test_acc": r.test_acc, "test_loss": r.test_loss, "val_acc": r.val_acc,
            "val_loss": r.val_loss, "train_loss": r.train_loss,
            "forward_passes": r.forward_passes, "steps": r.steps_run, "wall_time": r.wall_time,
            "stats": r.stats}


def run_ablation(out="docs", names=None, models=("logreg", "mlp"), seeds=10, progress=True):
    """Train every (configuration, model, seed) not yet in ``out/parity_ablation.json``, one at a
    time, saving after each run; returns the list of run records."""
    path = Path(out) / FILE
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    done = {(r["config"], r["model"], r["seed"]) for r in runs}
    todo = [(n, m, s) for m in models for n in (names or CONFIGS) for s in range(seeds)
            if (n, m, s) not in done]
    for i, (n, m, s) in enumerate(todo):
        t0 = time.perf_counter()
        runs.append(_one(n, m, s))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"runs": runs}, indent=1, default=float) + "\n")
        if progress:
            print(f"[{i + 1}/{len(todo)}] {n} digits/{m} seed {s}: "
                  f"{100 * runs[-1]['test_acc']:.2f} % ({time.perf_counter() - t0:.1f} s)",
                  flush=True)
    return runs


def _sem(x):
    x = np.asarray(x, dtype=float)
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def summarise(runs, reference="pezo Q4.12", baseline="gaussian"):
    """Per (model, configuration): accuracy mean and std over seeds (%), the mean over seeds 0-2
    (what the 3-seed parity study sees), the difference to ``baseline`` over the same seeds (the
    gaussian row with the same step count, :data:`BASELINE`), and the paired difference to
    ``reference`` (or the row :data:`REFERENCE` names; same seeds: same minibatches and initial
    weights, and for the engine configurations the same z) with its standard error."""
    by = {}
    for r in runs:
        by.setdefault((r["model"], r["config"]), {})[r["seed"]] = r
    out = []
    for model in ("logreg", "mlp"):
        for name in CONFIGS:
            rr = by.get((model, name))
            if not rr:
                continue
            ref_name = REFERENCE.get(name, reference)
            base = by.get((model, BASELINE.get(name, baseline)), {})
            ref = by.get((model, ref_name), {})
            seeds = sorted(rr)
            acc = np.array([100 * rr[s]["test_acc"] for s in seeds])
            common = [s for s in seeds if s in base]
            d_base = float(np.mean([100 * (rr[s]["test_acc"] - base[s]["test_acc"])
                                    for s in common])) if common else float("nan")
            paired = np.array([100 * (rr[s]["test_acc"] - ref[s]["test_acc"])
                               for s in seeds if s in ref])
            sem = _sem(paired)
            first3 = [100 * rr[s]["test_acc"] for s in seeds if s < 3]
            out.append({"model": model, "config": name, "seeds": len(seeds),
                        "acc_mean": float(acc.mean()), "acc_std": float(acc.std()),
                        "acc_first3": float(np.mean(first3)) if first3 else float("nan"),
                        "delta_baseline": d_base,
                        "paired_ref": float(paired.mean()) if len(paired) else float("nan"),
                        "paired_ref_sem": sem, "reference": ref_name,
                        "baseline": BASELINE.get(name, baseline),
                        "test_loss": float(np.mean([rr[s]["test_loss"] for s in seeds])),
                        "val_acc": float(np.mean([100 * rr[s]["val_acc"] for s in seeds])),
                        "train_loss": float(np.mean([rr[s]["train_loss"] for s in seeds])),
                        "paired_baseline_sem": _sem([100 * (rr[s]["test_acc"] - base[s]["test_acc"])
                                                     for s in common]),
                        "forward_passes": int(rr[seeds[0]]["forward_passes"])})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="pezo ablation",
                                description="One-factor experiments on digits: why pezo trails "
                                            "gaussian (writes parity_ablation.json)")
    p.add_argument("--out", "-o", default="docs", metavar="DIR", help="output folder")
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per cell (default 10)")
    p.add_argument("--models", default="logreg,mlp", help="comma list (default logreg,mlp)")
    p.add_argument("--configs", help="semicolon list (default all): " + "; ".join(CONFIGS))
    args = p.parse_args(argv)
    names = [n.strip() for n in args.configs.split(";")] if args.configs else None
    for n in names or ():
        if n not in CONFIGS:
            p.error(f"Configuration must be one of {'; '.join(CONFIGS)}, not {n!r}")
    runs = run_ablation(args.out, names, args.models.split(","), args.seeds)
    for row in summarise(runs):
        print(f"{row['model']:6s} {row['config']:20s} n={row['seeds']:2d} "
              f"{row['acc_mean']:.2f} +- {row['acc_std']:.2f}  seeds 0-2 {row['acc_first3']:.2f}  "
              f"vs gaussian {row['delta_baseline']:+.2f}  vs {row['reference']} "
              f"{row['paired_ref']:+.2f} +- {row['paired_ref_sem']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
