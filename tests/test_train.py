"""Host ZO training: data sets, models, perturbation sources (float, golden engine, batched golden
engine, Amaranth-simulated hardware), the MeZO pass sequence, the trainer, its CLI and reports."""

import argparse
import json

import numpy as np
import pytest

from pezo.config import EngineConfig as E, GeneratorConfig as G
from pezo.host.data import DATASETS, load_dataset
from pezo.host.engine import GoldenTransport
from pezo.host.models import Model, engine_depth, make_model
from pezo.fixed import Q, from_fixed
from pezo.host.fused import FusedGoldenTransport, _RoundingStream
from pezo.host.perturb import (BatchedGoldenTransport, EngineSource, FloatSource,
                               bank_first_cycles, bank_first_fields, derive_seed, derive_seeds,
                               engine_config, make_source, pool_of)
from pezo.host.train import TrainConfig, lr_at, train
from pezo.host.train_cli import register
from pezo.sim.bank import BankModel
from pezo.sim.engine import Op, encode_signed
from pezo.sim.mac import rounding_config
from pezo.sim.reuse import ReuseModel
from pezo.sim.seeding import domain_tweak

# Data --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,sizes,total", [
    ("digits", (1077, 360, 360), 1797),
    ("breast_cancer", (341, 114, 114), 569),
    ("wine", (106, 36, 36), 178),
    ("synthetic", (240, 80, 80), 400),
])
def test_dataset_split_and_standardisation(name, sizes, total):
    ds = load_dataset(name)
    assert tuple(ds.sizes().values()) == sizes and sum(sizes) == total
    # stratified: every split holds every class in about the overall proportion
    y_all = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    for y in (ds.y_train, ds.y_val, ds.y_test):
        frac = np.bincount(y, minlength=ds.n_classes) / len(y)
        assert np.abs(frac - np.bincount(y_all) / total).max() < 0.02
    # standardised with training statistics: train columns have mean 0 and std 1 (or are
    # constant 0); the other splits use the same transform, not their own statistics
    live = ds.X_train.std(axis=0) > 0
    assert np.allclose(ds.X_train.mean(axis=0), 0, atol=1e-9)
    assert np.allclose(ds.X_train.std(axis=0)[live], 1)
    assert np.all(ds.X_train[:, ~live] == 0)
    assert not np.allclose(ds.X_test.mean(axis=0)[live], 0, atol=1e-9)
    # the split is fixed: loading again gives the same arrays
    assert load_dataset(name) is ds


def test_dataset_errors():
    with pytest.raises(ValueError, match=r"^Dataset must be one of digits, breast_cancer, wine, "
                                         r"synthetic, a .csv, .parquet or .npz file, or "
                                         r"sklearn:NAME, not 'mnist'$"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match=r"^Split must be one of train, val, test, not 'dev'$"):
        load_dataset("wine").split("dev")
    assert DATASETS == ("digits", "breast_cancer", "wine")


# Models ------------------------------------------------------------------------------------------

def test_models_forward_loss_and_layout():
    ds = load_dataset("wine")
    lr = make_model("logreg", 13, 3)
    mlp = make_model("mlp", 13, 3, hidden=5, activation="relu")
    assert lr.n_params == 13 * 3 + 3 and mlp.n_params == 13 * 5 + 5 + 5 * 3 + 3
    # zero logistic regression: uniform softmax, loss ln 3
    assert lr.loss(np.zeros(lr.n_params), ds.X_train, ds.y_train) == pytest.approx(np.log(3))
    # stacked parameters give one loss per vector, equal to the single evaluations
    th = np.stack([mlp.init(1), mlp.init(2)])
    both = mlp.loss(th, ds.X_val, ds.y_val)
    assert both.shape == (2,)
    assert both[1] == pytest.approx(mlp.loss(th[1], ds.X_val, ds.y_val))
    assert mlp.evaluate(th[0], ds.X_val, ds.y_val) == pytest.approx(
        (mlp.loss(th[0], ds.X_val, ds.y_val), mlp.accuracy(th[0], ds.X_val, ds.y_val)))
    # the flat layout: W then b for logreg
    theta = np.zeros(lr.n_params)
    theta[-3:] = [0, 0, 50.0]                       # bias favours class 2
    assert lr.accuracy(theta, ds.X_test, ds.y_test) == pytest.approx(np.mean(ds.y_test == 2))
    # mlp init: LeCun-normal weights (std 1/sqrt(fan-in)), zero biases, a function of the seed
    big = make_model("mlp", 400, 3, hidden=300)
    p = big.unpack(big.init(4))
    assert abs(p["W1"].std() * np.sqrt(400) - 1) < 0.02 and abs(p["W2"].std() * np.sqrt(300) - 1) < 0.1
    assert not p["b1"].any() and not p["b2"].any()
    assert (big.init(4) == big.init(4)).all() and not (big.init(4) == big.init(5)).all()
    assert not lr.init(4).any()


def test_model_errors_and_depth():
    with pytest.raises(ValueError, match=r"^Model must be one of logreg, mlp, not 'cnn'$"):
        make_model("cnn", 4, 2)
    with pytest.raises(ValueError, match=r"^Activation must be one of tanh, relu, not 'gelu'$"):
        Model("mlp", 4, 2, activation="gelu")
    # an unresolved TrainConfig (activation None: the method decides) sizes the default model
    assert Model("mlp", 4, 2, activation=None).activation == "tanh"
    with pytest.raises(ValueError, match=r"^Hidden size must be a positive integer, not 0$"):
        Model("mlp", 4, 2, hidden=0)
    with pytest.raises(ValueError, match=r"^Class count must be at least 2, not 1$"):
        Model("logreg", 4, 1)
    assert engine_depth(650, 4) == 652 and engine_depth(64, 8) == 64
    with pytest.raises(ValueError, match=r"^Model with 2000000 parameters does not fit the engine "
                                         r"\(at most 1048576 weights\); use a smaller model$"):
        engine_depth(2_000_000, 4)


# The batched golden transport is the golden model ------------------------------------------------

BANKS = [G(lanes=4), G(lanes=4), G(lanes=4, shared=True),
         G(lanes=2, reuse="onthefly", out_lanes=8), G(lanes=4, reuse="pregen", pool_size=64),
         G(lanes=3, width=12, state_bits=71, shared=True),
         G(lanes=1, width=8, z_int=2, z_frac=6, scale="fixed")]


@pytest.mark.parametrize("g", BANKS, ids=lambda g: g.name())
def test_bank_first_cycles_and_pool_equal_the_models(g):
    seeds = [0, 5, 2**31 + 3]
    for rotate in (False, True):
        out = bank_first_cycles(g, seeds, 37, rotate=rotate)
        for s, block in zip(seeds, out):
            assert (block == BankModel(g, s, rotate=rotate).next(37)).all()
    narrow = bank_first_cycles(g, seeds, 37, dtype=np.int32)
    assert narrow.dtype == np.int32 and (narrow == bank_first_cycles(g, seeds, 37)).all()
    fields = bank_first_fields(g, seeds, 37)        # the unsigned bits of the same numbers
    if g.state_bits <= 64:
        assert fields.dtype == np.uint32
        assert (fields == (bank_first_cycles(g, seeds, 37) & ((1 << g.width) - 1))).all()
    else:
        assert fields is None
    if g.reuse == "pregen":
        for s in seeds:
            assert (pool_of(g, s) == ReuseModel(g, s).pool).all()


@pytest.mark.parametrize("g", BANKS, ids=lambda g: g.name())
@pytest.mark.parametrize("stochastic", [True, False])
@pytest.mark.parametrize("fast", [BatchedGoldenTransport, FusedGoldenTransport],
                         ids=["batched", "fused"])
def test_batched_golden_transport_is_bit_exact(g, stochastic, fast):
    """MeZO command scripts (and passes without a reseed, rewinds, a scale change, bad seeds):
    weights and status equal the plain golden model after every command."""
    cfg = E(generator=g, depth=g.out_lanes * 13, stochastic=stochastic)
    a, b = GoldenTransport(cfg), fast(cfg)
    rng = np.random.default_rng(0)
    lim = 1 << (cfg.w_bits - 2)
    w = rng.integers(-lim, lim, cfg.depth).reshape(cfg.words, cfg.lanes)
    script = [(Op.WRITE, cfg.words << 32, w), (Op.MU, 300, None)]
    if stochastic:
        script.append((Op.ROUNDING, 1, None))
    b.prefetch([11, 12, 13])
    for step in range(5):
        s = 11 + step
        script += [(Op.SEED, s, None), (Op.PERTURB, 0, None), (Op.SEED, s, None),
                   (Op.PERTURB, 1, None), (Op.PERTURB, 0, None),
                   (Op.UPDATE, encode_signed(-1234), None), (Op.UPDATE, encode_signed(77), None),
                   (Op.SEED, s, None), (Op.UPDATE, encode_signed(-5), None)]
        if g.reuse == "pregen":
            script += [(Op.OFFSET, 3, None), (Op.PERTURB, 0, None)]
        if g.scale == "runtime" and step == 2:
            from pezo.sim import scaler
            script.append((Op.SCALE, scaler.encode_scale([(1, scaler.t_min(g) + 1)], g), None))
        script += [(Op.SEED, 1 << 33, None), (Op.CLEAR, 0, None)]
    for op, arg, wd in script:
        a.command(op, arg, wd)
        b.command(op, arg, wd)
        assert a.status() == b.status(), Op(op).name
        assert (a.model.weights == b.model.weights).all(), Op(op).name


def test_derive_seeds_and_rounding_stream():
    """The vectorised seed derivation equals derive_seed; the rounding stream that the fused
    pregen path installs equals the rounding bank model, read in passes and in odd amounts."""
    t, i = np.arange(0, 3000, 7), np.arange(3)
    for run in (0, 5, 2**64 - 1):
        got = derive_seeds(run, 3, t[:, None], i[None, :])
        assert got.tolist() == [[derive_seed(run, 3, int(a), int(b)) for b in i] for a in t]
    with pytest.raises(ValueError, match=r"^Seed tags must be non-negative integers"):
        derive_seeds(0, [-1])
    for m, depth in ((4, 652), (3, 66), (8, 40)):
        rc = rounding_config(E(generator=G(lanes=m), depth=depth))
        words = depth // m
        rs, ref = _RoundingStream(rc, 0xBEEF, words, (1 << 21) - 1), BankModel(rc, 0xBEEF, tweak=domain_tweak("rounding", 32))
        for k in range(150):                # past a read-ahead of 64 passes, twice
            c = words if k % 4 else 5
            if k % 2:
                assert (rs.next(c) == ref.next(c)).all()
            else:
                assert (rs.next_bits(c) == (ref.next(c).reshape(-1) & ((1 << 21) - 1))).all()


def _command_pair(t, cfg, replay):
    """Passes 1-3 as commands (what the fused pair stands for); returns theta+, theta-."""
    out = []
    for arg in (0, 1, 0):
        t.command(*replay)
        t.command(Op.PERTURB, arg)
        if len(out) < 2:
            out.append(t.command(Op.READ, cfg.words << 32, rcount=cfg.words).reshape(-1))
    return [from_fixed(w, Q(cfg.w_int, cfg.w_frac)) for w in out]


@pytest.mark.parametrize("g", BANKS[:5] + [G(lanes=2, width=12)],
                         ids=lambda g: g.name())
@pytest.mark.parametrize("stochastic", [True, False])
def test_fused_calls_mixed_with_commands_are_bit_exact(g, stochastic, monkeypatch):
    """Fused pairs and updates, interleaved at random with raw commands (passes without a
    reseed, updates, rounding and scale changes, CLEAR, rewinds), near the weight limits so that
    some passes saturate: every fused result and every state equals the plain golden model
    running the command sequences they stand for."""
    monkeypatch.setattr(BankModel, "BLOCK_BITS", 1 << 16)   # read-ahead only: same streams
    cfg = E(generator=g, depth=g.out_lanes * 11, stochastic=stochastic)
    a, b = GoldenTransport(cfg), FusedGoldenTransport(cfg)
    rng = np.random.default_rng(1)
    hi = (1 << (cfg.w_bits - 1)) - 1
    w = rng.integers(-hi // 2, hi // 2, cfg.depth)
    w[::7] = hi - rng.integers(0, 300, w[::7].size)            # a few weights at the edge
    w[3::7] = -hi + rng.integers(0, 300, w[3::7].size)
    seeds = [int(x) for x in rng.integers(0, 2**32, 6)]
    b.prefetch(seeds[:4])
    pregen = g.reuse == "pregen"
    for t in (a, b):
        t.command(Op.WRITE, cfg.words << 32, w.reshape(cfg.words, cfg.lanes))
        t.command(Op.MU, 700)
        if stochastic:
            t.command(Op.ROUNDING, 1)
        if pregen:
            t.command(Op.SEED, seeds[5])
    fused = {"pair": 0, "update": 0, "saturated": 0}
    for k in range(40):
        s = seeds[k % len(seeds)]
        o = int(rng.integers(0, g.pool_words)) if pregen else None
        replay = (Op.OFFSET, o | (s & 0xFFFFFFFF) << 32) if pregen else (Op.SEED, s)
        kind = rng.choice(["pair", "update", "raw"], p=[0.4, 0.4, 0.2])
        if kind == "pair":
            got = b.pair(s, o, cfg.depth - 3)
            want = _command_pair(a, cfg, replay)
            if got is None:
                _command_pair(b, cfg, replay)
            else:
                fused["pair"] += 1
                assert (got[0] == want[0][:cfg.depth - 3]).all()
                assert (got[1] == want[1][:cfg.depth - 3]).all()
        elif kind == "update":
            c = int(rng.integers(-(1 << 15), 1 << 15) >> int(rng.integers(0, 8)))
            sat = b.update(s, o, c)
            a.command(*replay)
            a.command(Op.UPDATE, encode_signed(c))
            if sat is None:
                b.command(*replay)
                b.command(Op.UPDATE, encode_signed(c))
            else:
                fused["update"] += 1
                fused["saturated"] += sat
                assert sat == bool(a.status()["saturated"])
        else:
            op = rng.choice(["perturb", "update", "clear", "rounding", "scale", "seed", "read"])
            cmd = {"perturb": (Op.PERTURB, int(rng.integers(0, 2))),
                   "update": (Op.UPDATE, encode_signed(int(rng.integers(-999, 999)))),
                   "clear": (Op.CLEAR, 0), "rounding": (Op.ROUNDING, int(rng.integers(0, 2))),
                   "seed": (Op.SEED, s) if not pregen else (Op.OFFSET, o),
                   "read": (Op.READ, 1 << 32)}.get(op)
            if op == "scale":
                from pezo.sim import scaler
                cmd = (Op.SCALE, scaler.encode_scale([(1, scaler.t_min(g) + 1)], g)
                       if g.scale == "runtime" else 0)
            for t in (a, b):
                t.command(*cmd)
        assert a.status() == b.status(), (k, kind)
        assert (a.model.weights == b.model.weights).all(), (k, kind)
        if a.status()["saturated"] and rng.random() < 0.9:   # as the source does, mostly
            for t in (a, b):
                t.command(Op.CLEAR)
    assert fused["pair"] and fused["update"], fused


# The trainer's modes: fused = plain golden (few steps), fused = batched (many steps) --------------

MODES = [dict(reuse="none", step="leap"),
         dict(reuse="none", q=2, weight_decay=1e-3),
         dict(reuse="none", step="leap", shared=False, rounding="nearest"),
         dict(reuse="pregen", step="leap", model="mlp"),
         dict(reuse="pregen", q=3, rounding="nearest", weight_decay=1e-3),
         dict(reuse="pregen", step="leap", q=2, pool_size=64),
         dict(reuse="onthefly", step="leap", model="mlp"),
         dict(reuse="onthefly", q=2, weight_decay=1e-3)]


def _mode_run(engine, steps, mode):
    kw = dict(dataset="wine", model="logreg", hidden=5, steps=steps, eval_every=5, seed=3,
              lr=0.05, mu=0.01, pool_size=256 if mode["reuse"] == "pregen" else None)
    kw.update(mode)
    cfg = TrainConfig(**kw).resolved()
    n = make_model(cfg.model, 13, 3, hidden=cfg.hidden).n_params
    src = make_source("pezo", n, reuse=cfg.reuse, pool_size=cfg.pool_size,
                      step=cfg.step, shared=cfg.shared, rounding=cfg.rounding,
                      engine=engine)
    thetas = []                     # every theta+ / theta- pair the forward pass sees
    pair = src.perturb_pair
    src.perturb_pair = lambda q: thetas.append(pair(q)) or thetas[-1]
    res = train(cfg, src=src)
    return src, res, np.array(thetas)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: "-".join(str(v) for v in m.values()))
def test_fused_training_is_bit_exact(mode, monkeypatch):
    """The default pezo engine (fused passes) against the plain golden model (12 steps) and the
    command-level batched golden model (300 steps): the same theta+- at every forward pass,
    the same weight bits, learning curve and statistics; and the fused path was taken."""
    monkeypatch.setattr(BankModel, "BLOCK_BITS", 1 << 16)   # read-ahead only: same streams
    for engine, steps in (("golden", 12), ("batched", 300)):
        ref, ref_res, ref_thetas = _mode_run(engine, steps, mode)
        src, res, thetas = _mode_run("fused", steps, mode)
        assert thetas.shape == ref_thetas.shape and (thetas == ref_thetas).all()
        assert (src.eng.read_weights(raw=True) == ref.eng.read_weights(raw=True)).all()
        assert res.curve == ref_res.curve and res.stats == ref_res.stats
        assert src.eng.status() == ref.eng.status()
        t = src.eng.transport
        assert t.fallback == 0 and t.fused >= steps * mode.get("q", 1)


@pytest.mark.regress
@pytest.mark.parametrize("mode", MODES, ids=lambda m: "-".join(str(v) for v in m.values()))
def test_fused_training_equals_plain_golden_long(mode, monkeypatch):
    """make regress: 200 steps of every mode against the plain golden model."""
    monkeypatch.setattr(BankModel, "BLOCK_BITS", 1 << 16)
    ref, ref_res, ref_thetas = _mode_run("golden", 200, mode)
    src, res, thetas = _mode_run("fused", 200, mode)
    assert (thetas == ref_thetas).all() and res.curve == ref_res.curve
    assert (src.eng.read_weights(raw=True) == ref.eng.read_weights(raw=True)).all()
    assert res.stats == ref_res.stats and src.eng.transport.fallback == 0


def test_fused_source_with_saturation_is_bit_exact():
    """Weights at the edge of Q4.12 and a large mu: perturbation passes and updates saturate;
    the fused source hands those to the commands (or saturates the update exactly) and still
    equals the plain golden model, counts included."""
    n = 40
    theta = np.where(np.arange(n) % 3 == 0, 7.995, -0.5)
    theta[1::5] = -7.999
    runs = []
    for engine in ("golden", "fused"):
        src = make_source("pezo", n, reuse="none", engine=engine)
        src.reset(theta, run_seed=1)
        src.set_mu(0.02)
        thetas = []
        for t in range(8):
            q = src.begin(derive_seed(1, 3, t))
            thetas.append(src.perturb_pair(q))
            src.update(q, 0.03 if t % 2 else -0.03)
        runs.append((src.eng.read_weights(raw=True), np.array(thetas), dict(src.stats),
                     src.eng.transport))
    (wa, ta, sa, _), (wb, tb, sb, fused) = runs
    assert (wa == wb).all() and (ta == tb).all() and sa == sb
    assert sa["saturated_passes"] > 0 and fused.fallback > 0 and fused.fused > 0


# Sources and the MeZO pass sequence ---------------------------------------------------------------

@pytest.mark.parametrize("reuse,shared", [("none", True), ("none", False), ("pregen", True),
                                          ("onthefly", False)])
def test_passes_1_to_3_restore_weights_exactly(reuse, shared):
    n = 650
    src = make_source("pezo", n, reuse=reuse, shared=shared,
                      pool_size=1024 if reuse == "pregen" else None)
    theta = np.random.default_rng(1).normal(0, 0.5, n)
    src.reset(theta, run_seed=3)
    w0 = src.eng.read_weights(raw=True)
    for mu in (1e-3, 5e-3, 0.03):
        src.set_mu(mu)
        for t in range(5):
            q = src.begin(derive_seed(3, t))
            src.perturb(q, +1)
            p1 = src.eng.read_weights(raw=True)
            src.perturb(q, -2)
            p2 = src.eng.read_weights(raw=True)
            src.perturb(q, +1)
            assert (p1 != w0).any() and ((p1 - w0) == -(p2 - w0)).all()
            assert (src.eng.read_weights(raw=True) == w0).all()
    assert src.stats["saturated_passes"] == 0


def test_update_replays_the_same_z():
    """The update pass regenerates z_i of its query: theta moves along the perturbation."""
    for reuse in ("none", "pregen"):
        src = make_source("pezo", 64, reuse=reuse, lanes=4, rounding="nearest",
                          coef_rounding="nearest")
        src.reset(np.zeros(64))
        src.set_mu(0.01)
        q = src.begin(77)
        src.perturb(q, +1)
        p = src.params()                      # mu * z
        src.perturb(q, -2)
        src.perturb(q, +1)
        applied = src.update(q, 0.02)         # 2 * mu * z
        assert applied == pytest.approx(0.02, rel=1e-4)
        assert np.abs(src.params() - 2 * p).max() <= 2 * 2.0 ** -12


def test_float_sources():
    g = FloatSource(1000, "gaussian")
    u = FloatSource(1000, "uniform")
    zg, zu = g.z(5), u.z(5)
    assert (zg == g.z(5)).all() and abs(zg.std() - 1) < 0.1
    assert np.abs(zu).max() <= np.sqrt(3) and abs(zu.std() - 1) < 0.1
    g.reset(np.zeros(1000))
    g.set_mu(1e-3)
    q = g.begin(5)
    for s in (1, -2, 1):
        g.perturb(q, s)
    assert np.abs(g.params()).max() < 1e-15
    g.update(q, 0.5)
    assert np.allclose(g.params(), 0.5 * zg)


def test_coefficient_quantisation():
    src = make_source("pezo", 16, lanes=4)
    step = 2.0 ** -20
    # clipped to the register range, counted
    assert src.quantise_coef(1.0) == (1 << 15) - 1 and src.stats["coef_clipped"] == 1
    assert src.quantise_coef(-1.0) == -(1 << 15) + 1
    # stochastic: a coefficient of 0.3 register steps is 1 about 30 % of the time, else 0
    draws = [src.quantise_coef(0.3 * step, seed) for seed in range(4000)]
    assert set(draws) == {0, 1} and abs(np.mean(draws) - 0.3) < 0.03
    # the stochastic draw is a function of the seed: replaying a step's seed gives its draw
    # back, and draws over seeds are not all equal (checked above)
    assert [src.quantise_coef(0.3 * step, s) for s in range(200)] == draws[:200]
    near = make_source("pezo", 16, coef_rounding="nearest")
    assert near.quantise_coef(0.3 * step) == 0 and near.quantise_coef(2.6 * step) == 3


def test_source_errors():
    with pytest.raises(ValueError, match=r"^Source must be one of gaussian, uniform, pezo, "
                                         r"pezo-sim, board, not 'sobol'$"):
        make_source("sobol", 10)
    with pytest.raises(ValueError, match=r"^Source 'board' needs a serial port \(--port DEVICE"):
        make_source("board", 10)
    with pytest.raises(ValueError, match=r"^Reuse strategy must be one of none, pregen, "
                                         r"onthefly, not 'cache'$"):
        engine_config(10, reuse="cache")
    with pytest.raises(ValueError, match=r"^Stepping mode \(step\) must be one of 'leap', "
                                         r"not 'jump'$"):
        engine_config(10, step="jump")
    with pytest.raises(ValueError, match=r"^Step mode 'shift' was removed: its consecutive "
                                         r"numbers share w-1 bits"):
        TrainConfig(step="shift").resolved()
    with pytest.raises(ValueError, match=r"^TrainConfig field 'stepping' was renamed 'step'"):
        TrainConfig(stepping="leap").resolved()
    with pytest.raises(ValueError, match=r"^mu 1e-07 rounds to 0 in the coefficient register "
                                         r"\(resolution 2\^-20\); use a larger mu$"):
        make_source("pezo", 16).set_mu(1e-7)
    with pytest.raises(ValueError, match=r"^Stochastic rounding needs an engine built with "
                                         r"stochastic=True$"):
        EngineSource(16, engine_config(16, stochastic=False))
    with pytest.raises(ValueError, match=r"^Engine depth 16 cannot hold 20 parameters$"):
        EngineSource(20, engine_config(16))
    with pytest.raises(ValueError, match=r"^Source 'pezo' runs the golden model; use source "
                                         r"'pezo-sim' for the Amaranth simulator$"):
        make_source("pezo", 16, engine="amaranth")
    with pytest.raises(ValueError, match=r"^Perturbation sign must be \+1 or -2, not -1$"):
        FloatSource(4).perturb(None, -1)
    assert engine_config(650, lanes=4).depth == 652
    assert engine_config(650, lanes=4, reuse="onthefly").generator.lanes == 2


# Hardware (Amaranth simulator) = golden engine, through the trainer ------------------------------

@pytest.mark.parametrize("reuse,model", [("pregen", "logreg"), ("none", "logreg"),
                                         ("onthefly", "mlp")])
def test_pezo_sim_is_bit_identical_to_golden_over_training(reuse, model):
    """20+ training steps on wine (logreg: 42 weights, depth 44; mlp with 3 hidden units: 54
    weights, depth 56): the hardware in the Amaranth simulator, the plain golden model, the
    batched golden model and the fused golden model (the default) end with the same weight bits
    and the same learning curve."""
    cfg = TrainConfig(dataset="wine", model=model, hidden=3, reuse=reuse, steps=22, q=1,
                      pool_size=64 if reuse == "pregen" else None, eval_every=4, seed=5,
                      lr=0.05, mu=0.01, weight_decay=1e-3 if reuse == "none" else 0.0)
    r = cfg.resolved()
    n = make_model(model, 13, 3, hidden=3).n_params
    weights, curves = [], []
    for engine in ("amaranth", "golden", "batched", "fused"):
        src = make_source("pezo-sim" if engine == "amaranth" else "pezo", n, reuse=reuse,
                          pool_size=r.pool_size, shared=r.shared,
                          engine=None if engine == "amaranth" else engine)
        res = train(cfg, src=src)
        weights.append(src.eng.read_weights(raw=True))
        curves.append([(p["train_loss"], p["val_loss"]) for p in res.curve])
        assert res.steps_run == 22 and src.stats["saturated_passes"] == 0
    assert all((w == weights[0]).all() for w in weights[1:])
    assert curves[0] == curves[1] == curves[2] == curves[3]
    assert curves[0][-1][0] < curves[0][0][0]        # and it learned something


# Trainer -----------------------------------------------------------------------------------------

def test_pezo_trains_digits_beyond_chance():
    res = train(dataset="digits", model="logreg", source="pezo", steps=400, seed=1)
    assert res.initial_test_acc < 0.2
    assert res.test_acc > 0.7                  # chance is 0.1
    assert res.curve[-1]["train_loss"] < 0.7 * np.log(10)
    assert res.forward_passes == 800 and res.stats.get("saturated_passes", 0) == 0


def test_gaussian_is_reproducible_with_a_seed():
    kw = dict(dataset="breast_cancer", model="mlp", source="gaussian", steps=150, eval_every=10)
    a, b, c = train(seed=3, **kw), train(seed=3, **kw), train(seed=4, **kw)
    assert a.curve == b.curve and a.test_loss == b.test_loss
    assert a.curve != c.curve


def test_q_queries_weight_decay_schedule_and_early_stopping():
    res = train(dataset="wine", model="logreg", source="pezo", reuse="pregen", pool_size=256,
                steps=100, q=3, weight_decay=1e-2, schedule="cosine", eval_every=10, lr=0.05)
    assert res.forward_passes == 2 * 3 * 100 and not res.stopped_early
    assert res.curve[-1]["train_loss"] < res.curve[0]["train_loss"] < np.log(3)
    # a learning rate whose coefficients round to 0: the weights never change, so the validation
    # loss never improves after the first evaluation and patience 2 stops at the third
    res = train(dataset="wine", model="logreg", source="pezo", steps=300, lr=1e-9,
                coef_rounding="nearest", patience=2, eval_every=10)
    assert res.stopped_early and res.steps_run == 30 and res.best_step == 10
    assert res.stats["coef_zero"] == 30
    assert lr_at("cosine", 1.0, 0, 10) == 1.0 and lr_at("cosine", 1.0, 5, 10) == pytest.approx(0.5)
    assert lr_at("step", 1.0, 5, 10) == pytest.approx(0.1)
    assert lr_at("step", 1.0, 8, 10) == pytest.approx(0.01)
    assert lr_at("constant", 0.3, 9, 10) == 0.3


@pytest.mark.parametrize("overrides,msg", [
    (dict(dataset="iris"), r"^Dataset must be one of digits, breast_cancer, wine, synthetic, "
                           r"not 'iris'$"),
    (dict(model="cnn"), r"^Model must be one of logreg, mlp, not 'cnn'$"),
    (dict(source="sobol"), r"^Source must be one of gaussian, uniform, pezo, pezo-sim, board, "
                           r"not 'sobol'$"),
    (dict(schedule="linear"), r"^Schedule must be one of constant, cosine, step, "
                              r"not 'linear'$"),
    (dict(steps=0), r"^Step count \(steps\) must be an integer >= 1, not 0$"),
    (dict(lr=-1.0), r"^Learning rate \(lr\) must be a positive number, not -1\.0$"),
    (dict(port="/dev/ttyUSB1"), r"^A port applies to source 'board' only, not 'pezo'$"),
])
def test_train_config_errors(overrides, msg):
    with pytest.raises(ValueError, match=msg):
        train(**overrides)


def test_cli_train_writes_log_and_plot(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="pezo")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["train", "--dataset", "wine", "--source", "pezo", "--reuse",
                              "pregen", "--pool-size", "128", "--steps", "60", "--seed", "2",
                              "--out", str(tmp_path), "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "pezo pregen N=128 leap independent lanes m=4 Q4.12 on wine / logreg 13->3" in out
    assert "forward passes 120" in out
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["config"]["pool_size"] == 128 and log["steps_run"] == 60
    assert log["curve"][-1]["step"] == 60
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--source", "sobol"])
    old = parser.parse_args(["train", "--stepping", "leap"])
    with pytest.raises(ValueError, match=r"^--stepping was renamed --step"):
        old.func(old)


def test_parity_report_smoke(tmp_path):
    from pezo.host.parity import run_study
    from pezo.host.parity_report import write_report
    study = run_study(quick=True, seeds=2, jobs=1, pairs=[("wine", "logreg")],
                      variants=["gaussian", "pezo none, independent lanes"], pool_sizes=[],
                      progress=False)
    summary, _ = write_report(study, tmp_path, True, 2, 1.0, "test")
    md = (tmp_path / "parity.md").read_text()
    assert "| wine | logreg | 600 | 2 |" in md and "| pezo none, independent lanes |" in md
    assert "paired difference [95 % CI]" in md
    assert (tmp_path / "parity_wine_logreg.png").exists()
    cells = summary["wine/logreg"]
    assert cells["gaussian"]["forward_passes"] == cells["pezo none, independent lanes"]["forward_passes"] == 1200
    assert json.loads((tmp_path / "parity.json").read_text())["setting"] == "quick"


def test_paired_interval_verdicts():
    """t-interval of paired differences (exact: mean 0.1, sd 0.1, n = 4: half-width
    t(0.975, 3) * 0.1 / 2 = 0.159) and the equivalence verdicts."""
    from pezo.host.parity import paired_interval
    d = paired_interval([0.0, 0.1, 0.2, 0.1])
    assert d["n"] == 4 and d["mean"] == pytest.approx(0.1)
    sd = np.std([0.0, 0.1, 0.2, 0.1], ddof=1)
    assert d["hi"] - d["mean"] == pytest.approx(3.182446 * sd / 2, rel=1e-5)
    assert d["verdict"] == "within 0.5"
    assert paired_interval([-2.0, -2.1, -1.9])["verdict"] == "behind"
    assert paired_interval([2.0, 2.1, 1.9])["verdict"] == "ahead"
    assert paired_interval([-3.0, 3.0, 0.5])["verdict"] == "undecided"


@pytest.mark.regress
def test_parity_quick_study(tmp_path):
    from pezo.host.parity_cli import main
    assert main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    md = (tmp_path / "parity.md").read_text()
    assert "## Pool-size study" in md and (tmp_path / "parity_pool.png").exists()


# Ablation (why pezo trails on digits) -------------------------------------------------------------

def test_lfsr_float_source_uses_the_engine_z():
    """lfsr-float perturbs float weights with exactly the z of the golden generator (shared
    bank, leap, default scaler) that the pezo source uses."""
    from pezo.host.ablation import LfsrFloatSource
    from pezo.sim.generator import generate
    src = LfsrFloatSource(42)
    g = engine_config(42, shared=True).generator
    seed = derive_seed(5, 3, 0, 0)
    ref = generate(g, seed, 44)[:42] * 2.0 ** -g.z_frac
    assert np.array_equal(src.z(seed), ref)
    exact = LfsrFloatSource(42, exact_alpha=True).z(seed)
    assert np.abs(exact - ref).max() < 0.02 and abs(np.std(exact) / np.std(ref) - 1) < 0.01
    # the pass sequence of a float source: theta+-, restore, update
    src.reset(np.zeros(42))
    src.set_mu(1e-2)
    q = src.begin(seed)
    pair = src.perturb_pair(q)
    assert np.allclose(pair[0], 1e-2 * ref) and np.allclose(src.params(), 0)


def test_ablation_resumes_and_renders(tmp_path, monkeypatch):
    from pezo.host import ablation
    from pezo.host.parity_report import ablation_section
    assert ablation_section(tmp_path) == []
    calls = []

    def fake(name, model, seed, dataset="digits"):
        calls.append((name, model, seed))
        acc = {"gaussian": 0.95, "pezo Q4.12": 0.94, "lfsr-float": 0.945}[name] + 0.001 * seed
        return {"config": name, "dataset": dataset, "model": model, "seed": seed,
                "test_acc": acc, "test_loss": 0.2, "val_acc": 0.93, "val_loss": 0.25,
                "train_loss": 0.15, "forward_passes": 16000, "steps": 8000, "wall_time": 1.0,
                "stats": {}}
    monkeypatch.setattr(ablation, "_one", fake)
    names = ["gaussian", "pezo Q4.12", "lfsr-float"]
    ablation.run_ablation(tmp_path, names, ["logreg"], 2, progress=False)
    assert len(calls) == 6
    ablation.run_ablation(tmp_path, names, ["logreg"], 3, progress=False)
    assert len(calls) == 9 and {c[2] for c in calls[6:]} == {2}      # only the new seed
    rows = {r["config"]: r for r in ablation.summarise(
        json.loads((tmp_path / ablation.FILE).read_text())["runs"])}
    assert rows["lfsr-float"]["paired_ref"] == pytest.approx(0.5)
    assert rows["pezo Q4.12"]["delta_baseline"] == pytest.approx(-1.0)
    md = "\n".join(ablation_section(tmp_path))
    assert "### Why pezo trails on digits" in md
    assert "| logreg | lfsr-float | 3 | 94.60 +- 0.08 | 94.60 | -0.50 +- 0.00 | +0.50 +- 0.00 |" in md
    assert "| logreg | gaussian | 3 | 95.10 +- 0.08 | 95.10 | - | +1.00 +- 0.00 |" in md
