"""The training design's power workload (issue 25, energy): the files the gate-level testbench
loads hold exactly the host's LOAD and TRAIN payloads, and the estimate runs end to end (the
whole design at gate level: `make regress`)."""

import json
import re

import numpy as np
import pytest

from pezo.host.ontrain import chip_data
from pezo.power.train_workload import RUN, train_workload
from pezo.sim.ontrain import OnChipConfig, TrainerConfig, data_image, train_registers


def _words(path):
    """32-bit hex beats back to 16-bit words, lane 0 first."""
    out = []
    for line in path.read_text().split():
        v = int(line, 16)
        out += [v & 0xFFFF, v >> 16]
    return np.array(out, dtype=np.int64)


def test_workload_files_are_the_host_payloads(tmp_path):
    cfg = TrainerConfig()
    tb_for, desc = train_workload(cfg, tmp_path, steps=1)
    data = chip_data("digits", cfg.feature_bits)
    image, _ = data_image(data)
    got = _words(tmp_path / "image.hex")
    assert np.array_equal(got[:len(image)], image) and not got[len(image):].any()
    table = _words(tmp_path / "table.hex")
    assert np.array_equal(table, data.table.reshape(-1) & 0xFFFF)
    fields = train_registers(data, OnChipConfig(steps=2, eval_every=2, **RUN)).fields()
    bits = sum(int(w) << (16 * i) for i, w in enumerate(_words(tmp_path / "train.hex")))
    from pezo.hw.ontrain import train_layout
    assert train_layout().const(fields).as_bits() == bits
    tb = tb_for({"clk"}, "")
    assert tb.count("WINDOW_START") == 1 and "WINDOW_END" in tb and "TRAIN_FAILED" in tb
    assert "15,275 data beats" in desc and "batch 64" in desc


@pytest.mark.synth
@pytest.mark.regress        # about 5 minutes: synthesis, a Verilator build of the netlist, a step
def test_energy_of_the_training_design(tmp_path, capsys):
    from pezo.cli import main
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"cycles": 48_000_000}))
    assert main(["energy", "--run", str(run), "--build", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    m = re.search(r"\): ([0-9.]+) mW \[([0-9.]+), ([0-9.]+)\]", out)
    mw, lo, hi = map(float, m.groups())
    assert 5 < lo <= mw <= hi < 200                        # a UP5K design at 48 MHz
    # a second of run at that power is that many mJ
    m2 = re.search(r"= 1\.00 s: (\d+) mJ", out)
    assert abs(int(m2.group(1)) - mw) <= 1
    assert "not in the model (no energy counted): 4 SB_SPRAM256KA" in out


def test_the_training_workload_is_for_the_ice40_only(tmp_path):
    from pezo.power.model import estimate_power
    got = estimate_power("train", TrainerConfig(), "ulx3s-85f", tmp_path)
    assert got == {"unavailable": "the training design's workload is simulated for the iCE40 "
                                  "UP5K (the calibrated model, SPRAM data memory) only: "
                                  "`pezo energy`"}
    assert not any(tmp_path.iterdir())                     # nothing was built
