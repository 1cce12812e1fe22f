"""Golden models of the Gaussian baselines (bit-exact with :mod:`pezo.hw.gauss`), and their
statistical checks.

Both baselines produce ``lanes`` signed values per cycle in the PeZO generator's output format
Q``z_int``.``z_frac``, from the project's uniform RNG bank (:mod:`pezo.sim.bank`) with w = 16-bit
numbers, leap stepping and ``state_bits``-bit LFSRs, seeded from the same master seed port.

**CLT** (``kind="clt"``, k uniforms per value). The bank has ``lanes * k`` lanes; output lane j at
cycle c is the sum S of bank lanes j*k .. j*k+k-1 at cycle c (16-bit two's complement numbers,
variance (4^16 - 1)/12 LSB^2 each), scaled to unit variance:
``z = sat((S * C + 2^(F+2)) >> (F+3))`` with ``C = round(sqrt(12/k) * 2^F)``, F = 10, an arithmetic
shift (round half up) and saturation to the z range; for z_frac = 13 the factor 2^-(F+3) * C is
sqrt(12/k) / 2^16 * 2^13. (For other z_frac the shift is F + 16 - z_frac.)

**Box-Muller** (``kind="boxmuller"``). The bank has ``lanes`` lanes (``lanes`` even); unit i uses
bank lanes 2i (u1) and 2i+1 (u2), made unsigned by adding 2^15. Tables (ROMs computed here and in
the hardware from the same formulas):

* radius, indexed by (e, m): e = leading zeros of the 16-bit u1 (capped at 15) and m = the
  M = ``r_index_bits`` bits after its leading one (``((u1 << e) >> (15 - M)) mod 2^M``), so small
  u1 (the tail) get as fine a table as large ones: ``R[e, m] = round(sqrt(-2 ln u) * 2^RF)``
  (RF = 12) with u the middle of the bucket, ``(2^(15-e) + (m + 0.5) 2^(15-e-M)) / 2^16`` for
  e < 15 and ``1 / 2^16`` for e = 15; table index ``e * 2^M + m``, 16 * 2^M entries;
* ``COS[b] = round(cos(2 pi (b + 0.5) / 2^B) * 2^14)``, ``SIN[b]`` likewise, for the top
  B = ``angle_index_bits`` bits b of u2.

Output lanes 2i and 2i+1 are ``sat((R[a] * COS[b] + 2^(s-1)) >> s)`` and the same with SIN, with
s = RF + 14 - z_frac. The largest radius is sqrt(2 ln 2^16) = 4.71, so the tails reach 4.7
sigma (the output format must hold them: Q4.12 does, Q3.13 saturates at 4).
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sstats

from pezo.sim.bank import BankModel

__all__ = ["GaussConfig", "GaussModel", "generate", "stat_checks", "clt_constant",
           "bm_tables", "KINDS"]

KINDS = ("clt", "boxmuller")
CLT_F = 10
BM_RF = 12
BM_TF = 14
UNIFORM_WIDTH = 16


def _int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")


@dataclass(frozen=True)
class GaussConfig:
    """A Gaussian baseline generator.

    kind : "clt" (sum of k uniforms) or "boxmuller"
    lanes : values per cycle, 1..16 (even for Box-Muller)
    k : CLT only, uniforms per value, 2..16
    z_int, z_frac : output format Qz_int.z_frac (z_int 2..8, z_frac 4..16)
    state_bits : LFSR state bits of the uniform bank (3..64)
    seed_width : master seed bits, 32 or 64
    r_index_bits : Box-Muller radius mantissa bits M (2..8): a 16 * 2^M-entry table
    angle_index_bits : Box-Muller angle table index bits (6..12)
    """

    kind: str = "clt"
    lanes: int = 4
    k: int = 12
    z_int: int = 3
    z_frac: int = 13
    state_bits: int = 32
    seed_width: int = 32
    r_index_bits: int = 5
    angle_index_bits: int = 8

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Gaussian baseline kind must be one of {', '.join(KINDS)}, "
                             f"not {self.kind!r}")
        _int("Lane count (lanes)", self.lanes, 1, 16)
        _int("CLT uniforms per value (k)", self.k, 2, 16)
        _int("Integer bits of z (z_int)", self.z_int, 2, 8)
        _int("Fraction bits of z (z_frac)", self.z_frac, 4, 16)
        _int("LFSR state bits (state_bits)", self.state_bits, 3, 64)
        if self.seed_width not in (32, 64) or isinstance(self.seed_width, bool):
            raise ValueError(f"Seed width (seed_width) must be 32 or 64, not {self.seed_width!r}")
        _int("Box-Muller radius mantissa bits (r_index_bits)", self.r_index_bits, 2, 8)
        _int("Box-Muller angle table index bits (angle_index_bits)", self.angle_index_bits, 6,
             12)
        if self.kind == "boxmuller" and self.lanes % 2:
            raise ValueError(f"Box-Muller gives values in pairs: lanes must be even, not "
                             f"{self.lanes}")

    @property
    def z_bits(self):
        return self.z_int + self.z_frac

    @property
    def bank_lanes(self):
        return self.lanes * self.k if self.kind == "clt" else self.lanes

    def bank_config(self):
        from pezo.config import GeneratorConfig
        return GeneratorConfig(lanes=self.bank_lanes, width=UNIFORM_WIDTH,
                               state_bits=self.state_bits, seed_width=self.seed_width,
                               step="leap", reuse="none")

    def name(self):
        what = f"clt{self.k}" if self.kind == "clt" else \
            f"bm-r{self.r_index_bits}-a{self.angle_index_bits}"
        return f"{what}-n{self.lanes}-k{self.state_bits}-Q{self.z_int}.{self.z_frac}"


def clt_constant(k):
    return int(round(math.sqrt(12.0 / k) * (1 << CLT_F)))


def clt_shift(cfg):
    return CLT_F + UNIFORM_WIDTH - cfg.z_frac


def bm_shift(cfg):
    return BM_RF + BM_TF - cfg.z_frac


def bm_tables(cfg):
    """(R, COS, SIN) integer tables of a Box-Muller configuration."""
    M = cfg.r_index_bits
    e = np.repeat(np.arange(16), 1 << M).astype(np.float64)
    m = np.tile(np.arange(1 << M), 16).astype(np.float64)
    seg = 2.0 ** (15 - e)
    u = np.where(e < 15, seg + (m + 0.5) * seg / (1 << M), 1.0) / 65536.0
    r = np.round(np.sqrt(-2.0 * np.log(u)) * (1 << BM_RF))
    b = np.arange(1 << cfg.angle_index_bits)
    ang = 2 * np.pi * (b + 0.5) / (1 << cfg.angle_index_bits)
    c = np.round(np.cos(ang) * (1 << BM_TF))
    s = np.round(np.sin(ang) * (1 << BM_TF))
    return r.astype(np.int64), c.astype(np.int64), s.astype(np.int64)


def bm_radius_index(x, M):
    """Radius table index e * 2^M + m of unsigned 16-bit u1 values ``x`` (see the module doc)."""
    x = np.asarray(x, dtype=np.int64)
    nbits = np.zeros_like(x)
    nz = x > 0
    nbits[nz] = np.floor(np.log2(x[nz])).astype(np.int64) + 1
    e = np.minimum(16 - nbits, 15)
    m = ((x << e) >> (15 - M)) & ((1 << M) - 1)
    return e * (1 << M) + m


def _sat(v, bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(v, lo, hi)


class GaussModel:
    """Resumable golden model: ``next(cycles)`` returns the next (cycles, lanes) int64 values."""

    def __init__(self, cfg, seed):
        if not isinstance(cfg, GaussConfig):
            raise TypeError(f"Configuration must be a GaussConfig, not {cfg!r}")
        self.cfg = cfg
        self.bank = BankModel(cfg.bank_config(), seed)
        if cfg.kind == "boxmuller":
            self.tables = bm_tables(cfg)

    def next(self, cycles):
        cfg = self.cfg
        u = self.bank.next(cycles)
        if cfg.kind == "clt":
            s = u.reshape(len(u), cfg.lanes, cfg.k).sum(axis=2)
            sh = clt_shift(cfg)
            z = (s * clt_constant(cfg.k) + (1 << (sh - 1))) >> sh
            return _sat(z, cfg.z_bits)
        r_t, c_t, s_t = self.tables
        uu = u + (1 << (UNIFORM_WIDTH - 1))
        a = bm_radius_index(uu[:, 0::2], cfg.r_index_bits)
        b = uu[:, 1::2] >> (UNIFORM_WIDTH - cfg.angle_index_bits)
        sh = bm_shift(cfg)
        half = 1 << (sh - 1)
        z = np.empty((len(u), cfg.lanes), dtype=np.int64)
        z[:, 0::2] = (r_t[a] * c_t[b] + half) >> sh
        z[:, 1::2] = (r_t[a] * s_t[b] + half) >> sh
        return _sat(z, cfg.z_bits)


def generate(cfg, seed, count):
    """The first ``count`` values (lane-major within a cycle) after loading ``seed``."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"Count must be a non-negative integer, not {count!r}")
    cycles = -(-int(count) // cfg.lanes)
    return GaussModel(cfg, seed).next(cycles).reshape(-1)[:count]


def stat_checks(z, sigmas=4.0):
    """Statistical checks of samples ``z`` (floats, target N(0, 1)).

    Each check compares a statistic with its normal-distribution value with a tolerance of
    ``sigmas`` standard errors for this sample size: mean (SE 1/sqrt n), variance (SE
    sqrt(2/n)), excess kurtosis (SE sqrt(24/n)), and the mass beyond 3 and 4 sigma (binomial SE
    of 2 Phi(-t)). Returns {name: {value, expected, tolerance, pass}} plus ``passed`` (all)."""
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    if n < 1000:
        raise ValueError(f"Statistical checks need at least 1000 samples, not {n}")
    out = {}

    def check(name, value, expected, se):
        tol = sigmas * se
        out[name] = {"value": float(value), "expected": float(expected), "tolerance": float(tol),
                     "pass": bool(abs(value - expected) <= tol)}

    check("mean", z.mean(), 0.0, 1 / math.sqrt(n))
    check("variance", z.var(), 1.0, math.sqrt(2.0 / n))
    check("excess_kurtosis", sstats.kurtosis(z), 0.0, math.sqrt(24.0 / n))
    for t in (3, 4):
        p = 2 * sstats.norm.sf(t)
        check(f"tail{t}", np.mean(np.abs(z) > t), p, math.sqrt(p * (1 - p) / n))
    out["passed"] = all(v["pass"] for v in out.values())
    return out
