"""Golden model of the fixed-point perturbation MAC (bit-exact with :mod:`pezo.hw.mac`).

Formats: weights Qw_int.w_frac (b bits), perturbations z Qz_int.z_frac, coefficients (mu, c) signed
``coef_bits`` integers scaled by 2^-coef_frac. With S = coef_frac + z_frac - w_frac, the product of
a coefficient and z in weight LSBs is coef*z / 2^S.

* ``plus`` / ``minus2`` (perturbation passes): p = round_half_even(mu*z / 2^S); the weight becomes
  saturate(w + p) or saturate(w - 2p) (the -2 is a shift of the same p, never a second rounding),
  so +1, -2, +1 restores every weight bit-exactly whenever nothing saturated.
* ``update``: u = round(c*z / 2^S) with c = -eta*g, half to even, or stochastic (floor of
  (c*z + r) / 2^S with r the low S bits of the rounding bank's number); w becomes saturate(w + u).
* Any saturation sets the sticky flag; results never wrap.
"""

import numpy as np

from pezo.config import GeneratorConfig
from pezo.fixed import rshift_round_even, rshift_round_stochastic, saturate

__all__ = ["OPS", "mac", "addend", "rounding_config"]

OPS = ("plus", "minus2", "update")


def rounding_config(cfg):
    """The LFSR bank that supplies stochastic-rounding bits: m lanes of max(S, 2) bits."""
    g = cfg.generator
    return GeneratorConfig(lanes=g.out_lanes, width=min(max(cfg.product_shift, 2), 32),
                           state_bits=32 if g.out_lanes <= 64 else 64, seed_width=g.seed_width)


def addend(cfg, z, coef, r=None):
    """The rounded product coef*z / 2^S in weight LSBs (int64): p of a perturbation pass (r None,
    half to even) or u of the update (stochastic with rounding-bank numbers ``r``, whose low S
    bits are used; half to even without)."""
    prod = np.asarray(z, dtype=np.int64) * int(coef)
    S = cfg.product_shift
    if r is not None and S > 0:
        return rshift_round_stochastic(prod, S, np.asarray(r, dtype=np.int64) & ((1 << S) - 1))
    return rshift_round_even(prod, S)


def mac(cfg, w, z, coef, op, r=None):
    """Apply one MAC operation to weights ``w`` with perturbations ``z`` (same shape).

    Returns (new weights, saturated). ``r``: rounding-bank numbers (update with stochastic
    rounding only)."""
    if op not in OPS:
        raise ValueError(f"MAC operation must be one of {', '.join(OPS)}, not {op!r}")
    w = np.asarray(w, dtype=np.int64)
    q = addend(cfg, z, coef, r if op == "update" else None)
    if op == "minus2":
        q = q << 1
        new = w - q
    else:
        new = w + q
    return saturate(new, cfg.w_bits)
