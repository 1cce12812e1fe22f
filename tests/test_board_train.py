"""On-chip training on the Verilator-built board over a pseudo-terminal (issue 25): the training
design trains digits by itself, bit-identical to the integer golden model; its refusals reach
the host as clear errors; `pezo board train`. The whole 8,000-step run is in make regress."""

import json

import numpy as np
import pytest

from pezo.cli import main
from pezo.host.board_train import BoardTrainer, BoardTrainError, compare_with_golden, data_tag
from pezo.host.ontrain import chip_data, train_on_chip_model
from pezo.host.serial_link import SerialTransport
from pezo.sim.cosim.board import SimBoard
from pezo.sim.ontrain import OnChipConfig, TrainerConfig, train_registers

pytestmark = pytest.mark.board


@pytest.fixture(scope="module")
def trainer():
    cfg = TrainerConfig()
    board = SimBoard(cfg)
    t = SerialTransport(cfg.engine(), board.port, train=True, closing=board, timeout=5)
    lines = []
    yield BoardTrainer(cfg, t, progress=lines.append), lines
    t.close()


def test_training_on_the_board_is_bit_identical_to_the_golden_model(trainer):
    bt, lines = trainer
    data = chip_data()
    # a fresh board holds no data: TRAIN is refused, with the reason
    st = bt.status()
    assert not st["loaded"] and not st["running"]
    regs = train_registers(data, OnChipConfig(steps=10))
    with pytest.raises(BoardTrainError, match="TRAIN before LOAD"):
        bt.send_train(regs.fields())
    cfg = OnChipConfig(steps=30, eval_every=10, seed=5, schedule="step")
    run = bt.train(data, cfg)
    assert run.loaded and any("LOAD:" in m for m in lines)
    gold = train_on_chip_model(cfg)
    assert compare_with_golden(run, gold) == []
    assert run.log_complete and len(run.coef) == 30 and np.count_nonzero(run.coef) > 25
    assert bt.status()["data_tag"] == data_tag(data)
    # a second run finds its data on the board and is stopped early: still the golden model's
    lines.clear()
    cfg2 = OnChipConfig(steps=200, eval_every=7, seed=6, batch=32)
    run2 = bt.train(data, cfg2, stop_after=15)
    assert not run2.loaded and any("already on the board" in m for m in lines)
    assert 15 <= run2.steps_run < 200
    gold2 = train_on_chip_model(cfg2, stop_after=run2.steps_run)
    assert compare_with_golden(run2, gold2) == []


def test_refusals_reach_the_host(trainer):
    bt, _ = trainer
    data = chip_data()
    bt.load(data)
    regs = train_registers(data, OnChipConfig(steps=10)).fields()
    for change, why in (({"steps": 0}, "step count"), ({"batch_log2": 9}, "batch"),
                        ({"test_n": 0}, "split")):
        with pytest.raises(BoardTrainError, match=why):
            bt.send_train({**regs, **change})
        assert not bt.status()["running"]


@pytest.mark.regress
def test_the_whole_digits_run_on_the_board_is_bit_identical(trainer):
    """8,000 steps, every step's loss sums and coefficient, the 50 evaluations, the checkpoint
    and every weight equal to the golden model's (about 3-5 minutes)."""
    bt, _ = trainer
    data = chip_data()
    cfg = OnChipConfig(seed=1)
    run = bt.train(data, cfg)
    gold = train_on_chip_model(cfg)
    assert compare_with_golden(run, gold) == []
    assert run.log_complete and run.steps_run == 8000
    assert run.test_acc == gold.test_acc > 0.9


def test_pezo_board_train_command(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert main(["board", "train", "--port", "sim", "--steps", "12", "--eval-every", "6",
                 "--seed", "2", "--check", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "trained 12 steps" in text and "bit-identical to the golden model" in text
    run = json.loads(out.read_text())
    assert run["steps_run"] == 12 and run["golden_identical"] is True
    assert len(run["coef"]) == 12 and len(run["weights"]) == 650


def test_pezo_board_train_with_own_data(tmp_path, capsys):
    """issue 26: your own data through the same loader onto the chip: digits written as a CSV
    (string labels, the label column first) trains bit-identically to the golden model of the
    same file, and the run says how much of the data SPRAM it fills."""
    import pandas as pd
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    df = pd.DataFrame(X.astype(int), columns=[f"px{i}" for i in range(64)])
    df.insert(0, "digit", [f"d{v}" for v in y])
    path = tmp_path / "digits.csv"
    df.to_csv(path, index=False)
    assert main(["board", "train", "--port", "sim", "--data", str(path), "--label", "digit",
                 "--steps", "8", "--eval-every", "4", "--check"]) == 0
    cap = capsys.readouterr()
    assert "bit-identical to the golden model" in cap.out
    assert f"data: {path}, 1,797 samples x 64 features at 4 bits = 30,549 of 49,152 SPRAM " \
           f"words (62.2 %), 10 classes" in cap.err


@pytest.mark.regress            # a Verilator build of the design for 30 features, 2 classes
def test_pezo_board_train_quantised_float_data(capsys):
    """Float features (breast_cancer) quantised to 4-bit codes train on a board built for their
    shape, bit-identically to the golden model of the same quantised data."""
    assert main(["board", "train", "--port", "sim", "--data", "sklearn:breast_cancer",
                 "--quantise", "--steps", "40", "--batch", "32", "--eval-every", "20",
                 "--check"]) == 0
    cap = capsys.readouterr()
    assert "bit-identical to the golden model" in cap.out
    assert "569 samples x 30 features at 4 bits" in cap.err and "2 classes" in cap.err


@pytest.mark.regress            # a Verilator build of the design for 13 features, 4 classes
def test_pezo_board_train_odd_class_count(capsys):
    """wine's 3 classes on a design that computes classes two at a time: the data takes a
    fourth class no sample has, in the design and in the golden model alike."""
    assert main(["board", "train", "--port", "sim", "--data", "sklearn:wine", "--quantise",
                 "--steps", "40", "--batch", "16", "--eval-every", "20", "--check"]) == 0
    cap = capsys.readouterr()
    assert "bit-identical to the golden model" in cap.out
    assert "178 samples x 13 features at 4 bits" in cap.err and "4 classes" in cap.err
