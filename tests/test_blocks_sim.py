"""Amaranth-simulator tests of each block against its golden model, with random stalls."""

import random

import numpy as np
import pytest

from pezo.config import GeneratorConfig as G
from pezo.hw.lfsr import UniformBank
from pezo.hw.reuse import Fanout, PoolBuffer
from pezo.hw.scaler import Scaler
from pezo.sim import scaler as smodel
from pezo.sim.bank import bank_stream
from tests.simutil import collect, lanes_of, pump, run

BANK_CONFIGS = [
    G(lanes=1, width=8, state_bits=16),
    G(lanes=4, width=16, state_bits=32),
    G(lanes=8, width=12, state_bits=24),
    G(lanes=4, width=16, state_bits=64, shared=True),
    G(lanes=2, width=8, state_bits=13, shared=True),
    G(lanes=3, width=20, state_bits=17),           # w > k: output bits beyond the state
    G(lanes=2, width=32, state_bits=64, seed_width=64),
    G(lanes=4, width=16, state_bits=71, shared=True, seed_width=64),   # wide trinomial, 64 b/cycle
]


async def load_seed(ctx, dut, seed):
    ctx.set(dut.seed, seed)
    ctx.set(dut.seed_load, 1)
    await ctx.tick()
    ctx.set(dut.seed_load, 0)


@pytest.mark.parametrize("cfg", BANK_CONFIGS, ids=lambda c: c.name())
def test_bank_matches_model_with_stalls_and_reseed(cfg):
    dut = UniformBank(cfg)
    got = {}
    seed = (1 << cfg.seed_width) - 12345

    async def tb(ctx):
        got["reset"] = await collect(ctx, dut.o, 50, cfg.lanes, random.Random(1))
        await load_seed(ctx, dut, seed)
        got["a"] = await collect(ctx, dut.o, 400, cfg.lanes, random.Random(2), ready_prob=0.6)
        await load_seed(ctx, dut, seed)          # reseeding reproduces the stream
        got["b"] = await collect(ctx, dut.o, 100, cfg.lanes, random.Random(3), ready_prob=0.9)

    run(dut, tb, f"bank_{cfg.name()}")
    assert (got["reset"] == bank_stream(cfg, 0, 50)).all()
    ref = bank_stream(cfg, seed, 400)
    assert (got["a"] == ref).all()
    assert (got["b"] == ref[:100]).all()


@pytest.mark.parametrize("cfg", [BANK_CONFIGS[0], BANK_CONFIGS[4]], ids=lambda c: c.name())
def test_bank_seed_load_in_every_cycle_of_a_load(cfg):
    """A seed load arriving in any cycle of a previous load (while the mixer runs, in the cycle a
    block or the last block finishes, in the all-zero fix cycle, in the first cycle of output)
    restarts the load: the stream is the second seed's. The bank's clock enables are not a
    priority chain (timing), so each of these coincidences is a case of its own."""
    dut = UniformBank(cfg)
    first, second = 0x1234_5678 & ((1 << cfg.seed_width) - 1), 0x0BAD_CAFE
    gaps = range(0, dut.latency + 3)
    got = {}

    async def tb(ctx):
        for gap in gaps:
            await load_seed(ctx, dut, first)
            ctx.set(dut.o.ready, 1)              # transfers whenever valid, up to the reload
            for _ in range(gap):
                await ctx.tick()
            ctx.set(dut.o.ready, 0)
            await load_seed(ctx, dut, second)
            got[gap] = await collect(ctx, dut.o, 30, cfg.lanes, random.Random(gap), 0.7)

    run(dut, tb)
    ref = bank_stream(cfg, second, 30)
    for gap in gaps:
        assert (got[gap] == ref).all(), f"second load {gap + 1} cycles after the first"


def test_bank_rotation_is_onthefly_order():
    cfg = G(lanes=4, width=16, reuse="onthefly", out_lanes=8)
    dut = UniformBank(cfg, rotate=True)
    got = {}

    async def tb(ctx):
        got["a"] = await collect(ctx, dut.o, 64, 4, random.Random(5))

    run(dut, tb)
    plain = bank_stream(cfg.replace(reuse="none"), 0, 64)
    expect = np.array([[plain[c, (j + c) % 4] for j in range(4)] for c in range(64)])
    assert (got["a"] == expect).all()


def _xor3(u, a, b, w):
    """u ^ rotl(u, a) ^ rotl(u, b) on w bits, bit by bit from the definition."""
    bits = [(u >> i) & 1 for i in range(w)]
    out = [bits[j] ^ bits[(j - a) % w] ^ bits[(j - b) % w] for j in range(w)]
    v = sum(bit << j for j, bit in enumerate(out))
    return v - (1 << w) if out[w - 1] else v


def test_fanout_maps_lane_j_to_input_j_mod_n():
    cfg = G(lanes=2, reuse="onthefly", out_lanes=6)
    dut = Fanout(cfg)
    # groups 1 and 2 use taps (7, 12) and (8, 10) (pezo.sim.reuse.onthefly_taps for w = 16,
    # docs/streams.md)
    expect = [123, -77] + [_xor3(u, 7, 12, 16) for u in (123, -77)] + \
        [_xor3(u, 8, 10, 16) for u in (123, -77)]

    async def tb(ctx):
        ctx.set(dut.i.payload, [123, -77])
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.o.ready, 1)
        assert lanes_of(ctx.get(dut.o.payload), 6) == expect
        assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.i.ready) == 1
        ctx.set(dut.o.ready, 0)
        assert ctx.get(dut.i.ready) == 0

    run(dut, tb, clock=False)


POOL_CONFIGS = [
    G(lanes=4, reuse="pregen", pool_size=64),
    G(lanes=1, width=8, reuse="pregen", out_lanes=4, pool_size=32),
    G(lanes=2, width=12, reuse="pregen", out_lanes=8, pool_size=256),
    G(lanes=4, reuse="pregen", pool_size=4),     # a single-word pool
]


@pytest.mark.parametrize("cfg", POOL_CONFIGS, ids=lambda c: c.name())
def test_pool_fill_read_rewind(cfg):
    """Pool contents, cyclic read with offset carry-over, rewind replay, second moment."""

    from amaranth.hdl import Module
    from amaranth.lib import wiring

    class Dut(wiring.Component):
        def __init__(self):
            self.bank = UniformBank(cfg)
            self.pool = PoolBuffer(cfg)
            super().__init__({})

        def elaborate(self, platform):
            m = Module()
            m.submodules.bank, m.submodules.pool = self.bank, self.pool
            wiring.connect(m, self.bank.o, self.pool.i)
            m.d.comb += self.bank.seed_load.eq(self.pool.restart)
            return m

    dut = Dut()
    pool = dut.pool
    words = cfg.pool_words
    got = {}

    async def tb(ctx):
        for _ in range(pool.fill_cycles):
            assert ctx.get(pool.filling)
            assert not ctx.get(pool.o.valid)
            await ctx.tick()
        assert not ctx.get(pool.filling)
        got["sumsq"] = ctx.get(pool.sumsq)
        got["first"] = await collect(ctx, pool.o, words + 3, cfg.out_lanes, random.Random(1))
        got["offset"] = ctx.get(pool.offset)
        start = got["offset"]
        got["p1"] = await collect(ctx, pool.o, 2 * words + 1, cfg.out_lanes, random.Random(2))
        ctx.set(pool.offset_value, start)     # rewind: replay the last perturbation
        ctx.set(pool.offset_set, 1)
        await ctx.tick()
        ctx.set(pool.offset_set, 0)
        got["p2"] = await collect(ctx, pool.o, 2 * words + 1, cfg.out_lanes, random.Random(3))
        got["end"] = ctx.get(pool.offset)

    run(dut, tb, f"pool_{cfg.name()}")
    # The PoolBuffer reads the pool as it is (the generator adds the signs): pool word
    # (o + b) mod (N/m), the pool being the bank's first N/n cycles.
    pool_words = bank_stream(cfg.replace(reuse="none", out_lanes=None), 0,
                             cfg.pool_size // cfg.lanes).reshape(words, cfg.out_lanes)

    def read(start, count):
        return pool_words[(start + np.arange(count)) % words]
    assert got["sumsq"] == int((pool_words.astype(object) ** 2).sum())
    assert (got["first"] == read(0, words + 3)).all()
    assert got["offset"] == 3 % words
    p1 = read(3, 2 * words + 1)
    assert (got["p1"] == p1).all() and (got["p2"] == p1).all()
    assert got["end"] == (3 + 2 * words + 1) % words


def scaler_exact(u, digits, cfg):
    """Independent reference with rationals: round-half-even of alpha * u in Q(z_int, z_frac)."""
    from fractions import Fraction
    alpha = sum(Fraction(s, 2 ** t) for s, t in digits)
    out = []
    for x in u:
        v = alpha * int(x) * 2 ** cfg.z_frac
        r = round(v)          # Python's round on Fraction: ties to even
        lo, hi = -(1 << (cfg.z_bits - 1)), (1 << (cfg.z_bits - 1)) - 1
        out.append(min(max(r, lo), hi))
    return np.array(out)


@pytest.mark.parametrize("cfg", [G(), G(width=8, z_int=2, z_frac=6), G(width=12, scale="fixed"),
                                 G(scale_digits=4, scale_shift_bits=4),
                                 G(width=16, z_frac=20, z_int=4)],
                         ids=lambda c: c.name() + f"-Q{c.z_int}.{c.z_frac}")
def test_scaler_model_is_exact_rational_rounding(cfg):
    rng = np.random.default_rng(3)
    lo, hi = -(1 << (cfg.width - 1)), 1 << (cfg.width - 1)
    u = np.concatenate([rng.integers(lo, hi, 3000), [lo, hi - 1, 0, 1, -1]])
    digits = smodel.default_digits(cfg)
    z, _ = smodel.scale_values(u, digits, cfg)
    assert (z == scaler_exact(u, digits, cfg)).all()


async def _stream_through(ctx, dut, ins, rng, p_ready):
    """Send ``ins`` (2 lanes) through a scaler with random gaps on the input (valid 70 % of the
    time) and random backpressure (ready ``p_ready``); returns the outputs transferred."""
    return await pump(ctx, dut.i, dut.o, ins, 2, rng, p_ready=p_ready)


def test_scaler_hardware_runtime_register_and_saturation():
    cfg = G(lanes=2, width=8, z_int=2, z_frac=6)
    dut = Scaler(cfg)
    rng = random.Random(4)
    big = [(1, smodel.t_min(cfg)), (1, smodel.t_min(cfg))]   # alpha ~ 4 * alpha0: saturates
    plans = [smodel.default_digits(cfg), big, [(-1, smodel.t_min(cfg) + 3)], []]
    got = []

    async def tb(ctx):
        for digits in plans:
            ctx.set(dut.sat_clear, 1)
            await ctx.tick()
            ctx.set(dut.sat_clear, 0)
            ctx.set(dut.scale, smodel.encode_scale(digits, cfg))
            ins = [[rng.randrange(-128, 128) for _ in range(2)] for _ in range(100)]
            outs = await _stream_through(ctx, dut, ins, rng, 0.7)
            got.append((ins, outs, ctx.get(dut.saturated)))

    run(dut, tb)
    for digits, (ins, outs, sat) in zip(plans, got):
        z, flag = smodel.scale_values(np.array(ins), digits, cfg)
        bad = np.nonzero((np.array(outs) != z).any(axis=1))[0]
        assert len(bad) == 0, (digits, bad[:5], np.array(outs)[bad[:3]], z[bad[:3]])
        assert sat == flag
    assert got[1][2] == 1 and got[0][2] == 0


@pytest.mark.parametrize("out_skid,in_skid", [(False, True), (True, True), (False, False)])
def test_scaler_hardware_fixed_scale_saturation(out_skid, in_skid):
    """Fixed scale, with and without the engine's output skid slot, and without the input one
    (the lean engine): values and the sticky flag match the model under random stalls on both
    sides, for a scale that saturates and one that does not."""
    cfg = G(lanes=2, width=8, z_int=2, z_frac=6, scale="fixed")
    big = [(1, smodel.t_min(cfg)), (1, smodel.t_min(cfg))]   # alpha ~ 4 * alpha0: saturates
    for digits in (smodel.default_digits(cfg), big):
        dut = Scaler(cfg, digits=digits, out_skid=out_skid, in_skid=in_skid)
        rng = random.Random(5)
        ins = [[rng.randrange(-128, 128) for _ in range(2)] for _ in range(300)]
        got = {}

        async def tb(ctx):
            outs = await _stream_through(ctx, dut, ins, rng, 0.6)
            await ctx.tick()
            got["outs"], got["sat"] = outs, ctx.get(dut.saturated)

        run(dut, tb)
        z, flag = smodel.scale_values(np.array(ins), digits, cfg)
        assert (np.array(got["outs"]) == z).all()
        assert got["sat"] == flag == (digits is big)


@pytest.mark.parametrize("scale", ["runtime", "fixed"])
@pytest.mark.parametrize("width", [4, 8, 12, 16, 24, 32])
def test_default_scale_gives_unit_variance_within_half_a_percent(width, scale):
    """alpha^2 Var(u) = 1 within 0.5 % for uniform u (Var = (4^w - 1) / 12, exact), with each
    scale mode's default digit count."""
    cfg = G(width=width, scale=scale)
    a = smodel.realised_alpha(smodel.default_digits(cfg))
    assert abs(a * a * ((4 ** width - 1) / 12) - 1) < 0.005


def test_csd_digits_and_register_round_trip():
    cfg = G(scale_digits=3, scale_shift_bits=3)
    d = smodel.default_digits(cfg)
    assert len(d) <= cfg.scale_digits
    rep = smodel.alpha_report(cfg)
    # The spec's scale: unit variance for a uniform w-bit u, Var(u) = (4^w - 1) / 12 (exact).
    target = (12 / (4 ** cfg.width - 1)) ** 0.5
    alpha = sum(s * 2.0 ** -t for s, t in d)
    assert abs(alpha / target - 1) < 0.01 and rep["alpha"] == pytest.approx(alpha, rel=1e-12)
    assert rep["rel_error"] == pytest.approx(alpha / target - 1, abs=1e-4)
    assert len({t for _, t in d}) == len(d) and all(s in (1, -1) for s, _ in d)
    assert smodel.decode_scale(smodel.encode_scale(d, cfg), cfg) == d
    fine = G(scale="fixed", scale_digits=6)
    assert abs(smodel.alpha_report(fine)["rel_error"]) < 1e-4
    with pytest.raises(ValueError, match=r"^Scale digit exponent must be in 13\.\.20, not 21$"):
        smodel.encode_scale([(1, 21)], cfg)
    with pytest.raises(ValueError, match=r"^Scale alpha must be a positive finite number, not -1$"):
        smodel.csd_digits(-1, cfg)
    with pytest.raises(ValueError, match=r"^Only a 'runtime' scale has a scale register$"):
        smodel.encode_scale(d, fine)


def test_scale_register_errors():
    cfg = G(scale_digits=3, scale_shift_bits=3)
    with pytest.raises(ValueError, match=r"^At most 3 scale digits fit the register, not 4$"):
        smodel.encode_scale([(1, 14)] * 4, cfg)
    with pytest.raises(ValueError, match=r"^Scale digit sign must be \+1 or -1, not 2$"):
        smodel.encode_scale([(2, 14)], cfg)
    with pytest.raises(ValueError, match=r"^Scale alpha 1\.0 is above what the runtime scale "
                                         r"window can represent \(at most 0\.000244140625 for "
                                         r"exponents 13\.\.20\)$"):
        smodel.csd_digits(1.0, cfg)
    with pytest.raises(ValueError, match=r"^Pool second moment must be positive, not 0$"):
        smodel.pool_alpha(0, 16)


def test_bank_replaces_an_all_zero_seed_slice():
    """k = 4, two lanes from one 32-bit mixer block: seeds whose lane slice is all zero (found
    from the mixer's output directly) start that lane from 1 in hardware as in the model, and
    the lane keeps producing numbers (a zero LFSR state would give 0 forever)."""
    import numpy as np

    from pezo.sim.seeding import mix_blocks
    cfg = G(lanes=2, width=4, state_bits=4, scale="fixed", z_int=2, z_frac=2)
    blocks = mix_blocks(np.arange(200, dtype=np.uint64), 32, 1)[:, 0]
    seed = next(s for s, b in enumerate(blocks) if int(b) & 0xF0 == 0)   # lane 1 slice is 0
    dut = UniformBank(cfg)
    got = {}

    async def tb(ctx):
        await load_seed(ctx, dut, seed)
        got["a"] = await collect(ctx, dut.o, 40, cfg.lanes, random.Random(4))

    run(dut, tb)
    assert (got["a"] == bank_stream(cfg, seed, 40)).all()
    assert (got["a"][:, 1] != 0).any() and (got["a"][:, 1] != got["a"][0, 1]).any()
