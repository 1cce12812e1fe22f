"""The perturbation MAC: golden model vs exact arithmetic, hardware vs golden, +1/-2/+1 property."""

import random
from fractions import Fraction

import numpy as np
import pytest

from pezo.config import EngineConfig as E, GeneratorConfig as G
from pezo.hw.mac import MacOp, PerturbMAC
from pezo.sim.mac import mac
from tests.simutil import pump, run

CFGS = [E(), E(generator=G(lanes=8, width=8, z_int=2, z_frac=6), depth=64, w_int=2, w_frac=6,
              coef_bits=12, coef_frac=10),
        E(generator=G(lanes=2), depth=64, w_int=8, w_frac=8, coef_bits=16, coef_frac=12,
          stochastic=False),
        # the product shift S beyond the product's width (issue #14 D1): p is 0 (nearest) or
        # 0/-1 dithered (stochastic); the hardware used to fail to elaborate
        E(generator=G(lanes=2), depth=64, coef_bits=4, coef_frac=30),
        E(generator=G(lanes=2), depth=64, coef_bits=8, coef_frac=24, stochastic=False)]


def exact(cfg, w, z, coef, op, r):
    S = cfg.product_shift
    prod = Fraction(int(coef) * int(z), 2 ** S) if S >= 0 else Fraction(int(coef) * int(z) * 2 ** -S)
    if op == "update" and r is not None and S > 0:
        q = (prod + Fraction(int(r) % (1 << S), 2 ** S)).__floor__()
    else:
        q = round(prod)
    v = int(w) - 2 * q if op == "minus2" else int(w) + q
    lo, hi = -(1 << (cfg.w_bits - 1)), (1 << (cfg.w_bits - 1)) - 1
    return min(max(v, lo), hi)


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name())
@pytest.mark.parametrize("op", ["plus", "minus2", "update"])
@pytest.mark.parametrize("stoch", [False, True])
def test_golden_mac_is_exact(cfg, op, stoch):
    rng = np.random.default_rng(5)
    n = 3000
    wl = 1 << (cfg.w_bits - 1)
    zl = 1 << (cfg.generator.z_bits - 1)
    cl = 1 << (cfg.coef_bits - 1)
    w = rng.integers(-wl, wl, n)
    z = rng.integers(-zl, zl, n)
    coef = int(rng.integers(-cl, cl))
    r = rng.integers(0, 1 << 32, n) if stoch else None
    got, _ = mac(cfg, w, z, coef, op, r)
    want = [exact(cfg, a, b, coef, op, None if r is None else c)
            for a, b, c in zip(w, z, r if r is not None else [None] * n)]
    assert got.tolist() == want


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name())
def test_plus_minus2_plus_restores_unless_saturated(cfg):
    """+1, -2, +1 restores every weight whose passes stay in range (w + p and w - p, with p the
    exactly rounded mu*z / 2^S), element by element, also when other weights of the vector
    saturate; each pass's flag is exactly "some element left the range". Weights are drawn near
    the limits often enough that both kinds occur, and mu large enough that p is rarely 0."""
    rng = np.random.default_rng(11)
    lo, hi = -(1 << (cfg.w_bits - 1)), (1 << (cfg.w_bits - 1)) - 1
    S = cfg.product_shift
    restored = saturated = 0
    for trial in range(50):
        n = 512
        zl = 1 << (cfg.generator.z_bits - 1)
        z = rng.integers(-zl, zl, n)
        mu = int(rng.integers(1 << (cfg.coef_bits - 3), 1 << (cfg.coef_bits - 1)))
        p = np.array([round(Fraction(mu * int(v), 2 ** S)) if S >= 0 else mu * int(v) * 2 ** -S
                      for v in z])
        w = rng.integers(lo, hi + 1, n)
        edge = rng.random(n) < 0.2          # a fifth of the weights within |p| of a limit
        w[edge] = np.where(rng.random(edge.sum()) < 0.5, hi, lo) - np.sign(
            rng.integers(-1, 2, edge.sum())) * rng.integers(0, np.abs(p[edge]) + 1)
        w = np.clip(w, lo, hi)
        w1, s1 = mac(cfg, w, z, mu, "plus")
        w2, s2 = mac(cfg, w1, z, mu, "minus2")
        w3, s3 = mac(cfg, w2, z, mu, "plus")
        up, down = w + p, w - p
        safe = (up >= lo) & (up <= hi) & (down >= lo) & (down <= hi)
        assert (w3[safe] == w[safe]).all(), trial
        assert s1 == bool(((up < lo) | (up > hi)).any())
        assert (s1 or s2 or s3) == bool((~safe).any())
        restored += int((safe & (p != 0)).sum())
        saturated += int((~safe).sum())
    if S < cfg.coef_bits + cfg.generator.z_bits:     # else p = 0: nothing moves, all restore
        assert restored > 5000 and saturated > 100, (restored, saturated)


def test_mac_rejects_unknown_op():
    with pytest.raises(ValueError, match=r"^MAC operation must be one of plus, minus2, update, "
                                         r"not 'times'$"):
        mac(E(), [0], [0], 1, "times")


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name())
def test_hardware_mac_matches_golden_with_stalls(cfg):
    """Random stalls on both sides; every result equals the golden MAC, and the sticky flag,
    cleared before each plan, equals the golden "some element saturated" exactly after the plan
    (plans with small coefficients and mid-range weights do not saturate, plans with weights at
    the limits do: both outcomes are checked)."""
    dut = PerturbMAC(cfg)
    rng = random.Random(3)
    m = cfg.lanes
    S = cfg.product_shift
    has_r = cfg.stochastic and S > 0
    wl, zl, cl = 1 << (cfg.w_bits - 1), 1 << (cfg.generator.z_bits - 1), 1 << (cfg.coef_bits - 1)
    plans = []
    for i, op in enumerate(("plus", "minus2", "update", "update", "plus", "minus2")):
        stoch = op == "update" and has_r and i == 3
        edge = i % 2 == 1                       # weights at the limits, large coefficient
        coef = rng.randrange(-cl, cl) if edge else rng.randrange(-4, 5)
        beats = []
        for _ in range(60):
            w = [rng.choice((-wl, wl - 1)) if edge else rng.randrange(-wl // 4, wl // 4)
                 for _ in range(m)]
            z = [rng.randrange(-zl, zl) for _ in range(m)]
            r = [rng.randrange(1 << S) for _ in range(m)] if has_r else None
            beats.append((w, z, r))
        plans.append((op, coef, stoch, beats))
    got = []

    async def tb(ctx):
        for op, coef, stoch, beats in plans:
            ctx.set(dut.op, {"plus": MacOp.PLUS, "minus2": MacOp.MINUS2, "update": MacOp.UPDATE}[op])
            ctx.set(dut.coef, coef)
            ctx.set(dut.stochastic, stoch)
            ctx.set(dut.sat_clear, 1)
            await ctx.tick()
            ctx.set(dut.sat_clear, 0)
            payloads = [dict({"w": w, "z": z}, **({"r": r} if has_r else {}))
                        for w, z, r in beats]
            outs = await pump(ctx, dut.i, dut.o, payloads, m, rng)
            await ctx.tick().repeat(2)          # the flag rises a cycle after the value leaves
            got.append((outs, ctx.get(dut.saturated)))

    run(dut, tb)
    flags = []
    for (op, coef, stoch, beats), (outs, sat) in zip(plans, got):
        w = np.array([b[0] for b in beats])
        z = np.array([b[1] for b in beats])
        r = np.array([b[2] for b in beats]) if stoch else None
        want, flag = mac(cfg, w, z, coef, op, r)
        assert (np.array(outs) == want).all(), op
        assert bool(sat) == bool(flag), (op, coef)
        flags.append(bool(flag))
    pw = cfg.coef_bits + cfg.generator.z_bits
    if cfg.product_shift < pw:      # past the product only the stochastic update can move w
        assert True in flags and False in flags, flags
