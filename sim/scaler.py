"""Golden model and definition of the adaptive scaler: uniform integer u -> fixed-point z.

Definition (the hardware in :mod:`pezo.hw.scaler` computes exactly this):

* alpha is a sum of at most K signed powers of two (canonical signed digits), digit i being
  ``s_i * 2^-t_i`` with s_i in {+1, -1}. The default is the greedy CSD approximation of
  alpha0 = sqrt(3) / 2^(w-1), which makes z = alpha0 * u unit-variance for uniform u.
* ``runtime`` scale: every t_i lies in the window t_min .. t_min + 2^E - 1 (E = scale_shift_bits,
  t_min = round(-log2 alpha0) - 1, so alpha may grow to about twice alpha0), and the digits are a
  run-time register. ``fixed`` scale: the digits are constants, any exponent.
* With T the largest exponent the hardware can use (t_min + 2^E - 1 at run time, max t_i when
  fixed): acc = sum_i s_i * u * 2^(T - t_i) (exact), z = saturate(round_half_even(acc / 2^(T - f)))
  in Qz_int.z_frac (f = z_frac); a saturation raises the sticky flag.

Scale register layout (runtime): digit i in bits [i*(E+2), (i+1)*(E+2)): bit 0 ``en``, bit 1
``neg``, bits 2.. ``shift`` with t_i = t_min + shift. A digit with en = 0 contributes nothing.

pregen correction: a pool of N numbers with second moment S = sum u^2 gets alpha = sqrt(N / S), so
the scaled pool has mean square exactly 1 up to the CSD quantisation that :func:`realised_alpha`
reports (``pool_alpha``).
"""

import math

import numpy as np

from pezo.fixed import rshift_round_even, saturate

__all__ = ["t_min", "top_exponent", "csd_digits", "default_digits", "realised_alpha",
           "encode_scale", "scale_register_bits",
           "decode_scale", "scale_values", "pool_alpha", "alpha_report", "mean_square"]


def t_min(cfg) -> int:
    return round(-math.log2(cfg.alpha0)) - 1


def _window(cfg):
    if cfg.scale == "runtime":
        lo = t_min(cfg)
        return range(lo, lo + (1 << cfg.scale_shift_bits))
    lo = t_min(cfg)
    return range(lo, lo + 31)


def csd_digits(alpha: float, cfg) -> list:
    """Greedy signed-power-of-two approximation of ``alpha`` with at most K digits in the window.

    Returns a list of (sign, exponent) pairs: alpha ~= sum sign * 2^-exponent."""
    if not alpha > 0 or not math.isfinite(alpha):
        raise ValueError(f"Scale alpha must be a positive finite number, not {alpha!r}")
    window = _window(cfg)
    top = 2.0 ** -window[0] * 2
    if alpha > top:
        raise ValueError(f"Scale alpha {alpha!r} is above what the {cfg.scale} scale window can "
                         f"represent (at most {top!r} for exponents {window[0]}..{window[-1]})")
    digits, r = [], alpha
    for _ in range(cfg.scale_digits):
        best = min(((s, t) for t in window for s in (1, -1)),
                   key=lambda d: abs(r - d[0] * 2.0 ** -d[1]))
        nr = r - best[0] * 2.0 ** -best[1]
        if abs(nr) >= abs(r):
            break
        digits.append(best)
        r = nr
        if r == 0:
            break
    return digits


def default_digits(cfg) -> list:
    return csd_digits(cfg.alpha0, cfg)


def realised_alpha(digits) -> float:
    return float(sum(s * 2.0 ** -t for s, t in digits))


def top_exponent(cfg, digits=None) -> int:
    if cfg.scale == "runtime":
        return t_min(cfg) + (1 << cfg.scale_shift_bits) - 1
    return max(t for _, t in (digits if digits is not None else default_digits(cfg)))


def scale_register_bits(cfg) -> int:
    """Bits of the runtime scale register: K digits of (en, neg, shift)."""
    return cfg.scale_digits * (cfg.scale_shift_bits + 2)


def encode_scale(digits, cfg) -> int:
    """Runtime scale register value for ``digits``."""
    if cfg.scale != "runtime":
        raise ValueError("Only a 'runtime' scale has a scale register")
    if len(digits) > cfg.scale_digits:
        raise ValueError(f"At most {cfg.scale_digits} scale digits fit the register, not {len(digits)}")
    lo, e = t_min(cfg), cfg.scale_shift_bits
    value = 0
    for i, (s, t) in enumerate(digits):
        if s not in (1, -1):
            raise ValueError(f"Scale digit sign must be +1 or -1, not {s!r}")
        if not lo <= t < lo + (1 << e):
            raise ValueError(f"Scale digit exponent must be in {lo}..{lo + (1 << e) - 1}, not {t!r}")
        field = 1 | ((s < 0) << 1) | ((t - lo) << 2)
        value |= field << (i * (e + 2))
    return value


def decode_scale(value: int, cfg) -> list:
    lo, e = t_min(cfg), cfg.scale_shift_bits
    digits = []
    for i in range(cfg.scale_digits):
        field = (value >> (i * (e + 2))) & ((1 << (e + 2)) - 1)
        if field & 1:
            digits.append((-1 if field & 2 else 1, lo + (field >> 2)))
    return digits


def scale_values(u, digits, cfg):
    """z integers (Qz_int.z_frac) for uniform integers ``u``; returns (z, saturated)."""
    T = top_exponent(cfg, digits)
    # The digits' sum is exact integer arithmetic, so it equals one product with the integer
    # alpha * 2^T (the hardware builds it from shifts and adds instead).
    c = sum(s << (T - t) for s, t in digits)
    narrow = cfg.width + max(abs(c), 1).bit_length() + 1 <= 31    # int32 is exact: faster
    u = np.asarray(u)
    if narrow:      # the conversion to int32 fused into the product (same values as astype)
        acc = np.multiply(u, np.int32(c), dtype=np.int32, casting="unsafe")
    else:
        acc = u.astype(np.int64, copy=False) * c
    z = rshift_round_even(acc, T - cfg.z_frac)
    return saturate(z, cfg.z_bits)


def pool_alpha(sumsq: int, pool_size: int) -> float:
    """alpha giving the pool mean square 1: sqrt(N / sum u^2)."""
    if sumsq <= 0:
        raise ValueError(f"Pool second moment must be positive, not {sumsq!r}")
    return math.sqrt(pool_size / sumsq)


def mean_square(u, digits, cfg) -> float:
    """The mean of z^2 (z in real units, z_int / 2^z_frac) over the uniform integers ``u``, the
    squares summed exactly in integers."""
    z, _ = scale_values(np.asarray(u).reshape(-1), digits, cfg)
    z = z.astype(np.int64)
    exact = 2 * cfg.z_bits + max(z.size, 1).bit_length() < 63     # int64 cannot overflow
    total = int(np.sum(z * z)) if exact else sum(int(v) * int(v) for v in z)
    return total / (z.size * 4.0 ** cfg.z_frac)


def alpha_report(cfg, digits=None) -> dict:
    digits = default_digits(cfg) if digits is None else digits
    a = realised_alpha(digits)
    return {"alpha0": cfg.alpha0, "alpha": a, "rel_error": a / cfg.alpha0 - 1,
            "digits": [f"{'+' if s > 0 else '-'}2^-{t}" for s, t in digits]}
