"""Fixed-point arithmetic shared by the golden models and the hardware.

One place owns the rounding and saturation rules, so the NumPy models (:mod:`pezo.sim`) and the
Amaranth hardware (:mod:`pezo.hw`) cannot drift apart:

* ``Q(i, f)``: signed two's complement, i integer bits *including* the sign, f fraction bits,
  i + f bits in all (Q4.12 is 16 bits). The integer ``v`` stands for ``v / 2^f``.
* Rounding is round-half-to-even on a right shift (deterministic, unbiased).
* Saturation clamps to [-2^(b-1), 2^(b-1)-1] and reports that it happened (never wraps).
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Mux, Value
import numpy as np

__all__ = ["Q", "rshift_round_even", "rshift_round_stochastic", "saturate", "parse_q", "to_fixed",
           "from_fixed"]


@dataclass(frozen=True)
class Q:
    """A signed fixed-point format with ``int_bits`` (sign included) and ``frac_bits``."""
    int_bits: int
    frac_bits: int

    def __post_init__(self):
        for name in ("int_bits", "frac_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"Q format {name} must be an integer, not {v!r}")
        if self.int_bits < 1:
            raise ValueError(f"Q format int_bits must be at least 1 (the sign), not {self.int_bits!r}")
        if self.frac_bits < 0:
            raise ValueError(f"Q format frac_bits must be >= 0, not {self.frac_bits!r}")

    @property
    def bits(self) -> int:
        return self.int_bits + self.frac_bits

    @property
    def min_int(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max_int(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def __str__(self):
        return f"Q{self.int_bits}.{self.frac_bits}"


def parse_q(text: str) -> Q:
    """``"Q4.12"`` -> ``Q(4, 12)``."""
    t = str(text).strip()
    if t[:1] in "Qq" and "." in t:
        a, b = t[1:].split(".", 1)
        if a.isdigit() and b.isdigit():
            return Q(int(a), int(b))
    raise ValueError(f"Fixed-point format must look like 'Q4.12', not {text!r}")


def rshift_round_even(x, shift: int):
    """round(x / 2^shift) with ties to even, for int arrays or Python ints; shift <= 0 is an exact
    left shift."""
    if shift <= 0:
        return x << (-shift)
    if isinstance(x, np.ndarray):
        # x = q*2^s + r: adding 2^(s-1) - 1 + (q & 1) carries into q exactly when r > half, or
        # r == half and q is odd.
        t = (x >> shift) & 1
        t += (1 << (shift - 1)) - 1
        t += x
        t >>= shift
        return t
    q, r = x >> shift, x & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    return q + (1 if r > half or (r == half and q & 1) else 0)


def rshift_round_stochastic(x, shift: int, r):
    """floor((x + r) / 2^shift) for random r uniform in [0, 2^shift): rounds up with probability
    equal to the discarded fraction (unbiased). ``r`` supplies the random bits."""
    if shift <= 0:
        return x << (-shift)
    return (x + r) >> shift


def to_fixed(x, q: Q):
    """Float(s) -> Q integers, round half to even, saturating; returns (ints, any_saturated)."""
    v = np.rint(np.asarray(x, dtype=np.float64) * 2.0 ** q.frac_bits)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"Cannot convert non-finite values to {q}")
    sat = bool(np.any((v < q.min_int) | (v > q.max_int)))
    return np.clip(v, q.min_int, q.max_int).astype(np.int64), sat


def from_fixed(v, q: Q):
    """Q integers -> float64."""
    return np.asarray(v, dtype=np.float64) / 2.0 ** q.frac_bits


def saturate(x, bits: int):
    """Clamp to the signed ``bits``-bit range; returns (clamped, any_clamped)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if isinstance(x, np.ndarray):
        if x.size == 0 or (x.min() >= lo and x.max() <= hi):
            return x, False
        return np.clip(x, lo, hi), True
    return min(max(x, lo), hi), not lo <= x <= hi


# Hardware forms of the same rules (Amaranth expressions; used by pezo.hw) -------------------------

def hw_rshift_round_even(value, shift: int):
    """Amaranth expression: round(value / 2^shift), ties to even (``value`` signed)."""
    if shift <= 0:
        return value << (-shift)
    q = value >> shift
    low = value.as_unsigned()[:shift]
    guard = low[shift - 1]
    sticky = low[:shift - 1].any() if shift > 1 else 0
    inc = guard & (sticky | q.as_unsigned()[0])
    return q + Cat(inc, 0).as_unsigned()


def hw_saturate(value, bits: int):
    """Amaranth expressions (clamped value of ``bits`` bits, overflow flag) for a signed value."""
    value = Value.cast(value)
    if len(value) <= bits:
        return value.as_signed(), 0
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    # The value fits iff bits bits-1 .. top are all equal (no comparator carry chains).
    top = value[bits - 1:]
    fits = top.all() | ~top.any()
    sign = value[-1]
    over_hi = ~sign & ~fits
    over_lo = sign & ~fits
    clamped = Mux(fits, value[:bits], Mux(sign, lo, hi))
    return clamped.as_signed()[:bits].as_signed(), over_hi | over_lo
