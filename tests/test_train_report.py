"""What a training run reports and which defaults it runs with (issue 23): saturation counts,
zero-rounded updates, per-method defaults, a board's engine on every engine source, set-up time
apart from training time, the serial link's counters, and the step seeds the docs describe."""

import argparse
import json
from pathlib import Path
import re
import time
import warnings

import pytest

from pezo.boards.protocol import BridgeModel
from pezo.boards.targets import get_board
from pezo.host import train as train_mod
from pezo.host.perturb import EngineSource, FloatSource, derive_seed, engine_config
from pezo.host.serial_link import SerialTransport
from pezo.host.train import DEFAULTS, TrainConfig, train
from pezo.host.train_cli import register, summary

ROOT = Path(__file__).resolve().parent.parent
TrainingWarning = getattr(train_mod, "TrainingWarning", None)    # (None before issue 23)


def _quiet(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        return train(**kw)


# Saturation ---------------------------------------------------------------------------------------

def test_saturation_is_counted_reported_and_warned_about(tmp_path, capsys):
    """MeZO in Q1.7 at a learning rate that drives weights into the rails: the result, the
    warning, the CLI summary and log.json give the engine's own count of saturated passes."""
    src = EngineSource(275, engine_config(275, weight_format="Q1.7"))
    with pytest.warns(TrainingWarning, match=r"engine passes saturated"):
        res = train(dataset="wine", model="mlp", steps=40, lr=0.5, mu=0.02, src=src)
    passes = src.stats["saturated_passes"]
    assert passes > 0 and res.saturation["saturated_passes"] == passes
    assert any(f"{passes} engine passes saturated" in w for w in res.warnings)
    assert f"saturation: {passes} saturated passes" in summary(res)
    parser = argparse.ArgumentParser(prog="pezo")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", "--dataset", "wine", "--model", "mlp", "--weight-format",
                              "Q1.7", "--lr", "0.5", "--mu", "0.02", "--steps", "40", "--out",
                              str(tmp_path), "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    log = json.loads((tmp_path / "log.json").read_text())
    n = log["saturation"]["saturated_passes"]
    assert n > 0 and f"saturation: {n} saturated passes" in out
    assert "warning: mezo on wine/mlp, seed 0:" in out and log["warnings"]


def test_a_run_that_does_not_saturate_reports_zeros_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        res = train(dataset="wine", model="logreg", steps=30)
    assert res.saturation["saturated_passes"] == 0 and res.saturation["clipped_writes"] == 0
    assert not res.warnings
    assert train(dataset="wine", model="logreg", steps=5, source="gaussian").saturation == {}


# Zero-rounded updates -----------------------------------------------------------------------------

def test_zero_rounded_updates_are_the_coordinates_that_did_not_move():
    """DeepZero CGE watched at every step: the trainer's count (weights compared before and after
    each step) equals the engine source's own count of COORD updates that rounded to 0 (its
    probes of +-mu are 20 LSBs, never 0)."""
    res = _quiet(dataset="wine", model="mlp", algo="deepzero", steps=6, eval_every=1, lr=5e-3)
    u = res.updates
    assert u["watched_steps"] == 6 and u["coordinates"] == 6 * res.n_params
    assert u["zero"] == res.stats["coord_zero"] > 0
    assert u["fraction"] == pytest.approx(u["zero"] / u["coordinates"])


def test_an_update_below_the_grid_warns_and_a_working_one_does_not():
    kw = dict(dataset="wine", model="logreg", steps=50)
    with pytest.warns(TrainingWarning, match=r"rounded to nothing in Q4\.12 .* raise the "
                                             r"learning rate \(lr 1e-05\)"):
        low = train(lr=1e-5, **kw)
    assert low.updates["early_fraction"] > train_mod.ZERO_UPDATE_WARN
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        ok = train(**kw)
    assert ok.updates["early_fraction"] < train_mod.ZERO_UPDATE_WARN < low.updates["early_fraction"]
    assert "zero-rounded updates:" in summary(ok)


# Per-method defaults ------------------------------------------------------------------------------

def test_deepzero_cge_gets_its_learning_rate_and_explicit_values_win():
    data_lr = DEFAULTS[("wine", "mlp")]["lr"]
    c, applied = TrainConfig(dataset="wine", model="mlp", algo="deepzero").resolve()
    assert c.lr == 1.0 and applied["lr"] == {"value": 1.0, "from": "algo deepzero"}
    assert TrainConfig(dataset="wine", model="mlp", algo="deepzero",
                       lr=0.3).resolve()[1].get("lr") is None
    assert TrainConfig(dataset="wine", model="mlp", algo="deepzero", lr=0.3).resolved().lr == 0.3
    # masked RGE is MeZO: the data set's learning rate
    c, applied = TrainConfig(dataset="wine", model="mlp", algo="deepzero",
                             estimator="rge").resolve()
    assert c.lr == data_lr and applied["lr"]["from"] == "data set wine/mlp"


def test_deepzero_defaults_move_most_coordinates():
    """`pezo train --algo deepzero` with nothing else: the updates clear the Q4.12 grid (the data
    set's 5e-3 left 38-55 % of the coordinate updates at 0 in the first steps)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        res = train(dataset="wine", model="mlp", algo="deepzero", steps=5, eval_every=1)
    assert res.defaults["lr"]["from"] == "algo deepzero"
    assert res.updates["early_fraction"] < train_mod.ZERO_UPDATE_WARN


def test_elasticzo_int8_needs_no_activation_option_and_the_log_says_so(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="pezo")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", "--dataset", "wine", "--model", "mlp", "--algo",
                              "elasticzo-int8", "--steps", "20", "--out", str(tmp_path),
                              "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["config"]["activation"] == "relu"
    assert log["defaults"]["activation"] == {"value": "relu", "from": "algo elasticzo-int8"}
    assert re.search(r"defaults applied: .*activation relu.*\(algo elasticzo-int8\)", out)
    # an explicit choice still wins (and this method refuses it)
    with pytest.raises(ValueError, match=r"needs activation 'relu', not 'tanh'$"):
        train(dataset="wine", model="mlp", algo="elasticzo-int8", activation="tanh", steps=2)


# --board on every engine source -------------------------------------------------------------------

def test_board_engine_on_the_golden_model_and_the_simulated_hardware():
    """--board NAME with source pezo and pezo-sim runs that board's default engine (here the
    iCEstick's: 1 lane, Q2.6, 8-bit coefficients, no stochastic rounding), the two bit for bit
    alike."""
    b = get_board("icestick").default
    kw = dict(dataset="wine", model="logreg", board="icestick", steps=3, eval_every=1, seed=4)
    gold, sim = train(source="pezo", **kw), train(source="pezo-sim", **kw)
    for r in (gold, sim):
        assert r.depth == b.depth and f"m={b.lanes} Q{b.w_int}.{b.w_frac}" in r.source
        assert r.defaults["weight_format"]["from"] == "board icestick"
        assert r.config["rounding"] == "nearest"
    assert [p["train_loss"] for p in gold.curve] == [p["train_loss"] for p in sim.curve]
    assert gold.test_loss == sim.test_loss


def test_distributed_training_refuses_a_board_it_would_ignore():
    parser = argparse.ArgumentParser(prog="pezo")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", "--board", "ice40", "--layout", "2x1"])
    with pytest.raises(ValueError, match=r"^Distributed training takes --board with source "
                                         r"'board' only, not 'pezo'"):
        args.func(args)


@pytest.mark.parametrize("overrides,msg", [
    (dict(board="ice40", source="gaussian"), r"^A board gives the engine configuration of engine "
                                             r"sources \(pezo, pezo-sim, board\), not of source "
                                             r"'gaussian'$"),
    (dict(board="ice41"), r"^Board must be one of ice40, icebreaker, .*, not 'ice41'$"),
    (dict(board="ice40", weight_format="Q1.7"), r"^Board ice40's engine has Q4\.12 weights, not "
                                                r"Q1\.7: leave the weight format out with a "
                                                r"board$"),
    (dict(board="ice40", weights="spram"), r"^Board ice40's engine keeps its weights in 'bram', "
                                           r"not 'spram'"),
])
def test_board_option_errors(overrides, msg):
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**overrides).resolved()


# Set-up time and the link -------------------------------------------------------------------------

def test_setup_is_timed_apart_from_training(monkeypatch):
    """A source that takes 0.6 s to come up (as a board that is built and started does): the
    steps per second leave it out."""
    real = train_mod.make_source

    def slow(*a, **kw):
        time.sleep(0.6)
        return real(*a, **kw)

    monkeypatch.setattr(train_mod, "make_source", slow)
    res = train(dataset="wine", model="logreg", steps=20)
    assert res.steps_per_s > res.steps_run / (res.wall_time - 0.6)
    assert res.setup_time >= 0.6 and res.setup_time + res.train_time <= res.wall_time
    assert res.steps_per_s == pytest.approx(res.steps_run / res.train_time)


class BridgePort:
    """A serial port whose far end is the bridge's golden model: every byte counted."""

    def __init__(self, cfg):
        self.bridge, self.pending = BridgeModel(cfg), bytearray()
        self.frames = self.sent = self.received = 0

    def write(self, data):
        self.frames += 1
        self.sent += len(data)
        self.pending += self.bridge.feed(data)

    def read(self, n):
        out = bytes(self.pending[:n])
        del self.pending[:n]
        self.received += len(out)
        return out

    def reset_input_buffer(self):
        self.pending.clear()

    def close(self):
        pass


def test_link_counters_reach_the_result_and_the_summary():
    cfg = engine_config(42)
    port = BridgePort(cfg)
    link = SerialTransport(cfg, port, timeout=0.5)
    res = train(dataset="wine", model="logreg", steps=4, eval_every=2,
                src=EngineSource(42, cfg, link, rounding="stochastic"))
    assert res.link["frames"] == port.frames > 0
    numeric = {k for k, v in link.stats.items() if isinstance(v, (int, float))}
    assert set(res.link) == numeric            # every counter the transport keeps
    for key, seen in (("bytes_out", port.sent), ("bytes_in", port.received)):
        if key in res.link:
            assert res.link[key] == seen
    assert f"link: frames {port.frames}" in summary(res)
    assert train(dataset="wine", model="logreg", steps=2).link == {}


# The step seeds the docs describe -----------------------------------------------------------------

class _Recording(FloatSource):
    def __init__(self, n):
        super().__init__(n, "gaussian")
        self.seeds = []

    def begin(self, seed):
        self.seeds.append(seed)
        return super().begin(seed)


def _query_range(text, q):
    """The query indices i of 'for i in A..B' in the step's pseudo-code (B may be q or q-1)."""
    found = set()
    for lo, hi in re.findall(r"for i in (\d+)\.\.(q(?:-1)?):", text):
        found.add(tuple(range(int(lo), q + 1 if hi == "q" else q)))
    assert len(found) == 1, found
    return found.pop()


def test_documented_query_seeds_are_the_seeds_the_trainer_uses():
    q, seed, steps = 3, 7, 2
    src = _Recording(42)
    train(dataset="wine", model="logreg", steps=steps, q=q, seed=seed, src=src)
    for text in (train_mod.__doc__, (ROOT / "docs" / "training.md").read_text()):
        used = [derive_seed(seed, 3, t, i) for t in range(steps) for i in _query_range(text, q)]
        assert src.seeds == used
