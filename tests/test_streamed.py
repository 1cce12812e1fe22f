"""Streamed weights (ZO2-style, ``weights="stream"``): the STREAM command against a scalar
model written from its definition, the hardware against the golden model under random stalls
and backpressure, and streamed training bit-identical to resident training."""

from fractions import Fraction
import re

from amaranth.sim import Simulator
import numpy as np
import pytest

from pezo.config import EngineConfig as E, GeneratorConfig as G
from pezo.host.engine import AmaranthTransport, EngineClient, EngineError, GoldenTransport
from pezo.hw.engine import PerturbEngine, command_bits
from pezo.sim.engine import EngineModel, Err, Op, encode_signed
from pezo.sim.generator import generate
from pezo.sim.mac import rounding_config
from pezo.sim.bank import BankModel
from pezo.sim.seeding import domain_tweak

CFGS = [
    E(generator=G(lanes=4), depth=64, weights="stream"),
    E(generator=G(lanes=2, reuse="onthefly", scale="runtime"), depth=32, w_int=2, w_frac=6,
      coef_frac=12, weights="stream"),
    E(generator=G(lanes=2), depth=16, stochastic=False, coef_bits=12, coef_frac=16,
      weights="stream"),
]


def _rand_rows(cfg, rng, count, spread=None):
    b = cfg.w_bits
    hi = (1 << (b - 1)) if spread is None else spread
    return rng.integers(-hi, hi, size=(count, cfg.lanes)).clip(-(1 << (b - 1)), (1 << (b - 1)) - 1)


# --- the definition, one weight at a time, in exact arithmetic --------------------------------

def _round_even(x: Fraction) -> int:
    f = x.numerator // x.denominator
    rem = x - f
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and f % 2):
        return f + 1
    return f


def _sat(v, b):
    return max(-(1 << (b - 1)), min((1 << (b - 1)) - 1, v))


def test_stream_follows_its_definition():
    """Per word: w0 = sat(w + round_even(c zu / 2^S)), w1 = sat(w0 + p), w2 = sat(w1 - 2p),
    w3 = sat(w2 + p), p = round_even(mu z / 2^S); zu from the seed of the SEED before UPDATE, z
    from the current seed (pezo.sim.generator.generate, tested on its own): exact fractions,
    not the MAC model."""
    cfg = E(generator=G(lanes=4), depth=64, weights="stream", stochastic=False)
    rng = np.random.default_rng(1)
    eng = EngineModel(cfg)
    S, b = cfg.product_shift, cfg.w_bits
    s_prev, s_now, c, mu = 0x1234, 0xBEEF, -23456, 17000
    eng.execute(Op.SEED, s_prev)
    eng.execute(Op.UPDATE, encode_signed(c))      # the pending update of step "s_prev"
    eng.execute(Op.SEED, s_now)
    eng.execute(Op.MU, mu)
    w = _rand_rows(cfg, rng, 16, spread=30000)
    w[0, 0], w[0, 1] = 32767, -32768               # saturation at both ends
    out = np.concatenate([eng.execute(Op.STREAM, 7, w[:7]),
                          eng.execute(Op.STREAM, 9, w[7:])]).reshape(16, 3, cfg.lanes)
    zu = generate(cfg.generator, s_prev, 64)
    z = generate(cfg.generator, s_now, 64)
    for i, wi in enumerate(w.reshape(-1)):
        u = _round_even(Fraction(c * int(zu[i]), 1 << S))
        p = _round_even(Fraction(mu * int(z[i]), 1 << S))
        w0 = _sat(int(wi) + u, b)
        w1 = _sat(w0 + p, b)
        w2 = _sat(w1 - 2 * p, b)
        w3 = _sat(w2 + p, b)
        assert tuple(out[i // 4, :, i % 4]) == (w1, w2, w3), i
    # update-only: w0
    eng.execute(Op.UPDATE, encode_signed(c))      # seed s_now's update
    got = eng.execute(Op.STREAM, 16 | (1 << 32), w).reshape(-1)
    for i, wi in enumerate(w.reshape(-1)):
        assert got[i] == _sat(int(wi) + _round_even(Fraction(c * int(z[i]), 1 << S)), b)


def test_stochastic_update_uses_the_rounding_bank_of_the_remembered_seed():
    cfg = E(generator=G(lanes=2), depth=16, weights="stream")
    eng = EngineModel(cfg)
    eng.execute(Op.ROUNDING, 1)
    eng.execute(Op.SEED, 99)
    eng.execute(Op.SEED, 5)                      # the remembered seed is the last one
    eng.execute(Op.UPDATE, encode_signed(-777))
    w = np.zeros((8, 2), dtype=np.int64)
    got = eng.execute(Op.STREAM, 8 | (1 << 32), w).reshape(-1)
    S = cfg.product_shift
    zu = generate(cfg.generator, 5, 16)
    r = BankModel(rounding_config(cfg), 5, tweak=domain_tweak("rounding", 32)).next(8).reshape(-1)
    want = [(-777 * int(zi) + (int(ri) & ((1 << S) - 1))) >> S for zi, ri in zip(zu, r)]
    assert list(got) == want


# --- hardware against the golden model, with stalls ---------------------------------------------

def _script(cfg, rng):
    """Commands and STREAM blocks: good and bad; (op, arg, rows or None)."""
    W, m = cfg.words, cfg.lanes
    s = [(Op.SEED, 0xCAFE, None), (Op.MU, encode_signed(9000), None),
         (Op.UPDATE, encode_signed(0), None)]
    for step in range(3):
        blocks = [3, W - 3] if step != 1 else [W]
        for k in blocks:
            s.append((Op.STREAM, k, _rand_rows(cfg, rng, k)))
        s += [(Op.UPDATE, encode_signed(int(rng.integers(-30000, 30000))), None),
              (Op.SEED, int(rng.integers(0, 1 << 32)), None)]
        if step == 1 and cfg.stochastic:
            s.append((Op.ROUNDING, 1, None))
    s += [(Op.STREAM, W | (1 << 32), _rand_rows(cfg, rng, W)),
          (Op.MU, encode_signed(-(1 << (cfg.coef_bits - 1))), None),
          (Op.STREAM, 2, np.full((2, m), (1 << (cfg.w_bits - 1)) - 1)),   # saturates
          (Op.CLEAR, 0, None)]
    # bad: count 0, count > words, mode 2, a resident pass, a READ, a WRITE
    for op, arg in ((Op.STREAM, 0), (Op.STREAM, W + 1), (Op.STREAM, 1 | (2 << 32)),
                    (Op.STREAM, 1 | (1 << 63)), (Op.PERTURB, 0), (Op.PERTURB, 5),
                    (Op.READ, W << 32), (Op.WRITE, W << 32), (Op.OFFSET, 0)):
        s += [(op, arg, None), (Op.CLEAR, 1, None)]
    return s


async def _drive(ctx, dut, cfg, script, rng, log):
    """Send each command; feed STREAM rows with random gaps and take rows back under random
    backpressure; record (rows out, status) per command."""
    m = cfg.lanes
    for op, arg, rows in script:
        ctx.set(dut.cmd.payload.as_value(), command_bits(op, arg))
        ctx.set(dut.cmd.valid, 1)
        while not ctx.get(dut.cmd.ready):
            await ctx.tick()
        await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        out, i = [], 0
        n = 0 if rows is None else len(rows)
        while ctx.get(dut.status.busy) or (rows is not None and ctx.get(dut.rdata.valid)):
            offer = i < n and rng.random() < 0.7
            if offer:
                ctx.set(dut.wdata.payload, [int(v) for v in rows[i]])
            ctx.set(dut.wdata.valid, offer)
            ready = rng.random() < 0.6
            ctx.set(dut.rdata.ready, ready)
            took = offer and ctx.get(dut.wdata.ready)
            if ready and ctx.get(dut.rdata.valid):
                p = ctx.get(dut.rdata.payload)
                out.append([int(p[j]) for j in range(m)])
            await ctx.tick()
            i += int(took)
        ctx.set(dut.wdata.valid, 0)
        ctx.set(dut.rdata.ready, 0)
        log.append((out, {f: int(ctx.get(getattr(dut.status, f))) for f in
                          ("error", "error_code", "saturated", "last_pass")}))


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name())
def test_hardware_matches_golden_under_stalls(cfg):
    rng = np.random.default_rng(4)
    script = _script(cfg, rng)
    dut = PerturbEngine(cfg)
    log = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def bench(ctx):
        await _drive(ctx, dut, cfg, script, np.random.default_rng(8), log)
    sim.add_testbench(bench)
    sim.run()
    gold = EngineModel(cfg)
    streamed = 0
    for (op, arg, rows), (out, st) in zip(script, log, strict=True):
        want = gold.execute(op, arg, rows)
        gst = gold.status()
        assert st == {f: gst[f] for f in st}, (Op(op).name, hex(arg), st, gst)
        if want is None:
            assert out == [], Op(op).name
        else:
            assert np.array_equal(np.array(out).reshape(want.shape), want), (Op(op).name, arg)
            streamed += len(want)
    assert streamed > 3 * 3 * cfg.words


def test_opcodes_a_stream_engine_refuses_and_others_refuse_stream():
    for cfg, op, arg in [(CFGS[0], Op.PERTURB, 0), (CFGS[0], Op.READ, 1 << 32),
                         (CFGS[0], Op.WRITE, 1 << 32),
                         (E(generator=G(lanes=4), depth=64), Op.STREAM, 1)]:
        for transport in (GoldenTransport(cfg), AmaranthTransport(cfg)):
            transport.command(op, arg, None, 0)
            st = transport.status()
            assert (st["error"], st["error_code"]) == (1, Err.UNSUPPORTED), (cfg.weights, op)


def test_client_stream_errors():
    eng = EngineClient(CFGS[0], "golden")
    with pytest.raises(ValueError, match=r"^Streamed weight count must be a positive multiple "
                                         r"of the lane count 4, not 6$"):
        eng.stream(np.zeros(6))
    with pytest.raises(ValueError, match=re.escape("Raw weights must be in -32768..32767")):
        eng.stream(np.full(4, 40000))
    with pytest.raises(EngineError, match=r"^Engine rejected STREAM with argument 0x44: error "
                                          r"ARG$"):
        eng.stream(np.zeros(4 * 68))


@pytest.mark.parametrize("kwargs,msg", [
    (dict(generator=G(reuse="pregen", pool_size=256)), "reuse='pregen'"),
    (dict(coord=True), "coord=True"),
    (dict(mask="range"), "mask='range'"),
])
def test_stream_config_errors(kwargs, msg):
    with pytest.raises(ValueError, match=r"^weights='stream' needs reuse none or onthefly, "
                                         r"coord=False and mask='none', not " + re.escape(msg)):
        E(depth=64, weights="stream", **kwargs)
