"""What each stream mode's extra dependence costs ZO training (docs/stream_study.md).

``python -m pezo.host.stream_study [--out docs] [--quick]`` measures, on the golden model:

1. **Per-run variance** of pregen board defaults: the z the trainer sees, (theta+ - theta-) /
   (2 mu) read from the engine over one query as long as the pool, for many run seeds, with and
   without the host's per-run correction (:class:`pezo.host.perturb.EngineSource`).
2. **onthefly fourth moments**, exact (character sums of
   :func:`pezo.sim.reuse.fourth_moment_excess`, checked against an enumeration of all 2^16 numbers in tests/test_stream_fourth.py), for the
   first tap rule and the current one.
3. **Gradient-estimate variance** on a quadratic f (the two-sided difference is exactly
   (z . a) z, a = grad f): E||g - a||^2 over S draws against the value for independent
   coordinates with the same marginal (computed exactly from the 2^w scaled values), with a
   95 % interval, and the excess predicted exactly from the joint distribution of the lanes that
   share a number (onthefly: one u through the group maps; pregen: one pool number with
   independent signs). A control with NumPy's independent integers must show no excess.
4. **One-sided bias**: a forward difference (f(theta + mu z) - f(theta)) / mu * z on a quadratic is
   (z . a + mu/2 z^T H z) z exactly: its bias is mu/2 E[(z^T H z) z], zero when the third
   moments E[z_i z_j z_k] vanish. Measured over seeds (noise-corrected norm, 95 % interval) for
   the LFSR layouts whose linear relations reach one perturbation.
5. **Training**: short MeZO runs (digits / logreg) of every mode against the float uniform
   reference, paired over seeds.
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from pezo.boards.targets import get_board
from pezo.config import GeneratorConfig as G
from pezo.host.perturb import EngineSource
from pezo.sim import scaler as smodel
from pezo.sim.banks import bank_first_cycles
from pezo.sim.generator import GeneratorModel
from pezo.sim.lfsr import polynomial
from pezo.sim.reuse import (apply_signs, fourth_moment_excess, group_map, onthefly_lanes,
                            onthefly_taps, query_stride, sign_bits, sign_rate)
from pezo.sim.seeding import domain_tweak
from pezo.tables import markdown_table

__all__ = ["write_markdown", "run_variances", "per_run_variance", "onthefly_moments", "fast_draws",
           "gradient_variance", "pregen_queries", "query_average_variance",
           "weight3_relations", "third_moments", "one_sided_bias", "training", "main", "FIRST_TAPS"]

FIRST_TAPS = [(1, 2), (1, 3), (1, 4), (1, 5), (1, 6), (1, 7), (1, 8)]   # the first tap rule


# 1. Per-run variance -----------------------------------------------------------------------------

def run_variances(cfg, runs=400, pool_correct=True, mu=0.03):
    """Per-run variances of a pregen engine ``cfg``: the mean over one pool-long query of
    ((theta+ - theta-) / (2 mu))^2, for run seeds 0 .. runs-1 (what the engine does to the
    weights, with the trainer's mu)."""
    n = cfg.generator.pool_size
    v = []
    for run_seed in range(runs):
        src = EngineSource(n, cfg, rounding="nearest", pool_correct=pool_correct)
        src.reset(np.zeros(n), run_seed)
        real_mu = src.set_mu(mu)
        tp, tm = src.perturb_pair(src.begin(1000 + run_seed))
        z = (tp - tm) / (2 * real_mu)
        v.append(float(np.mean(z * z)))
    return np.array(v)


def per_run_variance(board="ice40", runs=400, pool_correct=True, mu=0.03):
    """:func:`run_variances` of a board default's engine, summarised."""
    cfg = get_board(board).default
    v = run_variances(cfg, runs, pool_correct, mu)
    return {"board": board, "config": cfg.generator.name(), "runs": runs,
            "pool_correct": pool_correct, "mean": v.mean(), "sd": v.std(ddof=1),
            "min": v.min(), "max": v.max(), "outside_0.5%": float(np.mean(np.abs(v - 1) > 0.005))}


# 2. onthefly fourth moments ----------------------------------------------------------------------

def onthefly_moments(width=16, group_counts=(2, 4, 8)):
    rows = []
    for rule, taps_of in (("first (a, b) in order", lambda g: FIRST_TAPS[:g - 1]),
                          ("fourth-moment greedy (current)", lambda g: onthefly_taps(width, g))):
        for g in group_counts:
            taps = taps_of(g)
            ex = fourth_moment_excess(width, taps)
            two = {k: v for k, v in ex.items() if len(set(k)) == 2}
            sq = max(abs(v) for k, v in two.items() if k[0] == k[1] and k[2] == k[3])
            odd = max([abs(v) for k, v in two.items() if not (k[0] == k[1] and k[2] == k[3])])
            many = max([abs(v) for k, v in ex.items() if len(set(k)) > 2] or [0.0])
            rows.append({"rule": rule, "groups": g, "taps": taps, "squares": sq, "odd": odd,
                         "three_four_lanes": many})
    return rows


# 3. Gradient-estimate variance ------------------------------------------------------------------

def fast_draws(cfg, seeds, L, taps=None):
    """(S, L) z (real units): the first L values after SEED s (none, onthefly) or after
    SEED s, OFFSET (0, key 0) (pregen), for every seed, vectorised over seeds (equal to
    :func:`pezo.quality.draws`; checked in :func:`main`). ``taps`` overrides the onthefly taps."""
    seeds = [int(s) for s in seeds]
    m, n = cfg.out_lanes, cfg.lanes
    beats = -(-L // m)
    digits = smodel.default_digits(cfg)
    if cfg.reuse == "pregen":
        pool = bank_first_cycles(cfg, seeds, cfg.pool_size // n).reshape(len(seeds), -1, m)
        idx = np.arange(beats) % cfg.pool_words
        u = pool[:, idx, :]
        r = sign_rate(cfg)
        tweak = domain_tweak("sign", cfg.seed_width)
        sb = bank_first_cycles(cfg, [s ^ tweak for s in seeds], -(-beats // r))
        s = np.stack([sign_bits(sb[i], cfg, 0, beats) for i in range(len(seeds))])
        u = apply_signs(u, s)
    else:
        u = bank_first_cycles(cfg, seeds, beats, rotate=cfg.reuse == "onthefly")
        if cfg.reuse == "onthefly":
            t = onthefly_taps(cfg.width, m // n) if taps is None else taps
            u = onthefly_lanes(u, t, cfg.width)
    u = u.reshape(len(seeds), -1)[:, :L]
    return smodel.scale_values(u, digits, cfg)[0] / 2.0 ** cfg.z_frac


def _marginal(cfg):
    """E[z^2], E[z^4] of the scaled value of a uniform w-bit u (exact enumeration)."""
    u = np.arange(-(1 << (cfg.width - 1)), 1 << (cfg.width - 1))
    z = smodel.scale_values(u, smodel.default_digits(cfg), cfg)[0] / 2.0 ** cfg.z_frac
    return float(np.mean(z ** 2)), float(np.mean(z ** 4)), z


def _cliques(cfg, L):
    """Coordinates of one draw that share their random number: onthefly (lanes j, j+n, ... of
    one beat) and pregen (the coordinates reading one pool number)."""
    m, n = cfg.out_lanes, cfg.lanes
    if cfg.reuse == "onthefly":
        return [[b * m + j + q * n for q in range(m // n) if b * m + j + q * n < L]
                for b in range(-(-L // m)) for j in range(n)]
    if cfg.reuse == "pregen":
        N = cfg.pool_size
        return [list(range(i, L, N)) for i in range(min(N, L))]
    return [[i] for i in range(L)]


def _predicted(cfg, a, taps=None):
    """Exact E||g - a||^2 of g = (z . a) z for draws of len(a) values: independent cliques
    (:func:`_cliques`), the joint moments inside a clique by enumeration of all 2^w numbers
    (onthefly: u through the group maps; pregen: one number, independent signs). Returns
    (predicted, independent coordinates with the same marginal)."""
    L = len(a)
    m2, m4, zu = _marginal(cfg)
    indep = float(np.sum(a * a) * (m4 + (L - 1) * m2 ** 2) - 2 * m2 * a @ a + a @ a)
    extra = 0.0
    if cfg.reuse != "none":
        u = np.arange(-(1 << (cfg.width - 1)), 1 << (cfg.width - 1))
        digits = smodel.default_digits(cfg)
        if cfg.reuse == "onthefly":
            t = onthefly_taps(cfg.width, cfg.out_lanes // cfg.lanes) if taps is None else taps
            lanes = [u] + [group_map(u, x, y, cfg.width) for x, y in t]
            vals = [smodel.scale_values(v, digits, cfg)[0] / 2.0 ** cfg.z_frac for v in lanes]
        for clique in _cliques(cfg, L):
            k = len(clique)
            if k < 2:
                continue
            if cfg.reuse == "onthefly":
                Z = np.stack([vals[i] for i in range(k)])        # (k, 2^w): lane q of the clique
                E2 = (Z ** 2) @ (Z ** 2).T / Z.shape[1]           # E[z_p^2 z_r^2]
                E31 = (Z ** 3) @ Z.T / Z.shape[1]                 # E[z_p^3 z_r]
                E112 = np.einsum("pn,rn,in->pri", Z, Z, Z ** 2) / Z.shape[1]
            else:                                                 # |z| shared, signs independent
                E2 = np.full((k, k), m4)
                E31 = np.zeros((k, k))
                E112 = np.zeros((k, k, k))
            ac = a[clique]
            for p in range(k):
                for r in range(k):
                    if p == r:
                        extra += ac[p] ** 2 * sum(E2[p, i] - m2 ** 2 for i in range(k) if i != p)
                    else:
                        t3 = E31[p, r] + E31[r, p] + sum(E112[p, r, i] for i in range(k)
                                                         if i not in (p, r))
                        extra += ac[p] * ac[r] * t3
    return indep + extra, indep


def gradient_variance(cases, L=32, S=1 << 16, seed=3):
    """For each (label, cfg, taps) case and two gradients (Gaussian random; all ones, aligned
    with the lanes one number feeds): measured E||g - a||^2 / independent - 1 with a 95 %
    interval, and the exact prediction."""
    rng = np.random.default_rng(seed)
    grads = {"random a": rng.standard_normal(L), "a = 1": np.ones(L)}
    rows = []
    for label, cfg, taps in cases:
        if cfg == "numpy":
            c = G()
            zu = _marginal(c)[2]
            z = zu[rng.integers(0, len(zu), (S, L))]
            pcfg = c
        else:
            base = rng.integers(0, 1 << cfg.seed_width, S, dtype=np.uint64)
            z = np.concatenate([fast_draws(cfg, base[i:i + 4096], L, taps)
                                for i in range(0, S, 4096)])
            pcfg = cfg
        for gname, a in grads.items():
            e = ((z @ a)[:, None] * z - a)
            x = np.sum(e * e, axis=1)
            pred, indep = _predicted(pcfg, a, taps) if cfg != "numpy" else _predicted(G(), a)
            mean, se = x.mean(), x.std(ddof=1) / math.sqrt(S)
            rows.append({"case": label, "gradient": gname, "L": L, "S": S,
                         "measured": mean / indep - 1, "ci95": 1.96 * se / indep,
                         "predicted": pred / indep - 1})
    return rows


def pregen_queries(cfg, pool_seeds, T, L):
    """(len(pool_seeds), T, L) z: queries q = 0 .. T-1 of each pool as the host issues them
    (OFFSET (q * query_stride mod N/m, key q)), vectorised (equal to the golden model; checked
    in :func:`main`)."""
    beats = -(-L // cfg.out_lanes)
    stride = query_stride(cfg, beats)
    n, m, words = cfg.lanes, cfg.out_lanes, cfg.pool_words
    tweak = domain_tweak("sign", cfg.seed_width)
    r = sign_rate(cfg)
    R = len(pool_seeds)
    pools = bank_first_cycles(cfg, pool_seeds, cfg.pool_size // n).reshape(R, words, m)
    keys = [s ^ tweak ^ q for s in pool_seeds for q in range(T)]
    sb = bank_first_cycles(cfg, keys, -(-beats // r)).reshape(R, T, -1, n)
    idx = (np.arange(T)[:, None] * stride + np.arange(beats)[None, :]) % words     # (T, beats)
    sg = np.stack([sign_bits(sb[i, q], cfg, 0, beats) for i in range(R) for q in range(T)])
    u = apply_signs(pools[:, idx], sg.reshape(R, T, beats, m))
    u = u.reshape(R, T, -1)[:, :, :L]
    return smodel.scale_values(u, smodel.default_digits(cfg), cfg)[0] / 2.0 ** cfg.z_frac


def query_average_variance(cfg, T=64, runs=4000, L=32, seed=5):
    """pregen across queries: E||mean of T consecutive queries' g - a||^2 (g = (z . a) z, a
    Gaussian) over ``runs`` pools, queries as the host issues them (query q at word
    q * query_stride mod N/m, key q), relative to T independent draws of independent
    coordinates, and the exact prediction 0.8-type excess: query pairs N/m apart read the same
    pool number at every coordinate (E[z^2 z'^2] = E z^4 for them), which adds
    sum over those pairs of sum_i a_i^2 (E z^4 - E[z^2]^2), i.e. (T / (N/m) - 1)(kappa - 1) /
    (d + kappa - 2) of the independent value when N/m divides T. Also ``none`` (fresh seeds)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(L)
    m2, m4, _ = _marginal(cfg)
    indep = float(a @ a * (m4 + (L - 1) * m2 ** 2) - 2 * m2 * a @ a + a @ a) / T
    x = []
    for start in range(0, runs, 256):
        seeds = rng.integers(0, 1 << cfg.seed_width, min(256, runs - start), dtype=np.uint64)
        z = pregen_queries(cfg, [int(s) for s in seeds], T, L)        # (runs, T, L)
        g = np.einsum("rtl,l,rtk->rk", z, a, z) / T - a
        x.extend(np.sum(g * g, axis=1))
    x = np.array(x)
    P = cfg.pool_words
    pairs = T * (T // P - 1) if T % P == 0 else sum(1 for q in range(T) for p in range(T)
                                                   if p != q and (p - q) % P == 0)
    pred = pairs * float(a @ a) * (m4 - m2 ** 2) / T ** 2
    return {"case": f"pregen N={cfg.pool_size}, m={cfg.out_lanes} (N/m = {P} queries per "
                    "period)",
            "T": T, "runs": runs, "L": L, "measured": x.mean() / indep - 1,
            "ci95": 1.96 * x.std(ddof=1) / math.sqrt(len(x)) / indep,
            "predicted": pred / indep}


# 4. One-sided bias ------------------------------------------------------------------------------

def weight3_relations(k, span):
    """Offsets (d1, d2), 0 < d1 < d2 < span, with 1 + x^d1 + x^d2 = 0 mod p(x) (the LFSR
    polynomial of k bits): x_t ^ x_{t+d1} ^ x_{t+d2} = 0 for every t, in every stream."""
    p = polynomial(k)
    pw, table, r = [], {}, 1
    for d in range(span):
        pw.append(r)
        table.setdefault(r, d)
        r <<= 1
        if r >> k & 1:
            r ^= p
    return [(d1, table[pw[d1] ^ 1]) for d1 in range(1, span)
            if table.get(pw[d1] ^ 1, 0) > d1]


def third_moments(cfg, L):
    """The nonzero E[u'_i u'_j u'_k] (u' = u + 1/2) of the first L values over seeds, exactly:
    u'_i = -1/2 sum_b c_b x_b with the characters x = (-1)^bit of the LFSR sequence positions of
    value i, and E[x_p x_q x_r] = 1 exactly when {p, q, r} is a weight-3 relation of the sequence
    (:func:`weight3_relations`), else -1/(2^k - 1) (left out: below 1e-9 for k >= 32). Returns
    {(i, j, k): value} over ordered triples. Independent lanes: value c*n + l is word c of lane
    l's sequence (relations inside one lane); shared bank: value i is bits [i w, (i+1) w) of the
    one sequence. Reuse must be ``none``."""
    if cfg.reuse != "none":
        raise ValueError("third_moments covers reuse 'none' (the bank's own stream)")
    w, n, k = cfg.width, cfg.lanes, cfg.state_bits
    c = [1 << b for b in range(w - 1)] + [-(1 << (w - 1))]
    per_lane = L if cfg.shared else -(-L // n)
    span = per_lane * w
    T = {}
    for d1, d2 in weight3_relations(k, span):
        for t in range(span - d2):
            pos = (t, t + d1, t + d2)
            for lane in ([None] if cfg.shared else range(n)):
                coords = []
                for ps in pos:
                    word, bit = divmod(ps, w)
                    coords.append((word if cfg.shared else word * n + lane, c[bit]))
                if any(ci >= L for ci, _ in coords):
                    continue
                v = -coords[0][1] * coords[1][1] * coords[2][1] / 8
                for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
                    key = tuple(coords[x][0] for x in perm)
                    T[key] = T.get(key, 0.0) + v
    return T


def one_sided_bias(cases, L=256, S=1 << 15, seed=4):
    """The O(mu) bias of a one-sided (forward-difference) estimate on a quadratic with a dense
    Hessian H = G G^T / L (G Gaussian) and a Gaussian gradient a: bias = mu/2 E[(z^T H z) z] =
    mu/2 alpha^3 sum_ij H_ij E[u'_i u'_j u'_k], exact from :func:`third_moments`, as
    beta = ||E[(z^T H z) z]|| / (2 ||a||) (bias = mu beta ||a||). Also the largest exact
    E[z_i z_j z_k] (z units) and the count of triples; the three strongest and one the sums
    give 0 are checked against S draws of the golden model."""
    rng = np.random.default_rng(seed)
    Gm = rng.standard_normal((L, L))
    H = Gm @ Gm.T / L
    a = rng.standard_normal(L)
    rows = []
    for label, cfg in cases:
        alpha = smodel.realised_alpha(smodel.default_digits(cfg))
        T = third_moments(cfg, L)
        v = np.zeros(L)
        for (i, j, k), t in T.items():
            v[k] += H[i, j] * t
        v *= alpha ** 3                                   # E[(z^T H z) z] in z units
        beta = float(np.linalg.norm(v)) / (2 * np.linalg.norm(a))
        top = max((abs(t) * alpha ** 3 for t in T.values()), default=0.0)
        row = {"case": label, "L": L, "beta": beta, "triples": len(T) // 6 if T else 0,
               "max_third_moment": top}
        if T:
            # the strongest triples against the golden model's draws (and one triple the exact
            # sums give 0: the next coordinates)
            top = sorted({tuple(sorted(key)) for key in T}, key=lambda key: -abs(T[key]))[:3]
            last = top[0]
            top.append(tuple(x + 1 for x in last) if tuple(x + 1 for x in last) not in T
                       and max(last) + 1 < L else (0, 1, 2))
            base = rng.integers(0, 1 << cfg.seed_width, S, dtype=np.uint64)
            acc = {key: [] for key in top}
            for i in range(0, S, 4096):
                z = fast_draws(cfg, base[i:i + 4096], L)
                for key in top:
                    acc[key].extend(z[:, key[0]] * z[:, key[1]] * z[:, key[2]])
            row["mc_check"] = [{"triple": key, "exact": T.get(key, 0.0) * alpha ** 3,
                                "measured": float(np.mean(acc[key])),
                                "ci95": float(1.96 * np.std(acc[key], ddof=1) / math.sqrt(S))}
                               for key in top]
            row["draws"] = S
        rows.append(row)
    return rows


# 5. Training ------------------------------------------------------------------------------------

def training(cases, seeds=8, steps=None):
    """Short MeZO runs (digits / logreg, defaults of :class:`pezo.host.train.TrainConfig`):
    test loss and accuracy per case, paired with the first case over the same seeds."""
    from pezo.host.train import train
    import pezo.host.fused as fused
    import pezo.host.batched as batched
    import pezo.sim.reuse as reuse
    out = {}
    for label, kw, taps in cases:
        res = []
        for s in range(seeds):
            patched = []
            if taps is not None:
                for mod in (fused, batched, reuse):
                    patched.append((mod, mod.onthefly_taps))
                    mod.onthefly_taps = lambda w, g, t=taps: list(t[:g - 1])
            try:
                extra = {} if steps is None else {"steps": steps}
                kw = dict(kw)
                make = kw.pop("src", None)
                if make is not None:
                    extra["src"] = make()
                r = train(dataset="digits", model="logreg", seed=s, **kw, **extra)
            finally:
                for mod, f in patched:
                    mod.onthefly_taps = f
            res.append((r.test_loss, r.test_acc))
        out[label] = np.array(res)
    ref = out[cases[0][0]]
    rows = []
    for label, res in out.items():
        d = res[:, 0] - ref[:, 0]
        da = res[:, 1] - ref[:, 1]
        rows.append({"case": label, "seeds": seeds, "test_loss": res[:, 0].mean(),
                     "test_loss_sd": res[:, 0].std(ddof=1), "test_acc": res[:, 1].mean(),
                     "d_loss": d.mean(), "d_loss_ci95": 1.96 * d.std(ddof=1) / math.sqrt(seeds),
                     "d_acc": da.mean(), "d_acc_ci95": 1.96 * da.std(ddof=1) / math.sqrt(seeds)})
    return rows


# The study --------------------------------------------------------------------------------------

def _check_fast_draws():
    """fast_draws equals the golden model seed by seed (as pezo.quality.draws reads it)."""
    for cfg in (G(), G(reuse="onthefly", lanes=2, out_lanes=4),
                G(reuse="pregen", pool_size=32), G(shared=True, state_bits=71)):
        seeds, L = [1, 99, 12345], 80
        ref = []
        for s in seeds:
            model = GeneratorModel(cfg, s)
            if cfg.reuse == "pregen":
                model.set_offset(0, 0)
            ref.append(model.next(-(-L // cfg.out_lanes)).reshape(-1)[:L] / 2.0 ** cfg.z_frac)
        if not np.array_equal(fast_draws(cfg, seeds, L), np.array(ref)):
            raise AssertionError(f"fast_draws differs from the golden model for {cfg.name()}")
    cfg, L, T = G(reuse="pregen", pool_size=64), 40, 5
    model = GeneratorModel(cfg, 777)
    stride = query_stride(cfg, -(-L // cfg.out_lanes))
    ref = []
    for q in range(T):
        model.set_offset(q * stride % cfg.pool_words, q)
        ref.append(model.next(-(-L // cfg.out_lanes)).reshape(-1)[:L] / 2.0 ** cfg.z_frac)
    if not np.array_equal(pregen_queries(cfg, [777], T, L)[0], np.array(ref)):
        raise AssertionError("pregen_queries differs from the golden model")


def _pct(x, ci=None):
    return f"{100 * x:+.2f} %" + (f" +- {100 * ci:.2f}" if ci is not None else "")


def write_markdown(res, out):
    """docs/stream_study.md from the study's JSON."""
    md = ["# What each stream mode's dependence costs (measured)", "",
          "Generated by `python -m pezo.host.stream_study --out docs` (pezo/host/stream_study.py;"
          " figures in stream_study.json). The contract and the per-mode promises: "
          "[streams.md](streams.md). Intervals are 95 %.", ""]
    if "per_run_variance" in res:
        md += ["## 1. Per-run variance of the pregen board defaults", "",
               "The z the trainer sees in one run, (theta+ - theta-) / (2 mu) read from the golden "
               "engine over one query as long as the pool (N values, mu = 0.03 so that rounding to "
               "the weight grid adds about 6e-6), for run seeds 0 .. R-1. *uncorrected*: "
               "pool_correct=False, no correction at all (what a fixed scale always had: the "
               "ice40 row; before the per-run correction a runtime scale had its digits "
               "corrected, which left the ulx3s default within 0.998 - 1.004 over the same run "
               "seeds); *corrected*: the host's per-run correction (digits for a runtime scale, "
               "then mu and c divided by the pool's sigma).", ""]
        rows = [[r["board"], f"`{r['config']}`", "corrected" if r["pool_correct"] else
                 "uncorrected", r["runs"], f"{r['mean']:.4f}", f"{r['sd']:.4f}",
                 f"{r['min']:.4f} - {r['max']:.4f}", f"{100 * r['outside_0.5%']:.1f} %"]
                for r in res["per_run_variance"]]
        md += markdown_table(["board", "generator", "host", "runs", "mean", "sd", "range",
                              "outside 1 +- 0.5 %"], rows, "lllrrrrr") + [""]
    if "onthefly_moments" in res:
        md += ["## 2. onthefly: exact fourth moments of the lanes one number feeds", "",
               "Excess over independent lanes, in units of E[u^2]^2, exact (character sums; the "
               "two-group values are also enumerated over all 2^16 numbers in "
               "tests/test_stream_fourth.py). *squares*: max |E[x^2 y^2] / E[x^2]E[y^2] - 1| over "
               "lane pairs; *odd*: max |E[x^3 y]|; *3-4 lanes*: the largest of the moments of "
               "three or four distinct lanes (E[x^2 y z], E[x y z t]).", ""]
        rows = [[r["rule"], r["groups"], ", ".join(f"({a}, {b})" for a, b in r["taps"]),
                 f"{r['squares']:.3g}", f"{r['odd']:.3g}", f"{r['three_four_lanes']:.3g}"]
                for r in res["onthefly_moments"]]
        md += markdown_table(["tap rule", "groups", "taps", "squares", "odd", "3-4 lanes"], rows,
                             "lrlrrr") + [""]
    if "gradient_variance" in res:
        g = res["gradient_variance"]
        md += ["## 3. What it costs the gradient estimate", "",
               f"Quadratic f, two-sided estimate g = (z . a) z exactly (a = grad f), d = "
               f"{g[0]['L']} coordinates, S = {g[0]['S']} draws (random seeds) per row: "
               "E||g - a||^2 "
               "relative to independent coordinates with the same marginal (exact from the 2^16 "
               "scaled values: (d + kappa - 2) ||a||^2 for unit variance). *predicted*: exact, "
               "from "
               "the joint distribution of the coordinates that share a number (onthefly: lanes "
               "of one beat through the group maps; pregen: one pool number, independent signs). "
               "Gradients: *random a* (Gaussian) and *a = 1* (all coordinates equal, the worst "
               "case "
               "for the odd moments of lanes fed by one number).", ""]
        rows = [[r["case"], r["gradient"], _pct(r["measured"], r["ci95"]),
                 _pct(r["predicted"])] for r in g]
        md += markdown_table(["stream", "gradient", "measured excess", "predicted"], rows,
                             "llrr") + [""]
    if "query_average" in res:
        qa = res["query_average"]
        md += ["### Across the queries of one pool (pregen)", "",
               f"The mean of T = {qa[0]['T']} consecutive queries' estimates (as the host issues "
               f"them: start words query_stride apart, keys q), d = {qa[0]['L']}, Gaussian a, "
               f"{qa[0]['runs']} pools: E||mean g - a||^2 relative to T independent draws. "
               "Queries N/m apart read the same pool number at every coordinate, so their errors "
               "are correlated; predicted (exact, over pools): (T / (N/m) - 1) (kappa - 1) / "
               "(d + kappa - 2).", ""]
        rows = [[r["case"], r["T"], _pct(r["measured"], r["ci95"]), _pct(r["predicted"])]
                for r in qa]
        md += markdown_table(["pool", "T", "measured excess", "predicted"], rows, "lrrr") + [""]
    if "one_sided_bias" in res:
        b = res["one_sided_bias"]
        md += ["## 4. One-sided (forward-difference) bias from LFSR linearity", "",
               f"Quadratic with a dense Hessian H = G G^T / d and a Gaussian gradient a, d = "
               f"{b[0]['L']}: the forward difference (f(theta + mu z) - f(theta)) / mu * z is "
               "(z . a + mu/2 z^T H z) z exactly, so its bias is mu/2 E[(z^T H z) z] = mu beta "
               "||a||, from the third moments E[z_i z_j z_k]: exact (weight-3 relations of the "
               "LFSR polynomial inside the perturbation, character sums); the strongest triples "
               "are checked against the golden model's draws.", ""]
        rows = []
        for r in b:
            chk = "; ".join(f"{c['measured']:.3f} +- {c['ci95']:.3f} (exact {c['exact']:.3f})"
                            for c in r.get("mc_check", []))
            rows.append([r["case"], r["triples"], f"{r['max_third_moment']:.3f}",
                         f"{r['beta']:.4f}", chk or "-"])
        md += markdown_table(["stream", "triples with E[z_i z_j z_k] != 0", "largest",
                              "beta", f"golden model, {b[-1].get('draws', 0)} draws"],
                             rows, "lrrrl") + [""]
    if "training" in res:
        t = res["training"]
        md += ["## 5. Training", "",
               f"MeZO on digits / logreg (TrainConfig defaults: {t[0]['seeds']} seeds, the same "
               "minibatches and step seeds for every row), test metrics at the best validation "
               "checkpoint; differences paired over seeds against the first row.", ""]
        rows = [[r["case"], f"{r['test_loss']:.4f} +- {r['test_loss_sd']:.4f}",
                 f"{100 * r['test_acc']:.2f}",
                 f"{r['d_loss']:+.4f} +- {r['d_loss_ci95']:.4f}",
                 f"{100 * r['d_acc']:+.2f} +- {100 * r['d_acc_ci95']:.2f}"] for r in t]
        md += markdown_table(["source", "test loss (mean +- sd)", "test acc %",
                              "loss - first row", "acc - first row (points)"], rows,
                             "lrrrr") + [""]
    Path(out).write_text("\n".join(md))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pezo.host.stream_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs")
    ap.add_argument("--quick", action="store_true", help="fewer runs, draws and seeds")
    ap.add_argument("--parts", default="123456")
    ap.add_argument("--markdown-only", action="store_true",
                    help="only rewrite stream_study.md from stream_study.json")
    args = ap.parse_args(argv)
    q = args.quick
    say = lambda m: print(f"[stream-study] {m}", flush=True)      # noqa: E731
    if args.markdown_only:
        res = json.loads((Path(args.out) / "stream_study.json").read_text())
        say(f"wrote {write_markdown(res, Path(args.out) / 'stream_study.md')}")
        return 0
    out = {}
    t0 = time.time()
    _check_fast_draws()
    if "1" in args.parts:
        say("per-run variance")
        out["per_run_variance"] = [per_run_variance(b, 40 if q else 400, pc)
                                   for b in ("ice40", "ulx3s-85f") for pc in (False, True)]
    if "2" in args.parts:
        say("onthefly fourth moments")
        out["onthefly_moments"] = onthefly_moments()
    if "3" in args.parts:
        say("gradient variance")
        S = 1 << (12 if q else 17)
        ot2, ot8 = G(reuse="onthefly", lanes=2, out_lanes=4), G(reuse="onthefly", lanes=1,
                                                                out_lanes=8)
        out["gradient_variance"] = gradient_variance([
            ("independent NumPy integers (control)", "numpy", None),
            ("none (default)", G(), None),
            ("onthefly n2->m4, first taps", ot2, FIRST_TAPS[:1]),
            ("onthefly n2->m4, current taps", ot2, None),
            ("onthefly n1->m8, first taps", ot8, FIRST_TAPS),
            ("onthefly n1->m8, current taps", ot8, None),
            ("pregen N=8 (each number read 4 times per draw)", G(reuse="pregen", pool_size=8),
             None),
        ], L=32, S=S)
    if "6" in args.parts:
        say("pregen across queries")
        out["query_average"] = [query_average_variance(G(reuse="pregen", pool_size=pool),
                                                       T=64, runs=500 if q else 4000)
                                for pool in (64, 256)]
    if "4" in args.parts:
        say("one-sided bias")
        out["one_sided_bias"] = one_sided_bias([
            ("none, independent k=32 (default)", G()),
            ("none, independent k=64", G(state_bits=64, seed_width=64)),
            ("none, shared k=71", G(shared=True, state_bits=71)),
            ("none, shared k=127", G(shared=True, state_bits=127)),
        ], S=1 << (12 if q else 16))
    if "5" in args.parts:
        say("training")
        board = get_board("ice40").default.generator
        out["training"] = training([
            ("uniform (float, independent)", {"source": "uniform"}, None),
            ("pezo none", {"source": "pezo"}, None),
            ("pezo onthefly n2->m4, first taps", {"source": "pezo", "reuse": "onthefly"},
             FIRST_TAPS),
            ("pezo onthefly n2->m4, current taps", {"source": "pezo", "reuse": "onthefly"},
             None),
            ("pezo pregen ice40 default, per-run correction", {"source": "pezo",
                                                              "board": "ice40"}, None),
            ("pezo pregen ice40 default, uncorrected", {
                "source": "pezo", "board": "ice40",
                "src": lambda: EngineSource(650, get_board("ice40").default,
                                            pool_correct=False)}, None),
        ], seeds=3 if q else 10, steps=500 if q else None)
        out["training_board"] = board.name()
    out["seconds"] = round(time.time() - t0, 1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / "stream_study.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(out)
    path.write_text(json.dumps(old, indent=1, default=lambda x: x.tolist()
                               if hasattr(x, "tolist") else str(x)))
    write_markdown(old, Path(args.out) / "stream_study.md")
    say(f"wrote {path} and stream_study.md in {out['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
