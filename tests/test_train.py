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
from pezo.host.perturb import (BatchedGoldenTransport, EngineSource, FloatSource,
                               bank_first_cycles, derive_seed, engine_config, make_source,
                               pool_of)
from pezo.host.train import TrainConfig, lr_at, register, train
from pezo.sim.bank import BankModel
from pezo.sim.engine import Op, encode_signed
from pezo.sim.reuse import ReuseModel

# Data --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,sizes,total", [
    ("digits", (1077, 360, 360), 1797),
    ("breast_cancer", (341, 114, 114), 569),
    ("wine", (106, 36, 36), 178),
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
                                         r"not 'mnist'$"):
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
    assert (mlp.init(4) == mlp.init(4)).all()


def test_model_errors_and_depth():
    with pytest.raises(ValueError, match=r"^Model must be one of logreg, mlp, not 'cnn'$"):
        make_model("cnn", 4, 2)
    with pytest.raises(ValueError, match=r"^Activation must be one of tanh, relu, not 'gelu'$"):
        Model("mlp", 4, 2, activation="gelu")
    with pytest.raises(ValueError, match=r"^Hidden size must be a positive integer, not 0$"):
        Model("mlp", 4, 2, hidden=0)
    with pytest.raises(ValueError, match=r"^Class count must be at least 2, not 1$"):
        Model("logreg", 4, 1)
    assert engine_depth(650, 4) == 652 and engine_depth(64, 8) == 64
    with pytest.raises(ValueError, match=r"^Model with 2000000 parameters does not fit the engine "
                                         r"\(at most 1048576 weights\); use a smaller model$"):
        engine_depth(2_000_000, 4)


# The batched golden transport is the golden model ------------------------------------------------

BANKS = [G(lanes=4), G(lanes=4, step="shift"), G(lanes=4, shared=True),
         G(lanes=2, reuse="onthefly", out_lanes=8), G(lanes=4, reuse="pregen", pool_size=64),
         G(lanes=3, width=12, state_bits=71, shared=True, step="shift"),
         G(lanes=1, width=8, z_int=2, z_frac=6, scale="fixed")]


@pytest.mark.parametrize("g", BANKS, ids=lambda g: g.name())
def test_bank_first_cycles_and_pool_equal_the_models(g):
    seeds = [0, 5, 2**31 + 3]
    for rotate in (False, True):
        out = bank_first_cycles(g, seeds, 37, rotate=rotate)
        for s, block in zip(seeds, out):
            assert (block == BankModel(g, s, rotate=rotate).next(37)).all()
    if g.reuse == "pregen":
        for s in seeds:
            assert (pool_of(g, s) == ReuseModel(g, s).pool).all()


@pytest.mark.parametrize("g", BANKS, ids=lambda g: g.name())
@pytest.mark.parametrize("stochastic", [True, False])
def test_batched_golden_transport_is_bit_exact(g, stochastic):
    """MeZO command scripts (and passes without a reseed, rewinds, a scale change, bad seeds):
    weights and status equal the plain golden model after every command."""
    cfg = E(generator=g, depth=g.out_lanes * 13, stochastic=stochastic)
    a, b = GoldenTransport(cfg), BatchedGoldenTransport(cfg)
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
    assert src.quantise_coef(0.3 * step, 12) == src.quantise_coef(0.3 * step, 12)
    near = make_source("pezo", 16, coef_rounding="nearest")
    assert near.quantise_coef(0.3 * step) == 0 and near.quantise_coef(2.6 * step) == 3


def test_source_errors():
    with pytest.raises(ValueError, match=r"^Source must be one of gaussian, uniform, pezo, "
                                         r"pezo-sim, not 'sobol'$"):
        make_source("sobol", 10)
    with pytest.raises(ValueError, match=r"^Reuse strategy must be one of none, pregen, "
                                         r"onthefly, not 'cache'$"):
        engine_config(10, reuse="cache")
    with pytest.raises(ValueError, match=r"^Stepping mode must be one of leap, shift, "
                                         r"not 'jump'$"):
        engine_config(10, stepping="jump")
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
    weights, depth 56): the hardware in the Amaranth simulator, the plain golden model and the
    batched golden model end with the same weight bits and the same learning curve."""
    cfg = TrainConfig(dataset="wine", model=model, hidden=3, reuse=reuse, steps=22, q=1,
                      pool_size=64 if reuse == "pregen" else None, eval_every=4, seed=5,
                      lr=0.05, mu=0.01, weight_decay=1e-3 if reuse == "none" else 0.0)
    r = cfg.resolved()
    n = make_model(model, 13, 3, hidden=3).n_params
    weights, curves = [], []
    for engine in ("amaranth", "golden", "batched"):
        src = make_source("pezo-sim" if engine == "amaranth" else "pezo", n, reuse=reuse,
                          pool_size=r.pool_size, shared=r.shared,
                          engine=None if engine == "amaranth" else engine)
        res = train(cfg, src=src)
        weights.append(src.eng.read_weights(raw=True))
        curves.append([(p["train_loss"], p["val_loss"]) for p in res.curve])
        assert res.steps_run == 22 and src.stats["saturated_passes"] == 0
    assert (weights[0] == weights[1]).all() and (weights[1] == weights[2]).all()
    assert curves[0] == curves[1] == curves[2]
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
    (dict(dataset="iris"), r"^Dataset must be one of digits, breast_cancer, wine, not 'iris'$"),
    (dict(model="cnn"), r"^Model must be one of logreg, mlp, not 'cnn'$"),
    (dict(source="sobol"), r"^Source must be one of gaussian, uniform, pezo, pezo-sim, "
                           r"not 'sobol'$"),
    (dict(schedule="linear"), r"^Schedule must be one of constant, cosine, step, "
                              r"not 'linear'$"),
    (dict(steps=0), r"^Step count \(steps\) must be an integer >= 1, not 0$"),
    (dict(lr=-1.0), r"^Learning rate \(lr\) must be a positive number, not -1\.0$"),
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
    assert "pezo pregen N=128 leap shared bank m=4 Q4.12 on wine / logreg 13->3" in out
    assert "forward passes 120" in out
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["config"]["pool_size"] == 128 and log["steps_run"] == 60
    assert log["curve"][-1]["step"] == 60
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--source", "sobol"])


def test_parity_report_smoke(tmp_path):
    from pezo.host.parity import run_study, write_report
    study = run_study(quick=True, seeds=1, jobs=1, pairs=[("wine", "logreg")],
                      variants=["gaussian", "pezo none leap"], pool_sizes=[], progress=False)
    summary, _ = write_report(study, tmp_path, True, 1, 1.0, "test")
    md = (tmp_path / "parity.md").read_text()
    assert "| wine | logreg | 600 |" in md and "| pezo none leap |" in md
    assert (tmp_path / "parity_wine_logreg.png").exists()
    cells = summary["wine/logreg"]
    assert cells["gaussian"]["forward_passes"] == cells["pezo none leap"]["forward_passes"] == 1200
    assert json.loads((tmp_path / "parity.json").read_text())["setting"] == "quick"


@pytest.mark.regress
def test_parity_quick_study(tmp_path):
    from pezo.host.parity import main
    assert main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    md = (tmp_path / "parity.md").read_text()
    assert "## Pool-size study" in md and (tmp_path / "parity_pool.png").exists()
