"""Golden models of the Gaussian baselines (bit-exact with :mod:`pezo.hw.gauss`), and their
statistical checks.

The baselines are what PeZO's uniform generator is compared against: Gaussian generators with the
PeZO generator's output interface (``lanes`` signed values per cycle in Q``z_int``.``z_frac``,
``z_bits = z_int + z_frac`` bits, the same master seed port). Their uniform numbers come from the
project's RNG bank (:mod:`pezo.sim.bank`: independent maximal-length LFSR lanes, ``leap`` stepping,
``state_bits`` state bits, lane states derived from the master seed by the bank's rule), so a
baseline costs what its own arithmetic and its extra generators cost.

Notation: ``bank[c, l]`` is bank lane l's number at bank cycle c (a ``width``-bit two's complement
integer); ``raw(x) = x mod 2^16`` its bits read as an unsigned number. ``rne(x, s)`` is
``round(x / 2^s)`` with ties to even (:func:`pezo.fixed.rshift_round_even`; an exact left shift
for s <= 0). ``sat(x)`` clamps to the signed ``z_bits`` range. Output beat b, lane j is value
``b * lanes + j`` of :func:`generate` (beat-major, like :func:`pezo.sim.generator.generate`).

CLT (``kind="clt"``)
--------------------
Sum of k uniforms, scaled to unit variance. The bank has ``lanes * k`` lanes of ``width`` = w bits.
Beat b, lane j::

    S = sum_{i<k} bank[b, j*k + i]          (variance k (4^w - 1) / 12 LSB^2)
    z = sat(rne(S * C, T + w - z_frac))

The scale c = sqrt(12 / (k (1 - 4^-w))) (unit variance: z = S * c / 2^w) is approximated by at most
``scale_digits`` signed powers of two, c ~= sum_i s_i 2^-t_i (greedy canonical signed digits,
:func:`clt_digits`); T = max t_i and C = sum_i s_i 2^(T - t_i) is the integer the hardware builds
from shifts and adds (no multiplier). :func:`clt_scale_report` gives the realised c and its error
(for k = 4, 8, 12 with 4 digits: +0.022 %, -0.011 %, exact).

Box-Muller (``kind="boxmuller"``)
---------------------------------
Table-based fixed-point Box-Muller, z1 = r cos(theta), z2 = r sin(theta) with r = sqrt(-2 ln u),
u in (0, 1) from a 32-bit uniform and theta from a 16-bit one. ``width`` must be 16. The design has
P pair units: P = lanes / 2 for even ``lanes`` (every unit gives 2 values per cycle), P = lanes for
odd ``lanes`` (every unit gives its cos value, then its sin value: half rate, one multiplier). The
bank has 3 P lanes; unit p at bank cycle c takes::

    u1 = raw(bank[c, 3p]) * 2^16 + raw(bank[c, 3p+1])     (32 bits)
    u2 = raw(bank[c, 3p+2])                               (16 bits)

Radius (all integers; ``bitlen`` = position of the leading one + 1):

1. ``x = max(u1, 1)`` (u1 = 0 becomes the smallest nonzero value, u = 2^-32), ``e = 32 -
   bitlen(x)`` (leading zeros, 0..31), ``n = (x << e) mod 2^32`` (bit 31 set), so
   u = x / 2^32 = 2^-(e+1) (1 + f) with f = (n - 2^31) / 2^31.
2. ln(1 + f), piecewise linear on 64 segments (Q0.22): ``i = (n >> 25) mod 64``, ``d = (n >> 9)
   mod 2^16``, ``lnx = LN_A[i] + ((LN_B[i] * d) >> 16)`` with ``LN_A[i] = round(ln(1 + i/64)
   2^22)`` (i = 0..64) and ``LN_B[i] = LN_A[i+1] - LN_A[i]`` (< 2^16: a 16 x 16 multiply).
3. ``h = LN_E[e] - lnx`` with ``LN_E[e] = (e + 1) * LN_A[64]``: h = -ln u in Q5.22, h >= 1;
   ``G = 2 h`` = -2 ln u in units of 2^-22 (G < 2^28).
4. sqrt by normalisation: ``s = (28 - bitlen(G)) // 2`` (0..13), ``N = G << 2s`` (in [2^26,
   2^28)), ``q = N >> 21`` (32..127), ``d2 = (N >> 5) mod 2^16``, ``sq = SQ_A[q] + ((SQ_B[q] *
   d2) >> 16)`` with ``SQ_A[q] = round(sqrt(q / 32) 2^22)`` (q = 32..128) and ``SQ_B[q] =
   SQ_A[q+1] - SQ_A[q]`` (< 2^16); sq = sqrt(N / 2^26) in Q1.22.
5. ``R = ((sq >> (6 + s)) + 1) >> 1`` = r in Q3.13, unsigned 16 bits (round half up); r <= 6.66
   (u = 2^-32), so the tails reach 6.66 sigma.

Angle, quarter-wave table of M = 2^(A-2) entries (A = ``angle_bits``): ``a = u2 >> (16 - A)``
(theta = 2 pi (a + 1/2) / 2^A), quadrant ``Qd = a >> (A - 2)``, ``t = a mod M``, ``t' = M - 1 -
t``; ``TRIG[t] = round(sin(pi/2 (t + 1/2) / M) 2^15)`` (unsigned Q1.15, <= 2^15). Magnitudes and
signs: for even Qd |cos| = TRIG[t'], |sin| = TRIG[t]; for odd Qd |cos| = TRIG[t], |sin| = TRIG[t'];
cos < 0 for Qd in {1, 2}, sin < 0 for Qd in {2, 3}.

Output: ``m = min(((R * TRIG[.] >> (27 - z_frac)) + 1) >> 1, 2^(z_bits-1) - 1)`` (the magnitude
rounded half up: round half away from zero), negated when the sign says so; the distribution is
exactly symmetric and saturates at +-(2^(z_bits-1) - 1). Even ``lanes``:
beat c, lanes 2p and 2p+1 are unit p's (cos, sin) values of bank cycle c. Odd ``lanes``: beat 2c,
lane p is unit p's cos value of bank cycle c, beat 2c+1 its sin value.

Tables (the hardware's ROM contents, :func:`bm_tables`): ln 64 x 38 bits (LN_A 22 + LN_B 16),
(e+1) ln 2 32 x 27 bits, sqrt 128 x 39 bits (SQ_A 23 + SQ_B 16; the first 32 entries are unused),
quarter-wave sine 2^(A-2) x 16 bits (read twice per cycle).
"""

import dataclasses
from dataclasses import dataclass, fields
from fractions import Fraction
import math

import numpy as np

from pezo.config import GeneratorConfig, _check_choice, _check_int, config_from_dict
from pezo.fixed import rshift_round_even
from pezo.sim.bank import BankModel

__all__ = ["GaussConfig", "GaussModel", "generate", "stat_checks", "clt_digits",
           "clt_scale_report", "clt_theory", "bm_tables", "bm_radius", "bm_angle", "KINDS"]

KINDS = ("clt", "boxmuller")

#: Box-Muller fixed-point constants (see the module docstring).
BM_WIDTH = 16          # bank lane width: u1 takes two lanes, u2 one
LN_SEG_BITS = 6        # ln(1 + f): 64 linear segments
LN_FRAC = 22           # ln values in Q.22
SQ_SEG_BITS = 5        # sqrt(y), y in [1, 4): segments of 1/32
SQ_FRAC = 22           # sqrt values in Q1.22
R_FRAC = 13            # radius in Q3.13 (unsigned 16 bits)
TRIG_FRAC = 15         # |sin|, |cos| in Q1.15 (unsigned 16 bits)
BM_PRODUCT_FRAC = R_FRAC + TRIG_FRAC
CLT_PRECISION = 16     # CLT scale digits stop below 2^-16 relative remainder


@dataclass(frozen=True)
class GaussConfig:
    """A Gaussian baseline generator (see the module docstring for the exact streams).

    Parameters
    ----------
    kind : str
        ``"clt"`` (scaled sum of k uniforms) or ``"boxmuller"`` (table-based fixed-point
        Box-Muller).
    lanes : int
        Values per cycle, 1..32.
    width : int
        Bits of each uniform number of the bank, 2..32 (CLT); Box-Muller needs 16.
    k : int
        CLT only: uniforms summed per value, 2..64, with ``lanes * k`` <= 64 (the bank's limit).
    z_int, z_frac : int
        Output format Qz_int.z_frac: z_int 2..16, z_frac 0..30 (Box-Muller: 0..27), at most 32
        bits in all, as for the PeZO generator.
    state_bits : int
        LFSR state bits of every bank lane (the values :class:`pezo.config.GeneratorConfig`
        accepts).
    seed_width : int
        Bits of the master seed port: 32 or 64.
    scale_digits : int
        CLT only: the most signed power-of-two digits of the scale constant, 1..8.
    angle_bits : int
        Box-Muller only: A, bits of u2 that select the angle (2^A angles), 4..12; the quarter-wave
        table has 2^(A-2) entries.

    Raises
    ------
    TypeError
        A parameter of the wrong kind.
    ValueError
        A parameter out of range; the message names it and what is accepted.
    """

    kind: str = "clt"
    lanes: int = 4
    width: int = 16
    k: int = 12
    z_int: int = 3
    z_frac: int = 13
    state_bits: int = 32
    seed_width: int = 32
    scale_digits: int = 5
    angle_bits: int = 10

    def __post_init__(self):
        _check_choice("Gaussian baseline kind (kind)", self.kind, KINDS)
        _check_int("Lane count (lanes)", self.lanes, 1, 32)
        _check_int("Uniform number width (width)", self.width, 2, 32)
        _check_int("CLT uniforms per value (k)", self.k, 2, 64)
        _check_int("Integer bits of z (z_int)", self.z_int, 2, 16)
        _check_int("Fraction bits of z (z_frac)", self.z_frac, 0, 30)
        if self.z_int + self.z_frac > 32:
            raise ValueError(f"z format Q{self.z_int}.{self.z_frac} is wider than 32 bits")
        if isinstance(self.seed_width, bool) or not isinstance(self.seed_width, int):
            raise TypeError(f"Seed width (seed_width) must be an integer, not {self.seed_width!r}")
        if self.seed_width not in (32, 64):
            raise ValueError(f"Seed width (seed_width) must be 32 or 64, not {self.seed_width!r}")
        _check_int("CLT scale digit count (scale_digits)", self.scale_digits, 1, 8)
        _check_int("Box-Muller angle bits (angle_bits)", self.angle_bits, 4, 12)
        if self.kind == "clt":
            if self.lanes * self.k > 64:
                raise ValueError(f"A CLT generator needs lanes * k <= 64 uniform generators (the "
                                 f"bank's limit), not {self.lanes} * {self.k} = "
                                 f"{self.lanes * self.k}")
        else:
            if self.width != BM_WIDTH:
                raise ValueError(f"Box-Muller takes 16-bit uniform numbers (u1 from two, u2 from "
                                 f"one): width must be 16, not {self.width!r}")
            if self.z_frac > 27:
                raise ValueError(f"Box-Muller output needs z_frac <= 27 (r cos theta has 28 "
                                 f"fraction bits), not {self.z_frac!r}")
            if self.bank_lanes > 64:
                raise ValueError(f"Box-Muller with {self.lanes} lanes needs {self.bank_lanes} "
                                 f"uniform generators; the bank has at most 64")
        # state_bits, and distinct lane seeds, as the bank itself checks them.
        try:
            self.bank_config()
        except ValueError as e:
            if "distinct" not in str(e):
                raise
            raise ValueError(f"{self.state_bits} LFSR state bits cannot give the "
                             f"{self.bank_lanes} uniform generators of this baseline distinct "
                             f"seeds; use more state_bits") from None

    # Derived figures ------------------------------------------------------------------------
    @property
    def z_bits(self) -> int:
        return self.z_int + self.z_frac

    @property
    def units(self) -> int:
        """Box-Muller pair units: lanes/2 (even lanes, full rate) or lanes (odd, half rate)."""
        return self.lanes // 2 if self.lanes % 2 == 0 else self.lanes

    @property
    def full_rate(self) -> bool:
        """Box-Muller: every unit gives both its values in one beat (even ``lanes``)."""
        return self.lanes % 2 == 0

    @property
    def bank_lanes(self) -> int:
        """Uniform generators (bank lanes) the baseline uses."""
        return self.lanes * self.k if self.kind == "clt" else 3 * self.units

    @property
    def bank_width(self) -> int:
        return self.width

    def bank_config(self):
        """The :class:`~pezo.config.GeneratorConfig` of the baseline's uniform bank."""
        return GeneratorConfig(lanes=self.bank_lanes, width=self.bank_width,
                               state_bits=self.state_bits, seed_width=self.seed_width,
                               step="leap", reuse="none")

    def replace(self, **changes) -> "GaussConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "GaussConfig":
        return config_from_dict(cls, data, "Gaussian baseline")

    def name(self) -> str:
        """A short, file-name-safe identifier of this configuration."""
        what = (f"clt{self.k}-w{self.width}-K{self.scale_digits}" if self.kind == "clt"
                else f"bm-a{self.angle_bits}")
        return f"{what}-n{self.lanes}-k{self.state_bits}-Q{self.z_int}.{self.z_frac}"


# CLT ------------------------------------------------------------------------------------------

def clt_target(cfg) -> float:
    """The exact unit-variance scale c (z = S * c / 2^w)."""
    return math.sqrt(12.0 / (cfg.k * (1.0 - 4.0 ** -cfg.width)))


def clt_digits(cfg) -> list:
    """Greedy signed-power-of-two digits [(sign, t), ...] of the CLT scale: c ~= sum s 2^-t.

    Each step takes the signed power of two nearest to the remainder; it stops after
    ``scale_digits`` digits, when a digit no longer reduces the error, or when the remainder is
    below 2^-16 of c (finer digits change no statistic measurably)."""
    c = clt_target(cfg)
    digits, r = [], c
    for _ in range(cfg.scale_digits):
        if abs(r) < c * 2.0 ** -CLT_PRECISION:
            break
        t0 = -math.floor(math.log2(abs(r)))
        s = 1 if r > 0 else -1
        t = min((t0 - 1, t0, t0 + 1), key=lambda t: abs(r - s * 2.0 ** -t))
        nr = r - s * 2.0 ** -t
        if abs(nr) >= abs(r):
            break
        digits.append((s, t))
        r = nr
    return digits


def clt_constant(cfg):
    """(C, T): the integer C = sum s_i 2^(T - t_i) and T = max t_i of :func:`clt_digits`."""
    digits = clt_digits(cfg)
    T = max(t for _, t in digits)
    return sum(s << (T - t) for s, t in digits), T


def clt_shift(cfg) -> int:
    """Right shift from S * C to z LSBs: T + w - z_frac (<= 0: an exact left shift)."""
    return clt_constant(cfg)[1] + cfg.width - cfg.z_frac


def clt_scale_report(cfg) -> dict:
    """Target and realised CLT scale, relative error, digits."""
    C, T = clt_constant(cfg)
    c = clt_target(cfg)
    real = C / 2.0 ** T
    return {"target": c, "realised": real, "rel_error": real / c - 1,
            "digits": [f"{'+' if s > 0 else '-'}2^{-t}" for s, t in clt_digits(cfg)],
            "constant": C, "shift": clt_shift(cfg)}


def _irwin_hall_cdf(k: int, x: float) -> float:
    """P(U_1 + ... + U_k <= x) for independent U(0, 1)."""
    if x <= 0:
        return 0.0
    if x >= k:
        return 1.0
    x = Fraction(x)         # exact: the alternating sum cancels badly in floating point
    return float(sum((-1) ** j * math.comb(k, j) * (x - j) ** k
                     for j in range(int(math.floor(x)) + 1)) / math.factorial(k))


def clt_theory(k: int) -> dict:
    """Properties of the standardised sum of k continuous uniforms (Irwin-Hall), the limit of the
    CLT baseline for wide uniforms: excess kurtosis -6/(5k), largest value sqrt(3k), and the mass
    beyond 3 and 4 sigma."""
    sd = math.sqrt(k / 12.0)

    def tail(t):
        # P(|Z| > t) = 2 P(X > k/2 + t sd) = 2 F(k/2 - t sd) by symmetry (small argument: stable)
        return 2 * _irwin_hall_cdf(k, k / 2.0 - t * sd)

    return {"excess_kurtosis": -1.2 / k, "max_abs": math.sqrt(3.0 * k),
            "tail3": tail(3.0), "tail4": tail(4.0)}


def _clt_values(cfg, u):
    s = u.reshape(len(u), cfg.lanes, cfg.k).sum(axis=2)
    C, _ = clt_constant(cfg)
    z = rshift_round_even(s * C, clt_shift(cfg))
    return np.clip(z, -(1 << (cfg.z_bits - 1)), (1 << (cfg.z_bits - 1)) - 1)


# Box-Muller -----------------------------------------------------------------------------------

def _bitlen(x):
    """Bit length of non-negative int64 values (< 2^53), exact."""
    return np.frexp(np.asarray(x, dtype=np.float64))[1].astype(np.int64)


def _ln_tables():
    n = 1 << LN_SEG_BITS
    a = [round(math.log1p(i / n) * (1 << LN_FRAC)) for i in range(n + 1)]
    return a[:n], [a[i + 1] - a[i] for i in range(n)], a[n]


def _sqrt_tables():
    n = 1 << (SQ_SEG_BITS + 2)          # q = 0..127; q < 32 never occurs (entries 0)
    a = [round(math.sqrt(q / (1 << SQ_SEG_BITS)) * (1 << SQ_FRAC)) for q in range(n + 1)]
    sa = [a[q] if q >= n // 4 else 0 for q in range(n)]
    sb = [a[q + 1] - a[q] if q >= n // 4 else 0 for q in range(n)]
    return sa, sb


def bm_tables(cfg=None) -> dict:
    """The Box-Muller ROM contents (lists of ints): ``ln_a``, ``ln_b`` (64 entries), ``ln_e``
    (32), ``sq_a``, ``sq_b`` (128; entries below 32 unused), ``trig`` (2^(angle_bits-2))."""
    ln_a, ln_b, ln2 = _ln_tables()
    sq_a, sq_b = _sqrt_tables()
    out = {"ln_a": ln_a, "ln_b": ln_b, "ln_e": [(e + 1) * ln2 for e in range(32)],
           "sq_a": sq_a, "sq_b": sq_b}
    if cfg is not None:
        m = 1 << (cfg.angle_bits - 2)
        out["trig"] = [round(math.sin(math.pi / 2 * (t + 0.5) / m) * (1 << TRIG_FRAC))
                       for t in range(m)]
    return out


_T = bm_tables()
_LN_A, _LN_B, _LN_E = (np.array(_T[n], dtype=np.int64) for n in ("ln_a", "ln_b", "ln_e"))
_SQ_A, _SQ_B = (np.array(_T[n], dtype=np.int64) for n in ("sq_a", "sq_b"))
assert max(_T["ln_b"]) < 1 << 16 and max(_T["sq_b"]) < 1 << 16      # 16 x 16 multiplies


def bm_radius(u1, stages=False):
    """R (r = sqrt(-2 ln u) in Q3.13) of 32-bit unsigned ``u1`` values (int64 array).

    With ``stages`` returns a dict of every intermediate (e, n, i, d, lnx, G, s, q, d2, sq, R)."""
    x = np.maximum(np.asarray(u1, dtype=np.int64), 1)
    e = 32 - _bitlen(x)
    n = (x << e) & 0xFFFFFFFF
    i = (n >> (31 - LN_SEG_BITS)) & ((1 << LN_SEG_BITS) - 1)
    d = (n >> (15 - LN_SEG_BITS)) & 0xFFFF
    lnx = _LN_A[i] + ((_LN_B[i] * d) >> 16)
    G = 2 * (_LN_E[e] - lnx)
    s = (28 - _bitlen(G)) // 2
    nn = G << (2 * s)
    q = nn >> 21
    d2 = (nn >> 5) & 0xFFFF
    sq = _SQ_A[q] + ((_SQ_B[q] * d2) >> 16)
    R = ((sq >> (6 + s)) + 1) >> 1
    if stages:
        return dict(e=e, n=n, i=i, d=d, lnx=lnx, G=G, s=s, q=q, d2=d2, sq=sq, R=R)
    return R


#: The largest radius (u1 = 0 or 1: u = 2^-32): every R fits 16 unsigned bits.
R_MAX = int(bm_radius(np.array([1]))[0])
assert R_MAX < 1 << 16


def bm_angle(u2, cfg):
    """(cos index, sin index, cos negative, sin negative) of 16-bit unsigned ``u2`` values."""
    A = cfg.angle_bits
    a = np.asarray(u2, dtype=np.int64) >> (16 - A)
    quad = a >> (A - 2)
    t = a & ((1 << (A - 2)) - 1)
    tc = t ^ ((1 << (A - 2)) - 1)
    even = (quad & 1) == 0
    return (np.where(even, tc, t), np.where(even, t, tc), (quad == 1) | (quad == 2), quad >= 2)


def _bm_out(cfg, R, trig, neg):
    rounded = (((R * trig) >> (BM_PRODUCT_FRAC - cfg.z_frac - 1)) + 1) >> 1
    mag = np.minimum(rounded, (1 << (cfg.z_bits - 1)) - 1)
    return np.where(neg, -mag, mag)


def _bm_pairs(cfg, u, trig):
    """(cycles, units) cos values and sin values of bank numbers ``u`` (cycles, 3 * units)."""
    raw = u & 0xFFFF
    u1 = (raw[:, 0::3] << 16) | raw[:, 1::3]
    R = bm_radius(u1)
    ci, si, cn, sn = bm_angle(raw[:, 2::3], cfg)
    return _bm_out(cfg, R, trig[ci], cn), _bm_out(cfg, R, trig[si], sn)


# Models ---------------------------------------------------------------------------------------

class GaussModel:
    """Resumable golden model: ``next(beats)`` returns the next (beats, lanes) int64 values after
    loading ``seed`` (what the hardware transfers on ``o``, whatever the stalls)."""

    CHUNK = 1 << 16     # bank cycles per block (bounded memory, cache-friendly)

    def __init__(self, cfg, seed=0):
        if not isinstance(cfg, GaussConfig):
            raise TypeError(f"Configuration must be a GaussConfig, not {cfg!r}")
        self.cfg = cfg
        self.bank = BankModel(cfg.bank_config(), seed)
        self._pending = np.empty((0, cfg.lanes), dtype=np.int64)
        if cfg.kind == "boxmuller":
            self._trig = np.array(bm_tables(cfg)["trig"], dtype=np.int64)

    def _cycles(self, cycles):
        """Output beats of ``cycles`` bank cycles."""
        cfg = self.cfg
        u = self.bank.next(cycles)
        if cfg.kind == "clt":
            return _clt_values(cfg, u)
        zc, zs = _bm_pairs(cfg, u, self._trig)
        if cfg.full_rate:
            out = np.empty((cycles, cfg.lanes), dtype=np.int64)
            out[:, 0::2], out[:, 1::2] = zc, zs
        else:
            out = np.empty((2 * cycles, cfg.lanes), dtype=np.int64)
            out[0::2], out[1::2] = zc, zs
        return out

    def next(self, beats: int) -> np.ndarray:
        beats = int(beats)
        per = 1 if self.cfg.kind == "clt" or self.cfg.full_rate else 2
        parts, have = [self._pending], len(self._pending)
        while have < beats:
            cycles = min(self.CHUNK, -(-(beats - have) // per))
            parts.append(self._cycles(cycles))
            have += len(parts[-1])
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._pending = out[beats:]
        return out[:beats]


def generate(cfg, seed: int, count: int) -> np.ndarray:
    """The first ``count`` values (flat, beat-major: index = beat * lanes + lane) of the baseline
    after loading ``seed``."""
    if not isinstance(cfg, GaussConfig):
        raise TypeError(f"Configuration must be a GaussConfig, not {cfg!r}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"Count must be a non-negative integer, not {count!r}")
    beats = -(-int(count) // cfg.lanes)
    return GaussModel(cfg, seed).next(beats).reshape(-1)[:count]


# Statistical checks ---------------------------------------------------------------------------

def _normal_sf(t: float) -> float:
    return 0.5 * math.erfc(t / math.sqrt(2.0))


def stat_checks(z, sigmas: float = 4.0) -> dict:
    """Statistical checks of samples ``z`` (floats; the target is N(0, 1)).

    Every check compares a statistic with its value for the normal distribution, with a tolerance
    of ``sigmas`` standard errors for this sample size n under the normal hypothesis: mean (SE
    1/sqrt(n)), variance (SE sqrt(2/n)), excess kurtosis (SE sqrt(24/n)), and the mass beyond 3
    and 4 sigma, P(|z| > t), against 2 Phi(-t) (binomial SE sqrt(p (1 - p) / n)). With the
    default 4 SE a true normal fails a given check with probability about 6e-5.

    Returns ``{check: {"value", "expected", "tolerance", "pass"}}`` for ``mean``, ``variance``,
    ``excess_kurtosis``, ``tail3``, ``tail4``, plus ``"max_abs"`` (the largest |z|),
    ``"samples"`` (n) and ``"passed"`` (all checks passed).

    Raises
    ------
    ValueError
        Fewer than 1000 samples, or a non-positive ``sigmas``.
    """
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    n = len(z)
    if n < 1000:
        raise ValueError(f"Statistical checks need at least 1000 samples, not {n}")
    if not sigmas > 0:
        raise ValueError(f"Tolerance in standard errors (sigmas) must be positive, not {sigmas!r}")
    out = {}

    def check(name, value, expected, se):
        tol = sigmas * se
        out[name] = {"value": float(value), "expected": float(expected), "tolerance": float(tol),
                     "pass": bool(abs(value - expected) <= tol)}

    mean = z.mean()
    c = z - mean
    m2 = np.mean(c * c)
    m4 = np.mean((c * c) ** 2)
    check("mean", mean, 0.0, 1 / math.sqrt(n))
    check("variance", m2, 1.0, math.sqrt(2.0 / n))
    check("excess_kurtosis", m4 / (m2 * m2) - 3.0, 0.0, math.sqrt(24.0 / n))
    a = np.abs(z)
    for t in (3, 4):
        p = 2 * _normal_sf(t)
        check(f"tail{t}", np.count_nonzero(a > t) / n, p, math.sqrt(p * (1 - p) / n))
    checks = list(out)
    out["max_abs"] = float(a.max())
    out["samples"] = n
    out["passed"] = all(out[k]["pass"] for k in checks)
    return out


# Report ---------------------------------------------------------------------------------------

#: The configurations of the statistics table in docs/gaussian.md (4 lanes, 16-bit outputs).
REPORT_CONFIGS = [GaussConfig(kind=kind, k=k, lanes=lanes, z_int=zi, z_frac=zf)
                  for kind, k, lanes in (("clt", 4, 4), ("clt", 8, 4), ("clt", 12, 4),
                                         ("boxmuller", 12, 4), ("boxmuller", 12, 1))
                  for zi, zf in ((3, 13), (4, 12))]


def stats_table(configs=None, seed: int = 2024, count: int = 1_000_000) -> str:
    """Markdown table of :func:`stat_checks` for ``configs`` (default :data:`REPORT_CONFIGS`),
    ``count`` values of the golden model after loading ``seed``."""
    configs = REPORT_CONFIGS if configs is None else configs
    names = ("mean", "variance", "excess_kurtosis", "tail3", "tail4")
    lines = ["| Baseline | Format | Mean | Variance | Excess kurtosis | P(\\|z\\| > 3) | "
             "P(\\|z\\| > 4) | max \\|z\\| | All pass |", "|:--|:--|" + "--:|" * 6 + ":--|"]
    ref = None
    for cfg in configs:
        s = stat_checks(generate(cfg, seed, count) / float(1 << cfg.z_frac))
        ref = s
        what = f"CLT k={cfg.k}" if cfg.kind == "clt" else \
            f"Box-Muller ({cfg.lanes} lane{'s' if cfg.lanes > 1 else ''})"
        cells = [f"{s[n]['value']:.4g}{'' if s[n]['pass'] else ' ✗'}" for n in names]
        lines.append(f"| {what} | Q{cfg.z_int}.{cfg.z_frac} | " + " | ".join(cells) +
                     f" | {s['max_abs']:.3f} | {'yes' if s['passed'] else 'no'} |")
    exp = " | ".join(f"{ref[n]['expected']:.4g} ± {ref[n]['tolerance']:.2g}" for n in names)
    lines.append(f"| *normal, ±4 SE* | | {exp} | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":      # python -m pezo.sim.gauss: the statistics table of the docs
    print(f"{1_000_000} values per configuration, seed 2024 (✗ = check failed)\n")
    print(stats_table())
    for k in (4, 8, 12):
        r = clt_scale_report(GaussConfig(kind="clt", k=k))
        t = clt_theory(k)
        print(f"CLT k={k}: scale {' '.join(r['digits'])} = {r['realised']:.6f} "
              f"({100 * r['rel_error']:+.4f} %); Irwin-Hall: kurtosis {t['excess_kurtosis']:.4f}, "
              f"P(|z|>3) {t['tail3']:.4g}, P(|z|>4) {t['tail4']:.4g}, max {t['max_abs']:.3f}")
