# amaranth: UnusedElaboratable=no
# (some tests build components only to read properties or check constructor errors)
"""The whole generator: Amaranth simulation vs golden model, and the stream's properties."""

import random

import numpy as np
import pytest
from scipy import stats

from pezo.config import GeneratorConfig as G
from pezo.hw.generator import PerturbationGenerator
from pezo.sim import scaler as smodel
from pezo.sim.generator import GeneratorModel, generate
from tests.simutil import collect, run


CONFIGS = [
    G(),
    G(lanes=1, width=8, z_int=2, z_frac=6),
    G(lanes=8, width=12, scale="fixed"),
    G(lanes=4, width=16, state_bits=64, shared=True),
    G(lanes=2, reuse="onthefly", out_lanes=8),
    G(lanes=1, width=12, reuse="onthefly", out_lanes=4),
    G(lanes=4, reuse="pregen", pool_size=64),
    G(lanes=1, width=8, reuse="pregen", out_lanes=8, pool_size=256, z_int=2, z_frac=6),
]


async def strobe(ctx, port, value=None, port_value=None):
    if value is not None:
        ctx.set(value, port_value)
    ctx.set(port, 1)
    await ctx.tick()
    ctx.set(port, 0)


# The engine's variant: an output skid slot in the scaler (fixed scale only).
SKID_CONFIGS = [
    G(lanes=8, width=12, scale="fixed"),
    G(lanes=4, reuse="pregen", pool_size=64, scale="fixed"),
    G(lanes=2, reuse="onthefly", out_lanes=8, scale="fixed"),
]


SKIDS = {"": dict(), "skid": dict(out_skid=True), "lean": dict(in_skid=False)}


@pytest.mark.parametrize("cfg,skids", [(c, "") for c in CONFIGS] +
                         [(c, k) for c in SKID_CONFIGS for k in ("skid", "lean")],
                         ids=lambda v: v.name() if isinstance(v, G) else v)
def test_generator_matches_model(cfg, skids):
    """Bit-exact under random stalls; ``skid``: the scaler's output skid slot, ``lean``: no
    input skid slot (the training design's engine)."""
    dut = PerturbationGenerator(cfg, **SKIDS[skids])
    seed = 0xC0FFEE
    got = {}

    async def tb(ctx):
        got["reset"] = await collect(ctx, dut.o, 40, cfg.out_lanes, random.Random(1))
        await strobe(ctx, dut.seed_load, dut.seed, seed)
        got["a"] = await collect(ctx, dut.o, 500, cfg.out_lanes, random.Random(2), 0.6)
        if cfg.reuse == "pregen":
            got["sumsq"] = ctx.get(dut.pool_sumsq)
            got["off"] = ctx.get(dut.offset)
            got["b"] = await collect(ctx, dut.o, 70, cfg.out_lanes, random.Random(3), 0.5)
            ctx.set(dut.offset_key, 0xA5A5F00D)
            for name, rng in (("c", 4), ("d", 5)):      # rewind with a query key, twice
                await strobe(ctx, dut.offset_set, dut.offset_value, got["off"])
                got[name] = await collect(ctx, dut.o, 70, cfg.out_lanes, random.Random(rng), 0.8)
        else:
            await strobe(ctx, dut.seed_load, dut.seed, seed)                 # reseed
            got["c"] = await collect(ctx, dut.o, 70, cfg.out_lanes, random.Random(4), 0.8)
        got["sat"] = ctx.get(dut.saturated)

    run(dut, tb, f"gen_{cfg.name()}")
    assert (got["reset"] == GeneratorModel(cfg, 0).next(40)).all()
    model = GeneratorModel(cfg, seed)
    assert (got["a"] == model.next(500)).all()
    if cfg.reuse == "pregen":
        assert got["sumsq"] == model.pool_sumsq
        assert got["off"] == model.offset
        assert (got["b"] == model.next(70)).all()
        model.set_offset(got["off"], 0xA5A5F00D)
        c = model.next(70)
        assert (got["c"] == c).all() and (got["d"] == c).all()
    else:
        assert (got["c"] == GeneratorModel(cfg, seed).next(70)).all()
    assert got["sat"] == 0 and not model.saturated


def test_runtime_scale_register_and_pool_correction():
    """The host loads the pool-corrected alpha; the stream follows the new digits."""
    cfg = G(lanes=2, reuse="pregen", pool_size=32, out_lanes=4)
    dut = PerturbationGenerator(cfg)
    got = {}

    async def tb(ctx):
        for _ in range(dut.fill_cycles + 1):
            await ctx.tick()
        got["sumsq"] = ctx.get(dut.pool_sumsq)
        digits = smodel.csd_digits(smodel.pool_alpha(got["sumsq"], cfg.pool_size), cfg)
        got["digits"] = digits
        assert ctx.get(dut.scale) == smodel.encode_scale(smodel.default_digits(cfg), cfg)
        await strobe(ctx, dut.scale_load, dut.scale_value, smodel.encode_scale(digits, cfg))
        await strobe(ctx, dut.offset_set, dut.offset_value, 0)
        assert ctx.get(dut.scale) == smodel.encode_scale(digits, cfg)
        got["z"] = await collect(ctx, dut.o, 16, 4, random.Random(1))

    run(dut, tb)
    model = GeneratorModel(cfg, 0)
    assert got["sumsq"] == model.pool_sumsq
    model.set_digits(got["digits"])
    model.set_offset(0)
    assert (got["z"] == model.next(16)).all()


def test_reseed_reproduces_and_seeds_differ():
    cfg = G(lanes=8)
    a = generate(cfg, 42, 100_000)
    assert (a == generate(cfg, 42, 100_000)).all()
    assert (a != generate(cfg, 43, 100_000)).mean() > 0.99
    m = GeneratorModel(cfg, 42)
    parts = np.concatenate([m.next(1).reshape(-1), m.next(999).reshape(-1), m.next(11_500).reshape(-1)])
    assert (parts == a[:len(parts)]).all()


def test_pregen_replay_follows_offset_and_key():
    """A pregen query is the pool read from word o with signs from the key's stream: replaying
    (o, key) gives the same z, whatever was read in between; another key flips about half of
    the signs of the same pool numbers; numbers reused within a query (d > N) get fresh signs."""
    cfg = G(lanes=4, reuse="pregen", pool_size=64)
    m = GeneratorModel(cfg, 7)
    pool = m.reuse.pool.reshape(-1)
    u = []
    for key in (3, 3, 4):
        m.set_offset(5, key)
        m.next(11)
        m.set_offset(5, key)
        u.append(m.next_uniform(48).reshape(-1))     # 192 numbers: 3 rounds of the pool
    assert (u[0] == u[1]).all()
    expect = np.resize(np.roll(pool, -5 * 4), 192)            # the pool read cyclically from o
    for v in u:     # each number is the pool's, or its one's complement (-P - 1)
        assert ((v == expect) | (v == -expect - 1)).all()
    flipped = u[0] != expect
    assert 0.3 < flipped.mean() < 0.7 and 0.3 < (u[0] != u[2]).mean() < 0.7
    rounds = flipped.reshape(3, 64)
    assert (rounds[0] != rounds[1]).any() and (rounds[1] != rounds[2]).any()


@pytest.mark.parametrize("cfg", [G(lanes=8), G(lanes=1, width=12, state_bits=24),
                                 G(lanes=4, shared=True, state_bits=64),
                                 G(lanes=2, reuse="onthefly", out_lanes=8, width=8, z_int=2,
                                   z_frac=6)],
                         ids=lambda c: c.name())
def test_scaled_output_is_unit_variance_and_uniform(cfg):
    n = 200_000
    z = generate(cfg, 2024, n) / 2.0 ** cfg.z_frac
    ratio = smodel.alpha_report(cfg)["alpha"] / cfg.alpha0     # realised vs ideal alpha
    # E[z] over all 2^w inputs is not 0 (u has mean -1/2: -0.0068 at w = 8, 3 sigma of the noise
    # of 200,000 values), so the mean is compared with it.
    u = np.arange(-(1 << (cfg.width - 1)), 1 << (cfg.width - 1))
    ez = smodel.scale_values(u, smodel.default_digits(cfg), cfg)[0].mean() / 2.0 ** cfg.z_frac
    assert abs(z.mean() - ez) < 5 * ratio / np.sqrt(n)
    # Var of alpha*u for u uniform on w-bit integers: ratio^2 * (1 - 4^-(w-1)) (+ rounding noise).
    var_expected = ratio ** 2 * (1 - 4.0 ** -(cfg.width - 1))
    assert abs(z.var() - var_expected) < 5 * 0.8 / np.sqrt(n) + 2 ** -cfg.z_frac
    ks = stats.kstest(z[:10_000], stats.uniform(loc=-np.sqrt(3), scale=2 * np.sqrt(3)).cdf)
    assert ks.pvalue > 1e-3, ks


def test_pregen_pool_has_unit_second_moment_after_correction():
    cfg = G(lanes=4, reuse="pregen", pool_size=1024, scale="fixed", scale_digits=8)
    m = GeneratorModel(cfg, 99)
    alpha = smodel.pool_alpha(m.pool_sumsq, cfg.pool_size)
    digits = smodel.csd_digits(alpha, cfg)
    m.set_digits(digits)
    z = m.next(cfg.pool_words).reshape(-1) / 2.0 ** cfg.z_frac
    assert abs(np.mean(z * z) - 1) < 2e-3   # exact up to CSD and output rounding
    # ... while the uncorrected pool is off by its own sampling error.
    m.set_digits(smodel.default_digits(cfg))
    z0 = m.next(cfg.pool_words).reshape(-1) / 2.0 ** cfg.z_frac
    assert abs(np.mean(z0 * z0) - 1) > abs(np.mean(z * z) - 1)


def test_generate_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"^Stage must be one of bank, uniform, z, not 'q'$"):
        generate(G(), 1, 10, stage="q")
    with pytest.raises(ValueError, match=r"^Count must be a non-negative integer, not -1$"):
        generate(G(), 1, -1)
    with pytest.raises(ValueError, match=r"^Pool offset must be a word index in 0\.\.255, not 256$"):
        GeneratorModel(G(reuse="pregen"), 1).set_offset(256)


@pytest.mark.parametrize("cfg,skids", [
    (G(), ""), (G(reuse="onthefly", lanes=2, out_lanes=4), ""),
    (G(reuse="pregen", pool_size=64), ""), (G(reuse="pregen", pool_size=64, scale="fixed"), "skid"),
    (G(lanes=2, scale="fixed"), "lean"),
], ids=lambda v: v.name() if isinstance(v, G) else v)
def test_latency_property_matches_simulation(cfg, skids):
    """Cycles from a seed load to the first valid beat are ``latency`` (+ ``fill_cycles`` for
    pregen), with ``o.ready`` low all the time; the skid slots add none."""
    dut = PerturbationGenerator(cfg, **SKIDS[skids])
    seen = []

    async def tb(ctx):
        await ctx.tick().repeat(dut.fill_cycles + 10)
        ctx.set(dut.seed, 1234)
        ctx.set(dut.seed_load, 1)
        await ctx.tick()
        ctx.set(dut.seed_load, 0)
        for cycle in range(1, dut.latency + dut.fill_cycles + 20):
            if ctx.get(dut.o.valid):
                seen.append(cycle)
                return
            await ctx.tick()

    run(dut, tb)
    assert seen == [dut.latency + dut.fill_cycles]


def test_sumsq_option():
    cfg = G(reuse="pregen", pool_size=64)
    assert hasattr(PerturbationGenerator(cfg), "pool_sumsq")
    assert not hasattr(PerturbationGenerator(cfg, sumsq=False), "pool_sumsq")
    with pytest.raises(TypeError, match=r"^sumsq must be a bool, not 1$"):
        PerturbationGenerator(cfg, sumsq=1)
    with pytest.raises(TypeError, match=r"^out_skid must be a bool, not 'yes'$"):
        PerturbationGenerator(cfg, out_skid="yes")
    with pytest.raises(TypeError, match=r"^in_skid must be a bool, not 0$"):
        PerturbationGenerator(cfg, in_skid=0)
