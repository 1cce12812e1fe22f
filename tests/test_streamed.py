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


# --- training: streamed blocks = resident ---------------------------------------------------------

def _pair(n_params, block_words, engine="golden", **kw):
    from pezo.host.perturb import make_source
    from pezo.host.streamed import make_streamed_source
    resident = make_source("pezo", n_params, engine="golden", **kw)
    streamed = make_streamed_source("pezo-sim" if engine == "amaranth" else "pezo", n_params,
                                    block_words=block_words, **kw)
    return resident, streamed


@pytest.mark.parametrize("model,block,decay,kw", [
    ("logreg", 37, 0.0, {}),                                  # 650 weights, 5 uneven blocks
    ("mlp", 1, 0.0, dict(reuse="onthefly", lanes=4)),         # a block per word
    ("mlp", None, 0.0, dict(rounding="nearest", coef_rounding="nearest")),   # one block
    ("logreg", 64, 1e-3, {}),       # weight decay reads the weights: a flush every step
])
def test_streamed_training_is_bit_identical_to_resident(model, block, decay, kw):
    """The same MeZO run (a cosine schedule) with the weights resident in the engine and
    streamed through it in blocks: every loss of the curve and every final weight integer
    agree. Evaluation reads the weights (a flush of the pending update) only every 20 steps,
    so most updates take the deferred path, fused with the next step's perturbation."""
    from pezo.host.train import train
    from pezo.host.models import make_model
    from pezo.host.data import load_dataset
    ds = load_dataset("digits")
    n = make_model(model, ds.n_features, ds.n_classes, 16, "tanh").n_params
    resident, streamed = _pair(n, block, **kw)
    runs = []
    for src in (resident, streamed):
        r = train(dataset="digits", model=model, steps=40, seed=5, eval_every=20,
                  weight_decay=decay, schedule="cosine", src=src, restore_best=False, **{
                      k: v for k, v in kw.items() if k in ("reuse", "lanes", "rounding",
                                                           "coef_rounding")})
        runs.append(r)
    assert runs[0].curve == runs[1].curve and runs[0].test_acc == runs[1].test_acc
    w_res = resident.eng.read_weights(raw=True)[:n]
    assert np.array_equal(w_res, streamed.raw_weights()[:n])
    assert streamed.stats["coef_zero"] == resident.stats["coef_zero"]
    if decay == 0:
        assert streamed.stats["deferred"] >= 35          # updates fused with the next step


def _stream_run(src, n, steps, seed):
    """A MeZO-shaped run driven by hand: per step the perturbed pair, the weights (pending
    update not yet applied), the status; a flush (update-only STREAMs) every fifth step."""
    rng = np.random.default_rng(seed)
    theta0 = rng.normal(0, 0.5, n)
    theta0[:3] = [7.9998, -8.0, 7.99]         # at the Q4.12 ends: the MACs saturate
    src.reset(theta0)
    src.set_mu(2e-2)
    for t in range(steps):
        q = src.begin(1000 + 7 * t)
        pm = src.perturb_pair(q)
        src.update(q, float(rng.normal(0, 0.05)))
        if t % 5 == 4:
            src.params()
        yield pm, src.w.copy(), (src.eng.transport.status(), dict(src.stats))
    yield None, src.raw_weights(), (src.eng.transport.status(), dict(src.stats))


@pytest.mark.parametrize("model,block,kw", [
    ("logreg", 40, {}),                                       # 163 words: 40 does not divide
    ("logreg", 1, dict(rounding="nearest", coef_rounding="nearest")),   # a block per word
    ("logreg", None, dict(lanes=8)),                          # one block
    ("mlp", 7, dict(reuse="onthefly", lanes=4)),
    ("mlp", 64, dict(rounding="nearest")),
])
def test_fused_golden_stream_matches_the_blocks(model, block, kw):
    """The fused golden STREAM (the whole model in one call of the golden model's STREAM
    arithmetic) against the reference, one STREAM command per block on the same golden model:
    theta+, theta-, the weights, the status and the source's counts (saturated passes
    included) agree after every step, both rounding modes,
    blocks that do and do not divide the model, flushes included."""
    from pezo.host.models import make_model
    from pezo.host.streamed import make_streamed_source
    n = make_model(model, 64, 10, 16, "tanh").n_params
    fused = make_streamed_source("pezo", n, block_words=block, **kw)
    blocks = make_streamed_source("pezo", n, block_words=block, fused=False, **kw)
    assert fused._model is not None and blocks._model is None
    steps = 0
    for got, want in zip(_stream_run(fused, n, 12, 3), _stream_run(blocks, n, 12, 3)):
        if got[0] is not None:
            assert np.array_equal(got[0], want[0]), steps
        assert np.array_equal(got[1], want[1]) and got[2] == want[2], steps
        steps += 1
    assert steps == 13
    assert fused.stats["saturated_passes"] > 0                # the saturating ends ran


def test_streamed_training_on_the_simulated_hardware():
    """Three MeZO steps with the STREAM engine in the Amaranth simulator (blocks of 8 words)
    leave the weights of the resident golden engine."""
    from pezo.host.train import train
    n = 650
    resident, streamed = _pair(n, 8, engine="amaranth", lanes=2)
    for src in (resident, streamed):
        train(dataset="digits", model="logreg", steps=3, seed=9, eval_every=3, src=src,
              restore_best=False, lanes=2)
    assert np.array_equal(resident.eng.read_weights(raw=True)[:n], streamed.raw_weights()[:n])
    assert streamed.eng.transport.name == "amaranth"


def test_streamed_source_refuses_what_it_cannot_defer():
    from pezo.host.perturb import Query
    from pezo.host.train import TrainConfig
    _, src = _pair(64, 4)
    src.reset(np.zeros(64))
    src.set_mu(1e-3)
    src.perturb_pair(src.begin(11))
    with pytest.raises(ValueError, match=r"^Streamed weights defer the update of the last "
                                         r"perturbed query only \(seed 11\); this update is "
                                         r"for seed 12"):
        src.update(Query(12), 0.1)
    src.update(Query(11), 0.1)
    with pytest.raises(ValueError, match=r"^An update of this query is already pending"):
        src.update(Query(11), 0.1)
    with pytest.raises(ValueError, match=r"^Streamed weights have no perturbation mask"):
        src.set_active(np.ones(64, dtype=bool))
    with pytest.raises(ValueError, match=r"^Streamed weights defer one update per step: algo "
                                         r"'mezo' with q = 1, not algo 'mezo' with q = 2"):
        TrainConfig(weights="stream", q=2).resolved()
    with pytest.raises(ValueError, match=r"^Streamed weights run on source pezo or pezo-sim "
                                         r"with reuse none or onthefly, not source 'gaussian'"):
        TrainConfig(weights="stream", source="gaussian").resolved()
    with pytest.raises(ValueError, match=r"^A block size \(block_words\) applies to weights "
                                         r"'stream' only"):
        TrainConfig(block_words=4).resolved()
    with pytest.raises(ValueError, match=r"^Weight memory \(weights\) must be one of bram, "
                                         r"spram, stream, not 'dram'"):
        TrainConfig(weights="dram").resolved()


def test_link_bytes_of_the_resident_step_match_the_bridge_model():
    """The resident count against the protocol's reference bridge: the frames of one MeZO step
    fed to pezo.boards.protocol.BridgeModel, every byte in and out counted."""
    from pezo.boards.protocol import BridgeModel, encode_frame
    from pezo.host.streamed import link_bytes
    cfg = E(generator=G(lanes=4), depth=160)
    full = cfg.words << 32
    seq = [(Op.SEED, 7), (Op.PERTURB, 0), (Op.READ, full), (Op.SEED, 7), (Op.PERTURB, 1),
           (Op.READ, full), (Op.SEED, 7), (Op.PERTURB, 0), (Op.SEED, 7),
           (Op.UPDATE, encode_signed(-5))]
    bridge = BridgeModel(cfg)
    sent = got = 0
    for k, (op, arg) in enumerate(seq):
        frame = encode_frame(cfg, k + 1, op, arg)
        sent += len(frame)
        got += len(bridge.feed(frame))
    r = link_bytes(cfg, 160, baud=115200)
    assert (r["resident"]["to_board"], r["resident"]["from_board"]) == (sent, got)
    assert r["resident"]["seconds"] == pytest.approx((sent + got) * 10 / 115200)


def test_link_bytes_of_streamed_blocks_by_hand():
    """40 words of 4 16-bit weights, 32 words per STREAM frame: UPDATE and SEED (a 12-byte body,
    one COBS code byte and two delimiters: 15 bytes each; 8-byte replies), two STREAM frames
    (12 + payload, one code byte per started 254 bytes of body, two delimiters) with replies of 3
    words back per word in (8 bytes of header and status each)."""
    from pezo.host.streamed import link_bytes
    cfg = E(generator=G(lanes=4), depth=160)
    r = link_bytes(cfg, 160)["streamed"]
    assert r["to_board"] == 2 * 15 + (12 + 256 + 2 + 2) + (12 + 64 + 1 + 2)
    assert r["from_board"] == 2 * 8 + 2 * 8 + 3 * 40 * 8


def test_the_board_bridge_refuses_a_stream_engine():
    from pezo.boards.bridge import SerialBridge
    with pytest.raises(ValueError, match=r"^The serial bridge does not carry STREAM"):
        SerialBridge(CFGS[0])


def test_distributed_training_refuses_streamed_weights():
    from pezo.host.dist import train_dist
    with pytest.raises(ValueError, match=r"^Distributed training holds the weights in each "
                                         r"worker's engine: weights 'bram' or 'spram', not "
                                         r"'stream'$"):
        train_dist(weights="stream", layout="1x1")
