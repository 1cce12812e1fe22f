"""Gaussian baselines: hardware vs golden model (bit-exact, random stalls, reseeding), cocotb on
the generated Verilog, statistical checks, and parameter errors."""

import math
import random

import numpy as np
import pytest

from pezo.hw.gauss import BoxMullerGenerator, CLTGenerator, make_gauss
from pezo.sim.gauss import GaussConfig as GC, generate, stat_checks
from tests.simutil import collect, run

CONFIGS = [GC(kind="clt", k=4, lanes=1), GC(kind="clt", k=8, lanes=4), GC(kind="clt", k=12, lanes=4),
           GC(kind="boxmuller", lanes=2), GC(kind="boxmuller", lanes=4, z_int=4, z_frac=12)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name())
def test_hardware_matches_golden_model_with_stalls_and_reseed(cfg):
    dut = make_gauss(cfg)
    got = {}

    async def tb(ctx):
        for seed, key, prob in ((7, "a", 0.6), (123456, "b", 0.3), (7, "c", 1.0)):
            ctx.set(dut.seed, seed)
            ctx.set(dut.seed_load, 1)
            await ctx.tick()
            ctx.set(dut.seed_load, 0)
            got[key] = await collect(ctx, dut.o, 300, cfg.lanes, rng=random.Random(seed),
                                     ready_prob=prob)

    run(dut, tb)
    for key, seed in (("a", 7), ("b", 123456), ("c", 7)):
        want = generate(cfg, seed, 300 * cfg.lanes).reshape(300, cfg.lanes)
        assert (got[key] == want).all(), key
    assert (got["a"] == got["c"]).all()


def test_latency():
    """A seed load, then ready high: the first value is valid `latency` cycles later."""
    for cfg in (GC(kind="clt", k=4), GC(kind="boxmuller")):
        dut = make_gauss(cfg)
        seen = []

        async def tb(ctx):
            ctx.set(dut.o.ready, 1)
            ctx.set(dut.seed, 5)
            ctx.set(dut.seed_load, 1)
            await ctx.tick()
            ctx.set(dut.seed_load, 0)
            for c in range(6):
                seen.append(ctx.get(dut.o.valid))
                await ctx.tick()

        run(dut, tb)
        assert seen.index(1) == dut.latency, (cfg.kind, seen)


def _stats(cfg):
    z = generate(cfg, 2024, 1_000_000) / float(1 << cfg.z_frac)
    return stat_checks(z)


@pytest.mark.parametrize("k", [4, 8, 12])
def test_clt_statistics(k):
    """Sum of k uniforms: mean 0, variance 1, excess kurtosis -1.2/k (a known property of the
    Irwin-Hall distribution), which fails the normal kurtosis check; the tails are too thin."""
    s = _stats(GC(kind="clt", k=k, z_int=4, z_frac=12))
    n = 1_000_000
    assert s["mean"]["pass"] and s["variance"]["pass"]
    assert s["excess_kurtosis"]["value"] == pytest.approx(-1.2 / k, abs=4 * math.sqrt(24 / n))
    assert not s["excess_kurtosis"]["pass"] and not s["passed"]
    assert s["tail4"]["value"] < s["tail4"]["expected"]
    if k == 4:      # |sum of 4 uniforms| <= 2 sqrt 3 = 3.46 sigma: nothing beyond 4
        assert s["tail4"]["value"] == 0


def test_box_muller_statistics():
    """The segmented radius table reaches 4.7 sigma: every check passes in Q4.12; in Q3.13 the
    output saturates at 4, so the 4-sigma tail is empty and that check fails."""
    s = _stats(GC(kind="boxmuller", z_int=4, z_frac=12))
    assert s["passed"], s
    s13 = _stats(GC(kind="boxmuller", z_int=3, z_frac=13))
    assert s13["tail4"]["value"] == 0 and not s13["tail4"]["pass"]


def test_stat_checks_on_true_normal_and_uniform():
    rng = np.random.default_rng(1)
    assert stat_checks(rng.standard_normal(1_000_000))["passed"]
    u = stat_checks(rng.uniform(-math.sqrt(3), math.sqrt(3), 1_000_000))
    assert not u["passed"] and u["variance"]["pass"] and u["tail3"]["value"] == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="ziggurat"), r"^Gaussian baseline kind must be one of clt, boxmuller, not 'ziggurat'$"),
    (dict(lanes=0), r"^Lane count \(lanes\) must be an integer in 1\.\.16, not 0$"),
    (dict(k=1), r"^CLT uniforms per value \(k\) must be an integer in 2\.\.16, not 1$"),
    (dict(k=2.0), r"^CLT uniforms per value \(k\) must be an integer, not 2\.0$"),
    (dict(z_int=9), r"^Integer bits of z \(z_int\) must be an integer in 2\.\.8, not 9$"),
    (dict(z_frac=17), r"^Fraction bits of z \(z_frac\) must be an integer in 4\.\.16, not 17$"),
    (dict(seed_width=16), r"^Seed width \(seed_width\) must be 32 or 64, not 16$"),
    (dict(kind="boxmuller", lanes=3), r"^Box-Muller gives values in pairs: lanes must be even, not 3$"),
    (dict(r_index_bits=9), r"^Box-Muller radius mantissa bits \(r_index_bits\) must be an integer in 2\.\.8, not 9$"),
])
def test_parameter_errors(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        GC(**kwargs)


def test_component_type_errors():
    with pytest.raises(TypeError, match=r"^Configuration must be a GaussConfig, not 3$"):
        make_gauss(3)
    with pytest.raises(TypeError, match=r"^Configuration must be a GaussConfig, not 3$"):
        CLTGenerator(3)
    with pytest.raises(ValueError, match=r"^Count must be a non-negative integer, not -1$"):
        generate(GC(), 1, -1)
    with pytest.raises(ValueError, match=r"^Statistical checks need at least 1000 samples, not 10$"):
        stat_checks(np.zeros(10))


from dataclasses import asdict  # noqa: E402

from tests.test_cocotb import SIMS, _run_cocotb  # noqa: E402


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("values", [pytest.param(10_000, id="10k"),
                                    pytest.param(100_000, id="100k", marks=pytest.mark.regress)])
@pytest.mark.parametrize("cfg", [GC(kind="clt", k=12, lanes=4), GC(kind="boxmuller", lanes=4,
                                                                    z_int=4, z_frac=12)],
                         ids=lambda c: c.name())
def test_gauss_cocotb(cfg, values, sim):
    """The generated Verilog equals the golden model, with 30 % stalls and a reseed half way:
    10,000 values in `make test`, 100,000 in `make regress` (cocotb's per-cycle callbacks make
    the long runs minutes each)."""
    text = _run_cocotb(sim, "pezo_gauss", make_gauss(cfg), f"gauss-{cfg.name()}-{sim}",
                       "pezo.sim.cocotb_gauss_tb",
                       {"config": asdict(cfg), "seeds": [0x5EED, 987654321], "values": values,
                        "ready_prob": 0.7, "rng_seed": 3})
    assert 'name="gauss_matches_golden_model"' in text
