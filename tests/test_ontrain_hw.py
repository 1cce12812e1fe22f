"""The on-chip trainer in the Amaranth simulator against the integer golden model
(pezo.sim.ontrain.train_on_chip on the plain golden engine): every step's loss sums and
coefficient, the evaluations, the checkpoint and the final weights, bit for bit."""

from pathlib import Path
import random

import numpy as np
import pytest

from pezo.boards.protocol import decode_tstatus, rows_words, train_rows, words_rows
from pezo.hw.ontrain import (LOG_WORDS_PER_STEP, LoadKind, OnChipTrainer, TrainErr,
                             TrainOp as HwTrainOp, train_beats, tstatus_beats)
from pezo.hw.ontrain_prog import TRAIN_FIELDS
from pezo.sim.engine import Op
from pezo.sim.ontrain import (TrainerConfig, CommandPort, ModelTransport, OnChipConfig, data_image,
                              engine_config, evaluate, init_weights, onchip_data, param_count,
                              train_on_chip, train_registers)
from tests.simutil import run


def small_data(F=8, K=4, n=(24, 6, 5), seed=3):
    """A small learnable data set: raw features 0..16, labels from a fixed linear rule."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(F, K))
    parts = []
    for count in n:
        X = rng.integers(0, 17, size=(count, F))
        y = np.argmax((X - 8) @ W + rng.normal(scale=4, size=(count, K)), axis=1)
        parts += [X, y]
    return onchip_data(*parts, feature_bits=4)


def golden(data, cfg):
    d = param_count("logreg", data.n_features, data.n_classes)
    port = CommandPort(ModelTransport(engine_config(d)))
    return train_on_chip(data, cfg, port=port)


async def command(ctx, dut, op, arg, wdata=None, rcount=0, train=0, rng=None):
    """One command through the trainer's bridge-side ports, with random stalls on the data
    streams; returns the rows read (rcount beats) as a flat array."""
    rng = rng or random.Random(0)
    ctx.set(dut.cmd.payload.op, int(op))
    ctx.set(dut.cmd.payload.arg, int(arg) & ((1 << 64) - 1))
    ctx.set(dut.cmd.payload.train, train)
    ctx.set(dut.cmd.valid, 1)
    while not ctx.get(dut.cmd.ready):
        await ctx.tick()
    await ctx.tick()
    ctx.set(dut.cmd.valid, 0)
    await ctx.tick()
    out = []
    words = [list(map(int, r)) for r in wdata] if wdata is not None else []
    # a refused command never takes its payload (as the bridge then never sends it)
    while (words or len(out) < rcount or ctx.get(dut.status.busy)) \
            and (ctx.get(dut.status.busy) or ctx.get(dut.rdata.valid)):
        if words:
            ctx.set(dut.wdata.valid, rng.random() < 0.7)
            ctx.set(dut.wdata.payload, words[0])
        ready = len(out) < rcount and rng.random() < 0.7
        ctx.set(dut.rdata.ready, ready)
        took_w = words and ctx.get(dut.wdata.valid) and ctx.get(dut.wdata.ready)
        if ready and ctx.get(dut.rdata.valid):
            out.append([int(ctx.get(dut.rdata.payload[l])) for l in range(2)])
        await ctx.tick()
        if took_w:
            words.pop(0)
        if not words:
            ctx.set(dut.wdata.valid, 0)
    ctx.set(dut.rdata.ready, 0)
    return np.array(out, dtype=np.int64).reshape(-1)


def status(ctx, dut):
    return {n: int(getattr(ctx.get(dut.status), n)) for n in ("error", "error_code")}


async def load(ctx, dut, data, rng, chunk=64):
    image, _ = data_image(data)
    await command(ctx, dut, HwTrainOp.LOAD, LoadKind.INVALIDATE << 24, train=1, rng=rng)
    for kind, words in ((LoadKind.DATA, image), (LoadKind.TABLE, data.table.reshape(-1) & 0xFFFF)):
        rows = words_rows(words)
        for k in range(0, len(rows), chunk):
            part = rows[k:k + chunk]
            await command(ctx, dut, HwTrainOp.LOAD, (2 * k) | (kind << 24) | (len(part) << 32),
                          part, train=1, rng=rng)
            assert status(ctx, dut)["error"] == 0
    await command(ctx, dut, HwTrainOp.LOAD, LoadKind.COMMIT << 24, train=1, rng=rng)


async def tstatus(ctx, dut, rng):
    rows = await command(ctx, dut, HwTrainOp.TSTATUS, tstatus_beats() << 32,
                         rcount=tstatus_beats(), train=1, rng=rng)
    return decode_tstatus(rows)


async def train(ctx, dut, fields, rng, max_cycles=400_000):
    await command(ctx, dut, HwTrainOp.TRAIN, train_beats() << 32, train_rows(fields), train=1,
                  rng=rng)
    cycles = 0
    while ctx.get(dut.flags.running):
        await ctx.tick()
        cycles += 1
        assert cycles < max_cycles, "the run did not finish"
    return cycles


async def read_log(ctx, dut, steps, rng):
    n = steps * LOG_WORDS_PER_STEP // 2
    rows = await command(ctx, dut, HwTrainOp.READ_LOG, n << 32, rcount=n, train=1, rng=rng)
    w = rows_words(rows).reshape(steps, LOG_WORDS_PER_STEP)
    sp = w[:, 0] | (w[:, 1] << 16)
    sm = w[:, 2] | (w[:, 3] << 16)
    c = np.where(w[:, 4] >= 1 << 15, w[:, 4] - (1 << 16), w[:, 4])
    return sp, sm, c


@pytest.mark.parametrize("schedule,group", [("constant", 2), ("step", 1)])
def test_trainer_matches_the_golden_model_step_by_step(schedule, group):
    data = small_data()
    cfg = OnChipConfig(steps=7, batch=4, eval_every=3, seed=11, schedule=schedule,
                       lr=2.0 ** -5, mu=2.0 ** -7)
    res = golden(data, cfg)
    regs = train_registers(data, cfg)
    F, K = data.n_features, data.n_classes
    dut = OnChipTrainer(TrainerConfig(F, K, group=group, max_batch=8))
    ecfg = dut.engine_config
    theta0 = init_weights("logreg", F, K)
    w0 = np.zeros(ecfg.depth, dtype=np.int64)
    w0[:len(theta0)] = theta0
    got = {}

    async def tb(ctx):
        rng = random.Random(5)
        await command(ctx, dut, Op.WRITE, ecfg.words << 32, w0.reshape(-1, 2), rng=rng)
        await load(ctx, dut, data, rng)
        got["cycles"] = await train(ctx, dut, regs.fields(), rng)
        got["status"] = await tstatus(ctx, dut, rng)
        got["log"] = await read_log(ctx, dut, cfg.steps, rng)
        got["weights"] = await command(ctx, dut, Op.READ, ecfg.words << 32,
                                       rcount=ecfg.words, rng=rng)

    run(dut, tb)
    st = got["status"]
    assert st["error"] == TrainErr.NONE and st["done"] == 1
    assert st["step"] == cfg.steps
    # the chip's cycle counter against the testbench's count of the running flag
    assert abs(st["cycles"] - got["cycles"]) <= 4, (st["cycles"], got["cycles"])
    sp, sm, c = got["log"]
    assert (sp == res.sum_plus).all(), (sp, res.sum_plus)
    assert (sm == res.sum_minus).all(), (sm, res.sum_minus)
    assert (c == res.coef).all(), (c, res.coef)
    assert (got["weights"][:len(res.weights)] == res.weights).all()
    assert st["best_step"] == res.best_step
    best = next(p for p in res.curve if p["step"] == res.best_step)
    assert st["best_loss"] == best["val_loss_sum"] and st["best_correct"] == best["val_correct"]
    tl, tc = evaluate("logreg", res.weights, data.test, K)
    assert (st["test_loss"], st["test_correct"]) == (tl, tc)
    # the run did something: nonzero coefficients, a checkpoint before the end (if it happened)
    assert np.count_nonzero(res.coef) >= cfg.steps - 1


def _setup(group=2, max_batch=8):
    data = small_data()
    dut = OnChipTrainer(TrainerConfig(data.n_features, data.n_classes, group=group,
                                      max_batch=max_batch))
    return data, dut


async def start_from_zero(ctx, dut, data, regs, rng):
    """Zero weights, the data loaded, TRAIN with ``regs``' fields (the run starts)."""
    words = dut.engine_config.words
    await command(ctx, dut, Op.WRITE, words << 32, np.zeros((words, 2), dtype=np.int64), rng=rng)
    await load(ctx, dut, data, rng)
    await command(ctx, dut, HwTrainOp.TRAIN, train_beats() << 32, train_rows(regs.fields()),
                  train=1, rng=rng)


def test_stop_mid_run_ends_after_the_current_step_like_the_golden_model():
    """STOP during a step: the step completes (no weight is left perturbed), then the run
    evaluates, restores its checkpoint and tests: what the golden model does with stop_after."""
    data, dut = _setup()
    cfg = OnChipConfig(steps=40, batch=4, eval_every=5, seed=2, lr=2.0 ** -5)
    regs = train_registers(data, cfg)
    ecfg = dut.engine_config
    got = {}

    async def tb(ctx):
        rng = random.Random(9)
        await start_from_zero(ctx, dut, data, regs, rng)
        # an engine command during the run is refused and changes nothing
        await command(ctx, dut, Op.PERTURB, 0, rng=rng)
        got["refused"] = status(ctx, dut)
        while (await tstatus(ctx, dut, rng))["step"] < 3:      # the host's view
            await ctx.tick().repeat(200)
        await ctx.tick().repeat(700)           # somewhere inside step 4
        got["stop_seen_at"] = (await tstatus(ctx, dut, rng))["step"]
        await command(ctx, dut, HwTrainOp.STOP, 0, train=1, rng=rng)
        while ctx.get(dut.flags.running):
            await ctx.tick()
        got["status"] = await tstatus(ctx, dut, rng)
        got["weights"] = await command(ctx, dut, Op.READ, ecfg.words << 32,
                                       rcount=ecfg.words, rng=rng)

    run(dut, tb)
    assert got["refused"] == {"error": 1, "error_code": 3}        # Err.UNSUPPORTED
    st = got["status"]
    assert st["error"] == 0 and st["done"] == 1
    steps = st["step"]
    assert got["stop_seen_at"] <= steps <= got["stop_seen_at"] + 1 < cfg.steps
    res = golden_stop(data, cfg, steps)
    assert res.steps_run == steps
    assert (got["weights"][:len(res.weights)] == res.weights).all()
    assert st["best_step"] == res.best_step
    tl, tc = evaluate("logreg", res.weights, data.test, data.n_classes)
    assert (st["test_loss"], st["test_correct"]) == (tl, tc)


def test_tstatus_read_back_to_back_during_a_run_is_consistent():
    """TSTATUS as fast as the host can ask, through a whole run: its register reads share the
    sequencer's port (a read of a register the sequencer writes in the same cycle would be
    undefined on the FPGA, and is inverted in simulation), so every reply must be plausible
    and the last one must equal the golden model's."""
    data, dut = _setup()
    cfg = OnChipConfig(steps=6, batch=4, eval_every=2, seed=5, lr=2.0 ** -5)
    regs = train_registers(data, cfg)
    res = golden(data, cfg)
    replies = []

    async def tb(ctx):
        rng = random.Random(4)
        await start_from_zero(ctx, dut, data, regs, rng)
        while True:
            replies.append(await tstatus(ctx, dut, rng))
            if replies[-1]["done"]:
                break

    run(dut, tb)
    assert len(replies) > 100
    steps = [r["step"] for r in replies]
    assert steps == sorted(steps) and steps[-1] == cfg.steps
    for r in replies:
        assert r["error"] == 0 and r["data_tag"] == 0 and r["best_step"] <= r["step"], r
        assert max(r["sat_passes"], r["clipped"], r["zero"]) <= r["step"], r
        assert max(r["sum_plus"], r["sum_minus"]) < 1 << 24, r
    last = replies[-1]
    assert (last["sum_plus"], last["sum_minus"], last["coef"]) == \
        (res.sum_plus[-1], res.sum_minus[-1], res.coef[-1])
    assert last["best_step"] == res.best_step


def golden_stop(data, cfg, steps):
    d = param_count("logreg", data.n_features, data.n_classes)
    return train_on_chip(data, cfg, port=CommandPort(ModelTransport(engine_config(d))),
                         stop_after=steps)


REFUSALS = [("not_loaded", TrainErr.NOT_LOADED), ("zero_steps", TrainErr.STEPS),
            ("eval_above_steps", TrainErr.STEPS), ("batch_above_split", TrainErr.BATCH),
            ("batch_above_buffer", TrainErr.BATCH), ("empty_split", TrainErr.SPLIT),
            ("shift_below", TrainErr.SHIFT), ("shift_above_with_schedule", TrainErr.SHIFT),
            # hand-made frames: a 32-bit word beyond its field (train_rows refuses these)
            ("steps_2_24", TrainErr.STEPS), ("lr_m_256", TrainErr.FIELD),
            ("schedule_2", TrainErr.FIELD), ("val_base_2_16", TrainErr.FIELD),
            ("mu_2_16", TrainErr.FIELD), ("shift_wraps", TrainErr.SHIFT)]
#: word overrides of the hand-made frames: (field, 32-bit value)
RAW = {"steps_2_24": ("steps", 1 << 24), "lr_m_256": ("lr_m", 256),
       "schedule_2": ("schedule", 2), "val_base_2_16": ("val_base", 1 << 16),
       "mu_2_16": ("mu_reg", 1 << 16), "shift_wraps": ("shift", (1 << 32) - 20)}


def raw_rows(fields, word, value):
    """TRAIN's payload with one 32-bit word replaced (a frame no host encoder would build)."""
    words = rows_words(train_rows(fields)).copy()
    i = list(TRAIN_FIELDS).index(word)
    words[2 * i], words[2 * i + 1] = value & 0xFFFF, value >> 16
    return words_rows(words)


def test_train_refusals_change_nothing():
    """Each TRAIN the board must refuse, in one simulation: the reply's status says ARG,
    TSTATUS names the reason, no run starts, the weights are untouched; a good TRAIN
    afterwards runs."""
    data, dut = _setup(max_batch=4)
    cfg = OnChipConfig(steps=2, batch=4, eval_every=1, seed=1)
    fields = train_registers(data, cfg).fields()
    changes = {"not_loaded": {}, "zero_steps": {"steps": 0}, "eval_above_steps": {"eval_every": 3},
               "batch_above_split": {"train_n": 3},     # batch 4 fits the buffer, not the split
               "batch_above_buffer": {"batch_log2": 3}, "empty_split": {"val_n": 0},
               # the coefficient unit is exact for shifts -11..63 (pezo.hw.ontrain_coef)
               "shift_below": {"shift": -12},
               "shift_above_with_schedule": {"shift": 50, "schedule": 1, "step_shift": 7}}
    ecfg = dut.engine_config
    w0 = np.arange(ecfg.depth, dtype=np.int64).reshape(ecfg.words, 2) - 20
    got = {}

    async def tb(ctx):
        rng = random.Random(2)
        await command(ctx, dut, Op.WRITE, ecfg.words << 32, w0, rng=rng)
        for case, _ in REFUSALS:
            if case == "zero_steps":                  # the first case after a LOAD
                await load(ctx, dut, data, rng)
            rows = (raw_rows(fields, *RAW[case]) if case in RAW
                    else train_rows({**fields, **changes[case]}))
            await command(ctx, dut, HwTrainOp.TRAIN, train_beats() << 32, rows, train=1,
                          rng=rng)
            reply = status(ctx, dut)
            await ctx.tick().repeat(20)
            running = ctx.get(dut.flags.running)
            got[case] = (reply, running, (await tstatus(ctx, dut, rng))["error"])
        got["weights"] = await command(ctx, dut, Op.READ, ecfg.words << 32,
                                       rcount=ecfg.words, rng=rng)
        await train(ctx, dut, fields, rng)
        got["after"] = await tstatus(ctx, dut, rng)

    run(dut, tb)
    for case, err in REFUSALS:
        assert got[case] == ({"error": 1, "error_code": 2}, 0, err), (case, got[case])  # Err.ARG
    assert (got["weights"] == w0.reshape(-1)).all()
    assert got["after"]["error"] == 0 and got["after"]["step"] == 2


@pytest.mark.parametrize("arg,why", [
    ((LoadKind.DATA << 24) | (49151 - 1) | (2 << 32), "beyond the data SPRAM"),
    ((LoadKind.TABLE << 24) | (8 * 16 - 2) | (2 << 32), "beyond the table"),
    ((LoadKind.DATA << 24) | (1 << 16) | (1 << 32), "stray address bits"),
    ((LoadKind.DATA << 24) | 0, "zero beats"),
])
def test_load_refuses_out_of_range_blocks(arg, why):
    data, dut = _setup()
    got = {}

    async def tb(ctx):
        rng = random.Random(1)
        rows = np.ones(((arg >> 32) or 1, 2), dtype=np.int64) if arg >> 32 else None
        await command(ctx, dut, HwTrainOp.LOAD, arg, rows, train=1, rng=rng)
        got["reply"] = status(ctx, dut)

    run(dut, tb)
    assert got["reply"] == {"error": 1, "error_code": 2}, why


def test_trainer_configuration_errors():
    with pytest.raises(TypeError, match=r"^Configuration must be a TrainerConfig"):
        OnChipTrainer((64, 10))
    with pytest.raises(ValueError, match=r"^Class count \(n_classes\) must be a multiple"):
        TrainerConfig(64, 3)
    with pytest.raises(ValueError, match=r"^Group size \(group\) must be an integer in 1\.\.3"):
        TrainerConfig(group=4)
    with pytest.raises(ValueError, match=r"^Index buffer depth \(max_batch\) must be a power"):
        TrainerConfig(max_batch=100)
    with pytest.raises(ValueError, match=r"^Model must be 'logreg'"):
        TrainerConfig(model="mlp")
    for bad in (12, 300, True, "24"):
        with pytest.raises(ValueError, match=r"^PLL clock \(pll_mhz\) must be a number of MHz "
                                             r"in 16\.\.275, not "):
            TrainerConfig(pll_mhz=bad)


def test_the_training_configuration_sets_the_plls_clock():
    """``pll_mhz`` clocks an iCE40 board with a PLL (synthesis and the power model build
    with it); a board without a PLL, and a configuration without the field, keep theirs."""
    from pezo.boards.targets import clocked_board, get_board
    ice, ecp = get_board("ice40"), get_board("ulx3s-85f")
    assert ice.pll_mhz == 48.0 and ecp.pll_mhz is None
    assert clocked_board(ice, TrainerConfig(pll_mhz=30)).pll_mhz == 30.0
    assert clocked_board(ice, TrainerConfig()) is ice
    assert clocked_board(ecp, TrainerConfig(pll_mhz=30)) is ecp
    assert clocked_board(ice, ice.default) is ice


def test_pezo_generate_writes_the_training_design(tmp_path):
    from pezo.cli import main
    cfg = Path(__file__).resolve().parents[1] / "boards" / "configs" / "up5k-train.toml"
    assert main(["generate", "train", "--config", str(cfg),
                 "--format", "v", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "pezo_train.v").read_text()
    assert "module pezo_train" in text and "sampler" in text and "loss" in text


def test_engine_commands_pass_through_after_a_training_command():
    """A refused TRAIN, then engine WRITE and READ through the same ports: the status shows the
    engine's verdict again and every weight arrives (the trainer's verdict does not stick)."""
    data, dut = _setup()
    e = dut.engine_config
    w0 = (np.arange(e.depth, dtype=np.int64) - 10).reshape(e.words, 2)
    fields = train_registers(data, OnChipConfig(steps=6, batch=4, eval_every=2)).fields()
    got = {}

    async def tb(ctx):
        rng = random.Random(1)
        await command(ctx, dut, HwTrainOp.TRAIN, train_beats() << 32, train_rows(fields),
                      train=1, rng=rng)
        got["train"] = status(ctx, dut)
        await command(ctx, dut, Op.WRITE, e.words << 32, w0, rng=rng)
        got["write"] = status(ctx, dut)
        got["w"] = await command(ctx, dut, Op.READ, e.words << 32, rcount=e.words, rng=rng)

    run(dut, tb)
    assert got["train"] == {"error": 1, "error_code": 2}       # TRAIN before LOAD: ARG
    assert got["write"] == {"error": 0, "error_code": 0}
    assert (got["w"] == w0.reshape(-1)).all()


def test_bridge_carries_whole_training_frames_for_any_engine_size():
    """The bridge in front of a small training design (30 features: an engine of 31 words)
    carries a 64-beat LOAD frame and a 256-beat READ LOG reply whole. Its beat counter was sized
    by the engine's words: 64 beats counted modulo 32 ended the LOAD after 32 and the board hung
    (found by `pezo board train --data` on breast_cancer)."""
    from amaranth.sim import Simulator
    from pezo.boards.bridge import SerialBridge
    from pezo.boards.protocol import TrainOp as FrameOp, decode_reply, encode_frame
    tcfg = TrainerConfig(30, 2)
    ecfg = tcfg.engine()
    assert ecfg.words == 31
    dut = SerialBridge(ecfg, timeout=4096, engine=OnChipTrainer(tcfg))
    rows = words_rows(np.arange(128) * 257 & 0xFFFF)
    frames = [(encode_frame(ecfg, 1, FrameOp.LOAD, LoadKind.DATA << 24 | 64 << 32, rows,
                            train=True), 8),
              (encode_frame(ecfg, 2, FrameOp.READ_LOG, 256 << 32, train=True), 8 + 256 * 4)]
    got = []

    async def tb(ctx):
        for frame, expect in frames:
            out = bytearray()
            for b in frame:
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, b)
                for _ in range(3000):           # a bridge that stops taking bytes fails
                    took = ctx.get(dut.i.ready)
                    ctx.set(dut.o.ready, 1)
                    if ctx.get(dut.o.valid):
                        out.append(ctx.get(dut.o.payload))
                    await ctx.tick()
                    if took:
                        break
                else:
                    raise AssertionError(f"the bridge stopped taking bytes ({len(got)} frames)")
            ctx.set(dut.i.valid, 0)
            for _ in range(6000):
                if len(out) >= expect:
                    break
                if ctx.get(dut.o.valid):
                    out.append(ctx.get(dut.o.payload))
                await ctx.tick()
            got.append(bytes(out))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert len(got[0]) == 8 and decode_reply(ecfg, got[0], seq=1)[2]["error"] == 0
    kind, data, st = decode_reply(ecfg, got[1], seq=2)
    assert len(data) == 256 * 4 and st["error"] == 0
