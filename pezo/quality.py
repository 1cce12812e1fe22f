"""``pezo quality``: measure the stream contract (docs/streams.md) of a generator configuration.

Every figure is measured on the golden model (:class:`pezo.sim.generator.GeneratorModel`, which
the hardware matches bit for bit) and compared with the bound that *independent* unit-variance
vectors of the same size would stay within, computed from the number of draws S and the vector
length L at family-wise level ALPHA (Bonferroni over the coordinates or pairs tested). Nothing is
tuned to pass: a check fails when the figure is outside the bound.

A *draw* is one perturbation z (the first L values of a query):

* ``none`` / ``onthefly``: the first L values after ``SEED s``, over S random 32/64-bit seeds s;
* ``pregen``, over seeds: ``SEED s`` then ``OFFSET (0, key 0)``, over S random pool seeds;
* ``pregen``, over queries (the reuse case): one pool seed, query q read after
  ``OFFSET (q * t mod N/m, key q)`` with t = :func:`pezo.sim.reuse.query_stride` (the host's
  query sequence), q = 0 .. S-1. Coordinate i then sees min(S, N/m) numbers of its pool lane, so
  its variance is bounded by the noise of that many numbers (the cost of reuse), not of S.

Checks (each a row of the table):

=============== ===========================================================================
mean            max_i |mean z_i| <= q(ALPHA / 2L) / sqrt(S)
variance        max_i |var z_i - 1| <= 0.005 (scale) + q(ALPHA / 2L) sqrt(0.8 / S) (uniform z:
                Var z^2 = 0.8)
correlation     max_{i<j} |t_ij| <= q(ALPHA / 2P), P = L(L-1)/2 pairs: t_ij is the studentized
                mean of z_i z_j over the draws (N(0, 1) when E[z_i z_j] = 0, whether or not
                the two coordinates are independent); the table also notes max |r_ij|
eigenvalues     the correlation matrix's eigenvalues within the Marchenko-Pastur edges
                (1 -+ sqrt(L/S))^2, widened by 10 % (finite-size fluctuations)
distinct        all S draws differ, and the draws have full rank min(S, L)
adjacent        seeds s+1, s^1, s^2^31 (and the top bit for 64-bit seeds) against s: max over
                coordinates of |corr(z_i(s), z_i(s'))| <= q(ALPHA / 2LD) / sqrt(S)
collisions      counter seeds 0..S-1, single-bit seeds, s ^ 0x80000001 pairs: no two equal draws
fourth moments  E[z_i^2 z_j^2] = E[z_i^2] E[z_j^2] for every pair i < j: max over the pairs of
                t = |mean of (z_i^2 - m_i)(z_j^2 - m_j)| sqrt(S) / 0.8 (0.8^2 = the variance of
                the product for independent uniform coordinates) <= the Bernstein bound at
                level ALPHA / P for products bounded by 4 (the note gives the largest excess
                E[z_i^2 z_j^2] / (E z_i^2 E z_j^2) - 1). These moments set the variance of the
                ZO gradient estimate (z^T a) z: its covariance is
                sum_{p,r} a_p a_r E[z_p z_r z_i z_j] - a a^T
odd fourth      E[z_i^3 z_j] = 0 for every ordered pair i != j: t = |mean z_i^3 z_j| sqrt(S) /
                sqrt(27/7) <= the Bernstein bound at ALPHA / L(L-1) for products bounded by 9
next query      pregen over queries: E[z_{q,i}^2 z_{q+l,j}^2] = E[z_{q,i}^2] E[z_{q+l,j}^2] for
                every (i, j) between draws l = 1 and l = N/m queries apart (consecutive queries;
                the query whose start word comes round again), as the squares row, over L^2
                pairs. Over the queries of one pool the magnitudes repeat every N/m queries, so
                the fourth-moment rows over queries count min(S, N/m) independent draws
                (Bernstein bounds rather than normal quantiles: the products' tails make the
                normal approximation of a maximum over 10^4 - 10^5 pairs miss its level, 5 %
                instead of 1 % for the odd row at S = 2048, L = 256)
=============== ===========================================================================

Promises per mode (:func:`promises`): a check the mode does not promise is still measured and
shown ("given up"), and does not decide the mode's verdict. ``pregen`` gives up the fourth
moments E[z_i^2 z_j^2] of coordinates that read the same pool number (their signs stay
independent, so the odd ones are kept): inside a draw longer than the pool (L > N), between
the queries N/m apart (always), and between consecutive queries when their words overlap.
Every other mode promises every check.

q(p) is the standard normal upper quantile. ALPHA = 0.01.
"""

import json
import math
from pathlib import Path
import shutil
import subprocess
import sys
import time

import numpy as np
from scipy import stats

from pezo.config import GeneratorConfig
from pezo.sim.generator import GeneratorModel
from pezo.sim.reuse import query_stride
from pezo.tables import markdown_table

__all__ = ["ALPHA", "MODES", "measure", "format_table", "Check", "draws", "dieharder",
           "write_results", "promises", "fourth_moments", "DIEHARDER_SUBSET", "dieharder_subset",
           "stream_file"]

ALPHA = 0.01
SCALE_TOL = 0.005       # the scaler's documented variance error (K = 4 digits: 0.04 %)


# The standard set of modes (`pezo quality --modes`, `make quality`): every reuse strategy, both
# bank layouts, both seed widths, the hardware defaults and small pools / many lane groups.
MODES = {
    "none, independent lanes (default)": GeneratorConfig(),
    "none, shared bank k=71": GeneratorConfig(shared=True, state_bits=71),
    "none, shared bank k=127 (x^127 + x + 1)": GeneratorConfig(shared=True, state_bits=127),
    "none, 64-bit seed": GeneratorConfig(seed_width=64, state_bits=64),
    "onthefly, 2 generators -> 4 lanes": GeneratorConfig(reuse="onthefly", lanes=2, out_lanes=4),
    "onthefly, 1 generator -> 8 lanes": GeneratorConfig(reuse="onthefly", lanes=1, out_lanes=8),
    "pregen, N=1024 (hardware default)": GeneratorConfig(reuse="pregen"),
    "pregen, N=64 (pool shorter than a query)": GeneratorConfig(reuse="pregen", pool_size=64),
    "pregen, 1 generator -> 4 lanes, N=1024": GeneratorConfig(reuse="pregen", lanes=1,
                                                               out_lanes=4),
}


class Check(dict):
    """One row: name, figure, bound, verdict (pass/fail), a note, and whether the mode promises
    it (a check it gives up is measured, shown, and left out of the mode's verdict)."""

    def __init__(self, name, figure, bound, ok, note="", promised=True):
        super().__init__(name=name, figure=float(figure), bound=bound, ok=bool(ok), note=note,
                         promised=bool(promised))


def _q(p):
    return float(stats.norm.isf(p))


# Independent unit-variance uniform coordinates (z uniform on [-sqrt 3, sqrt 3]): the variance
# and the range of the products the fourth-moment rows average.
VAR_SQ, MAX_SQ = 0.64, 4.0            # (z_i^2 - 1)(z_j^2 - 1): Var = Var(z^2)^2 = 0.8^2, |.| <= 4
VAR_ODD, MAX_ODD = 27 / 7, 9.0        # z_i^3 z_j: Var = E z^6 E z^2 = 27/7, |.| <= 3^1.5 3^0.5


def _bernstein(p, n, var, bound):
    """The t (mean * sqrt(n) / sd) that the mean of n independent variables of variance ``var``
    and range |x| <= ``bound`` exceeds in absolute value with probability at most p
    (Bernstein's inequality: 2 exp(-n e^2 / (2 var + 2 bound e / 3)) = p). The fourth-moment
    rows use it instead of a normal quantile: their products (cubes, squares) have tails that
    make the normal approximation of the max over thousands of pairs too optimistic (measured:
    5 % family-wise false alarms at a nominal 1 % for E[z_i^3 z_j], S = 2048, L = 256)."""
    ln = math.log(2 / p)
    b, c = 2 * bound * ln / 3, 2 * var * ln
    e = (b + math.sqrt(b * b + 4 * n * c)) / (2 * n)
    return e * math.sqrt(n / var)


def _z_vector(model, beats, L, scale):
    return model.next(beats).reshape(-1)[:L] / scale


def draws(cfg, seeds, L, mode="seeds", pool_seed=None):
    """(len(seeds), L) float z vectors: one draw per seed (or per query index for
    ``mode="queries"``, with ``pool_seed`` fixed)."""
    beats = -(-L // cfg.out_lanes)
    scale = 2.0 ** cfg.z_frac
    out = np.empty((len(seeds), L))
    if mode == "queries":
        model = GeneratorModel(cfg, pool_seed)
        stride = query_stride(cfg, beats)
        for i, q in enumerate(seeds):
            model.set_offset((int(q) * stride) % cfg.pool_words, int(q) & 0xFFFFFFFF)
            out[i] = _z_vector(model, beats, L, scale)
        return out
    for i, s in enumerate(seeds):
        model = GeneratorModel(cfg, int(s))
        if cfg.reuse == "pregen":
            model.set_offset(0, 0)
        out[i] = _z_vector(model, beats, L, scale)
    return out


def _moments(z, what, var_draws=None):
    S, L = z.shape
    qL = _q(ALPHA / (2 * L))
    mean_max = np.abs(z.mean(axis=0)).max()
    var_max = np.abs(z.var(axis=0) - 1).max()
    vS = S if var_draws is None else var_draws
    c = np.corrcoef(z, rowvar=False)
    P = L * (L - 1) // 2
    # E[z_i z_j] = 0 tested by the studentized mean of the products: t_ij = mean / (sd / sqrt S)
    # is N(0, 1) whenever the products have mean 0, also for coordinates that are uncorrelated
    # but not independent (a reused pool number's copies share their magnitude).
    zc = z - z.mean(axis=0)
    m1 = zc.T @ zc / S
    m2 = (zc * zc).T @ (zc * zc) / S
    t = m1 / np.sqrt(np.maximum(m2 - m1 * m1, 1e-300) / S)
    off = np.abs(t[np.triu_indices(L, 1)]).max()
    ev = np.linalg.eigvalsh(c)
    lo, hi = (1 - math.sqrt(L / S)) ** 2 * 0.9, (1 + math.sqrt(L / S)) ** 2 * 1.1
    distinct = len({row.tobytes() for row in z})
    rank = np.linalg.matrix_rank(z)
    return [
        Check(f"mean ({what})", mean_max, qL / math.sqrt(S), mean_max <= qL / math.sqrt(S),
              "max over coordinates of |E z_i|"),
        Check(f"variance ({what})", var_max, SCALE_TOL + qL * math.sqrt(0.8 / vS),
              var_max <= SCALE_TOL + qL * math.sqrt(0.8 / vS),
              "max |Var z_i - 1|" + (f" (noise of {vS} pool numbers)" if vS != S else "")),
        Check(f"correlation ({what})", off, _q(ALPHA / (2 * P)), off <= _q(ALPHA / (2 * P)),
              f"max |t| of E[z_i z_j] = 0 over the {P} pairs i < j (max |r| "
              f"{np.abs(c[np.triu_indices(L, 1)]).max():.3f})"),
        Check(f"eigenvalues min ({what})", ev.min(), lo, ev.min() >= lo,
              "of the correlation matrix (identity: all 1)"),
        Check(f"eigenvalues max ({what})", ev.max(), hi, ev.max() <= hi, ""),
        Check(f"distinct draws ({what})", distinct, S, distinct == S, f"rank {rank} of {min(S, L)}"),
        Check(f"rank ({what})", rank, min(S, L), rank == min(S, L), ""),
    ]


def fourth_moments(z, what, promised=True, eff=None):
    """The fourth-moment rows of draws ``z`` (S, L): squares (E[z_i^2 z_j^2] against
    E[z_i^2] E[z_j^2], pairs i < j; ``promised`` applies to it) and odd (E[z_i^3 z_j] = 0,
    ordered pairs i != j; promised by every mode). Figures: max |mean of the products| *
    sqrt(n) / sd, sd that of independent uniform coordinates; bounds from
    :func:`_bernstein`. ``eff``: the number of independent draws n when it is below S (the
    queries of one pool repeat their magnitudes every N/m queries)."""
    S, L = z.shape
    n = min(eff or S, S)
    m = (z * z).mean(axis=0)
    y = z * z - m
    iu = np.triu_indices(L, 1)
    P = L * (L - 1) // 2
    excess = (z * z).T @ (z * z) / S / np.outer(m, m) - 1
    sq = np.abs((y.T @ y / S)[iu]).max() * math.sqrt(n / VAR_SQ)
    odd_m = (z ** 3).T @ z / S
    np.fill_diagonal(odd_m, 0)
    odd = np.abs(odd_m).max() * math.sqrt(n / VAR_ODD)
    b_sq = _bernstein(ALPHA / P, n, VAR_SQ, MAX_SQ)
    b_odd = _bernstein(ALPHA / (L * (L - 1)), n, VAR_ODD, MAX_ODD)
    return [
        Check(f"fourth moments ({what})", sq, b_sq, sq <= b_sq,
              f"max |t| of E[z_i^2 z_j^2] = E[z_i^2] E[z_j^2] over the {P} pairs (max excess "
              f"{np.abs(excess[iu]).max():.3f})", promised),
        Check(f"odd fourth moments ({what})", odd, b_odd, odd <= b_odd,
              f"max |t| of E[z_i^3 z_j] = 0 over the {L * (L - 1)} ordered pairs (max "
              f"{np.abs(odd_m).max():.3f})"),
    ]


def _cross_query(z, lag, promised, eff):
    """E[z_{q,i}^2 z_{q+lag,j}^2] = E[z_{q,i}^2] E[z_{q+lag,j}^2] for every (i, j); figure and
    bound as for :func:`fourth_moments`."""
    a, b = z[:-lag] ** 2, z[lag:] ** 2
    L = z.shape[1]
    n = min(eff, len(a))
    worst = np.abs((a - a.mean(0)).T @ (b - b.mean(0)) / len(a)).max() * math.sqrt(n / VAR_SQ)
    excess = (a.T @ b / len(a) / np.outer(a.mean(0), b.mean(0)) - 1)
    bound = _bernstein(ALPHA / (L * L), n, VAR_SQ, MAX_SQ)
    return Check(f"fourth moments (query q and q+{lag})", worst, bound, worst <= bound,
                 f"max |t| over the {L * L} pairs (i, j) (max excess "
                 f"{np.abs(excess).max():.3f})", promised)


def _query_words(cfg, beats, q):
    start = q * query_stride(cfg, beats) % cfg.pool_words
    return {(start + b) % cfg.pool_words for b in range(beats)}


def promises(cfg, length):
    """The fourth-moment rows ``cfg`` promises for draws of ``length`` values: a dict {row name:
    bool} (rows not listed are promised by every mode). ``pregen`` gives up the rows whose
    coordinates read the same pool numbers: every row inside draws longer than the pool, the
    queries N/m apart, and consecutive queries whose pool words overlap."""
    if cfg.reuse != "pregen":
        return {}
    beats = -(-length // cfg.out_lanes)
    inside = length <= cfg.pool_size
    nxt = not (_query_words(cfg, beats, 0) & _query_words(cfg, beats, 1))
    out = {f"fourth moments ({w})": inside for w in ("over seeds", "over queries")}
    out["fourth moments (query q and q+1)"] = nxt
    out[f"fourth moments (query q and q+{cfg.pool_words})"] = False
    return out


def _neighbours(cfg):
    top = 1 << (cfg.seed_width - 1)
    return {"s+1": lambda s: (s + 1) % (1 << cfg.seed_width), "s^1": lambda s: s ^ 1,
            "s^2^(w-1)": lambda s: s ^ top}


def measure(cfg, seeds=2048, length=256, rng_seed=1, progress=None):
    """All checks for generator configuration ``cfg``: a dict with the rows and the figures."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 16:
        raise ValueError(f"Seed count must be an integer >= 16, not {seeds!r}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 2:
        raise ValueError(f"Vector length must be an integer >= 2, not {length!r}")
    say = progress or (lambda *_: None)
    t0 = time.time()
    S, L = seeds, length
    rng = np.random.default_rng(rng_seed)
    base = [int(x) for x in rng.integers(0, 1 << cfg.seed_width, S, dtype=np.uint64)]
    say(f"{cfg.name()}: {S} draws of {L} values over seeds")
    promised = promises(cfg, L)
    z = draws(cfg, base, L)
    rows = _moments(z, "over seeds")
    rows += fourth_moments(z, "over seeds", promised.get("fourth moments (over seeds)", True))
    if cfg.reuse == "pregen":
        say(f"{cfg.name()}: {S} consecutive queries of one pool")
        zq = draws(cfg, list(range(S)), L, "queries", base[0])
        rows += _moments(zq, "over queries", min(S, cfg.pool_words))
        # the queries of one pool repeat their magnitudes every N/m queries: N/m independent
        # draws of the fourth moments at most
        rows += fourth_moments(zq, "over queries",
                               promised.get("fourth moments (over queries)", True),
                               cfg.pool_words)
        for lag in sorted({1, cfg.pool_words}):
            if lag < S:
                rows.append(_cross_query(zq, lag, promised.get(
                    f"fourth moments (query q and q+{lag})", True), cfg.pool_words))
    # Adjacent seeds: per coordinate, the correlation over base seeds between z(s) and z(s').
    nb = _neighbours(cfg)
    qa = _q(ALPHA / (2 * L * len(nb)))
    worst, worst_name = 0.0, ""
    for name, f in nb.items():
        say(f"{cfg.name()}: neighbours {name}")
        z2 = draws(cfg, [f(s) for s in base], L)
        a = (z - z.mean(0)) / z.std(0)
        b = (z2 - z2.mean(0)) / z2.std(0)
        r = np.abs((a * b).mean(0)).max()
        if r > worst:
            worst, worst_name = r, name
    rows.append(Check("adjacent seeds", worst, qa / math.sqrt(S), worst <= qa / math.sqrt(S),
                      f"max |corr(z_i(s), z_i(s'))|, worst s' = {worst_name}"))
    # Collisions among structured seeds.
    sw = cfg.seed_width
    special = set(range(S)) | {1 << i for i in range(sw)} | {s ^ 0x80000001 for s in range(64)}
    special = sorted(special)
    say(f"{cfg.name()}: {len(special)} structured seeds")
    zs = draws(cfg, special, min(L, 64))
    distinct = len({row.tobytes() for row in zs})
    rows.append(Check("seed collisions", len(special) - distinct, 0, distinct == len(special),
                      f"{len(special)} counter, single-bit and s^0x80000001 seeds"))
    return {"config": cfg.to_dict(), "name": cfg.name(), "seeds": S, "length": L,
            "alpha": ALPHA, "checks": rows, "pass": all(r["ok"] for r in rows if r["promised"]),
            "given_up": [r["name"] for r in rows if not r["promised"]],
            "seconds": round(time.time() - t0, 1)}


def format_table(result) -> str:
    """A Markdown table of one :func:`measure` result."""
    lines = [f"### {result['name']}: {'PASS' if result['pass'] else 'FAIL'} "
             f"(S = {result['seeds']} draws, L = {result['length']} values, alpha = "
             f"{result['alpha']})", "",
             ]
    table = []
    for r in result["checks"]:
        bound = f"{r['bound']:.4g}" if isinstance(r["bound"], float) else str(r["bound"])
        verdict = "pass" if r["ok"] else "FAIL"
        if not r.get("promised", True):
            verdict = "given up" + (" (fails)" if not r["ok"] else " (passes here)")
        table.append([r["name"], f"{r['figure']:.4g}", bound, verdict, r["note"]])
    lines += markdown_table(["check", "figure", "bound", "verdict", "note"], table, "lrrll")
    return "\n".join(lines) + "\n"


def dieharder(cfg, values=None, progress=None):
    """Run Debian's ``dieharder -a`` on the configuration's uniform bit stream (the stage before
    the scaler, as ``pezo stream --stage uniform --format bits`` writes it); returns the
    PASSED/WEAK/FAILED counts, or None when dieharder is not installed."""
    if shutil.which("dieharder") is None:
        return None
    say = progress or (lambda *_: None)
    values = values or 1 << 40        # endless: dieharder closes the pipe when done
    say(f"{cfg.name()}: dieharder -a on the uniform bit stream (slow)")
    cmd = [sys.executable, "-m", "pezo", "stream", "--stage", "uniform", "--format", "bits",
           "--count", str(values), "--seed", "1"]
    for k, v in cfg.to_dict().items():
        cmd += ["--set", f"{k}={'none' if v is None else v}"]
    gen = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    dh = subprocess.run(["dieharder", "-a", "-g", "200"], stdin=gen.stdout,
                        capture_output=True, text=True)
    gen.stdout.close()
    gen.wait()
    counts = {k: dh.stdout.count(k) for k in ("PASSED", "WEAK", "FAILED")}
    failed = [ln.split("|")[0].strip() for ln in dh.stdout.splitlines() if "FAILED" in ln]
    return {"counts": counts, "failed": failed}


# The dieharder subset (docs/streams.md "External test batteries"): fourteen tests at 30 p-values
# each with their default sample counts, the twelve n-tuple sizes of rgb_bitdist, and
# marsaglia_tsang_gcd with 10^6 pairs per p-value, so every test reads less than the 640 MB file
# and none rewinds it (each test is its own dieharder process, reading from the file's start;
# checked: none of them reports a rewind on 640 MB, and 13 of the 30 result lines do on 256 MB).
DIEHARDER_SUBSET = ([["-d", str(d), "-p", "30"] for d in (0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13,
                                                          15, 16, 101)]
                    + [["-d", "200", "-n", str(n), "-p", "30"] for n in range(1, 13)]
                    + [["-d", "17", "-p", "30", "-t", "1000000"]])
DIEHARDER_BYTES = 640 << 20


def stream_file(cfg, path, nbytes=DIEHARDER_BYTES, seed=1):
    """Write the first ``nbytes`` of a bit stream to ``path``: ``cfg``'s uniform stage packed as
    ``pezo stream --stage uniform --format bits --seed SEED`` writes it, or, for ``cfg =
    "pcg64"``, NumPy's PCG64 (``default_rng(seed).bytes``) as the reference generator."""
    from pezo.stream import write_stream
    with open(path, "wb") as f:
        if cfg == "pcg64":
            rng = np.random.default_rng(seed)
            for i in range(0, nbytes, 1 << 24):
                f.write(rng.bytes(min(1 << 24, nbytes - i)))
        else:
            write_stream(cfg, seed, nbytes * 8 // cfg.width, f, "uniform", "bits")
    return path


def dieharder_subset(cfg, workdir, nbytes=DIEHARDER_BYTES, seed=1, progress=None, keep=False):
    """Run :data:`DIEHARDER_SUBSET` on ``nbytes`` of ``cfg``'s uniform bit stream (or of PCG64
    for ``cfg = "pcg64"``) stored in ``workdir``: PASSED/WEAK/FAILED counts, the failed and weak
    test names, the result lines and how often a test rewound the file (0: no data was reused).
    Returns None when dieharder is not installed."""
    if shutil.which("dieharder") is None:
        return None
    say = progress or (lambda *_: None)
    name = cfg if cfg == "pcg64" else cfg.name()
    path = Path(workdir) / f"{name}-seed{seed}.bin"
    say(f"{name}: writing {nbytes >> 20} MB of the uniform bit stream")
    stream_file(cfg, path, nbytes, seed)
    rows, rewound = [], 0
    try:
        for args in DIEHARDER_SUBSET:
            say(f"{name}: dieharder {' '.join(args)}")
            out = subprocess.run(["dieharder", "-g", "201", "-f", str(path)] + args,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True).stdout          # the rewind notice is on stderr
            for ln in out.splitlines():
                if "rewound" in ln:
                    rewound = max(rewound, int(ln.split("rewound")[1].split()[0]))
                cells = [c.strip() for c in ln.split("|")]
                if len(cells) == 6 and cells[5] in ("PASSED", "WEAK", "FAILED"):
                    rows.append(cells)
    finally:
        if not keep:
            path.unlink()
    counts = {k: sum(r[5] == k for r in rows) for k in ("PASSED", "WEAK", "FAILED")}
    label = [f"{r[0]}" + (f" n={r[1]}" if r[0] == "rgb_bitdist" else "") for r in rows]
    return {"counts": counts, "rows": rows, "rewound": rewound, "bytes": nbytes, "seed": seed,
            "failed": [lb for lb, r in zip(label, rows) if r[5] == "FAILED"],
            "weak": [lb for lb, r in zip(label, rows) if r[5] == "WEAK"]}


def write_results(results, out_dir):
    """quality.md and quality.json in ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# Stream quality, measured", "",
          "Generated by `make quality` (`pezo quality --modes --out docs`): every check of the "
          "stream contract (docs/streams.md) for each standard mode, on the golden model (the "
          "hardware is bit-exact with it). Bounds are those independent unit-variance vectors "
          "stay within at family-wise level alpha, computed from S and L (pezo/quality.py). "
          "A row a mode gives up for its savings (docs/streams.md, \"What each mode keeps and "
          "gives up\") is measured and shown as *given up*; it does not decide the verdict, "
          "and the worst figure is over the promised rows.", "",
          ]
    table = []
    for r in results:
        worst = max(r["checks"], key=lambda c: c["figure"] / c["bound"]
                    if isinstance(c["bound"], float) and c["bound"] > 0
                    and c.get("promised", True)
                    and not c["name"].startswith("eigenvalues min") else 0)
        table.append([r.get("label", r["name"]), f"`{r['name']}`", "pass" if r["pass"] else "FAIL",
                      f"{worst['name']}: {worst['figure']:.3g} / {worst['bound']:.3g}",
                      r["seconds"]])
    md += markdown_table(["mode", "configuration", "verdict", "worst figure / bound", "seconds"],
                         table, "llllr")
    md.append("")
    for r in results:
        md.append(format_table(r))
        if r.get("dieharder"):
            c = r["dieharder"]["counts"]
            md.append(f"dieharder -a: {c['PASSED']} passed, {c['WEAK']} weak, {c['FAILED']} "
                      f"failed" + (f" ({', '.join(r['dieharder']['failed'])})"
                                   if r["dieharder"]["failed"] else "") + "\n")
    (out / "quality.md").write_text("\n".join(md))
    (out / "quality.json").write_text(json.dumps(results, indent=1))
    return [str(out / "quality.md"), str(out / "quality.json")]
