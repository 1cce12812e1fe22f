# amaranth: UnusedElaboratable=no
# (some tests build components only to read properties or check constructor errors)
"""Gaussian baselines (:mod:`pezo.hw.gauss`, :mod:`pezo.sim.gauss`): hardware vs golden model
(bit-exact, random stalls, reseeding), cocotb on the generated Verilog, the fixed-point tables,
statistical checks, and every parameter error."""

import math
import random

import numpy as np
import pytest

from pezo.hw.lfsr import UniformBank

from pezo.config import ConfigError
from pezo.hw.gauss import BoxMullerGenerator, CLTGenerator, make_gauss
from pezo.sim import gauss as gm
from pezo.sim.gauss import GaussConfig as GC, GaussModel, generate, stat_checks
from tests.simutil import lanes_of, run
from tests.test_cocotb import SIMS, _run_cocotb


SIM_CONFIGS = [
    GC(kind="clt", k=4, lanes=1),
    GC(kind="clt", k=4, lanes=4),
    GC(kind="clt", k=8, lanes=1),
    GC(kind="clt", k=8, lanes=4),
    GC(kind="clt", k=12, lanes=1),
    GC(kind="clt", k=12, lanes=4),
    # narrow uniforms, few state bits, a scale below one LSB of z (exact left shift)
    GC(kind="clt", k=3, lanes=2, width=5, state_bits=9, z_int=4, z_frac=20, scale_digits=2),
    GC(kind="boxmuller", lanes=1),
    GC(kind="boxmuller", lanes=4),
    GC(kind="boxmuller", lanes=4, z_int=4, z_frac=12),
    # odd lanes > 1 (three half-rate units), the smallest angle table, a saturating format
    GC(kind="boxmuller", lanes=3, angle_bits=4, z_int=2, z_frac=6, state_bits=64, seed_width=64),
]


async def collect_checked(ctx, o, beats, lanes, rng, ready_prob):
    """Transfer ``beats`` beats with random ``ready``; also check the stream rule: a valid beat
    that is not taken stays valid and unchanged in the next cycle."""
    out, held = [], None
    while len(out) < beats:
        valid = ctx.get(o.valid)
        payload = lanes_of(ctx.get(o.payload), lanes) if valid else None
        if held is not None:
            assert valid and payload == held, "a stalled beat changed or vanished"
        ready = rng.random() < ready_prob
        ctx.set(o.ready, ready)
        if valid and ready:
            out.append(payload)
        held = payload if valid and not ready else None
        await ctx.tick()
    ctx.set(o.ready, 0)
    return np.array(out, dtype=np.int64).reshape(-1, lanes)


async def load_seed(ctx, dut, seed):
    ctx.set(dut.seed, seed)
    ctx.set(dut.seed_load, 1)
    await ctx.tick()
    ctx.set(dut.seed_load, 0)


@pytest.mark.parametrize("cfg", SIM_CONFIGS, ids=lambda c: c.name())
def test_hardware_matches_golden_model_with_stalls_and_reseed(cfg):
    """Reset gives the seed-0 stream; two seeds with random stalls (60 % and 25 % ready); loading
    the first seed again reproduces its stream exactly."""
    dut = make_gauss(cfg)
    got = {}
    seeds = ((1 << cfg.seed_width) - 7, 123456, (1 << cfg.seed_width) - 7)

    async def tb(ctx):
        got["reset"] = await collect_checked(ctx, dut.o, 40, cfg.lanes, random.Random(1), 0.5)
        for i, (seed, prob) in enumerate(zip(seeds, (0.6, 0.25, 0.9))):
            await load_seed(ctx, dut, seed)
            got[i] = await collect_checked(ctx, dut.o, 160, cfg.lanes, random.Random(i), prob)

    run(dut, tb, f"gauss_{cfg.name()}")
    assert (got["reset"] == GaussModel(cfg, 0).next(40)).all()
    for i, seed in enumerate(seeds):
        assert (got[i] == GaussModel(cfg, seed).next(160)).all(), (i, seed)
    assert (got[0] == got[2]).all()


@pytest.mark.parametrize("cfg", [GC(kind="clt", k=4, lanes=1), GC(kind="clt", k=12),
                                 GC(kind="clt", k=2, lanes=2), GC(kind="boxmuller"),
                                 GC(kind="boxmuller", lanes=1)], ids=lambda c: c.name())
def test_latency_property_matches_simulation(cfg):
    """With ``o.ready`` low throughout, the first valid beat comes ``latency`` cycles after the
    seed load (the generator's convention: cycle 1 is the one after the load's clock edge)."""
    dut = make_gauss(cfg)
    seen = []

    async def tb(ctx):
        await ctx.tick().repeat(30)            # the pipeline is full and stalled
        await load_seed(ctx, dut, 99)
        for cycle in range(1, dut.latency + 40):
            if ctx.get(dut.o.valid):
                seen.append(cycle)
                return
            await ctx.tick()

    run(dut, tb)
    assert seen == [dut.latency]
    mix = UniformBank(cfg.bank_config()).latency - 1      # the bank's seed mixing
    assert dut.latency == mix + (16 if cfg.kind == "boxmuller" else 3 + -(-(cfg.k - 1).bit_length() // 2))


def test_component_properties():
    c = CLTGenerator(GC(kind="clt", k=8, lanes=2, z_int=4, z_frac=12))
    assert (c.kind, c.lanes, c.k, c.z_int, c.z_frac, c.z_bits, c.seed_width) == \
        ("clt", 2, 8, 4, 12, 16, 32)
    assert c.tree_stages == 2
    # The CLT scale from the spec: the sum S of k uniform w-bit numbers has variance
    # k (4^w - 1) / 12, so z = S c / 2^w has unit variance for c = sqrt(12 / (k (1 - 4^-w))).
    w = c.config.width
    target = (12 / (8 * (1 - 4.0 ** -w))) ** 0.5
    realised = sum(s * 2.0 ** -t for s, t in c.digits)
    assert abs(realised / target - 1) < 2 ** -12 and len(c.digits) <= c.config.scale_digits
    b = BoxMullerGenerator(GC(kind="boxmuller", lanes=1, angle_bits=8))
    assert (b.units, b.full_rate, b.angle_bits) == (1, False, 8)
    assert BoxMullerGenerator(GC(kind="boxmuller", lanes=6)).units == 3


# Golden-model details --------------------------------------------------------------------------

def test_model_is_resumable_and_generate_truncates():
    for cfg in (GC(kind="clt", k=4, lanes=3), GC(kind="boxmuller", lanes=1),
                GC(kind="boxmuller", lanes=3)):
        whole = GaussModel(cfg, 5).next(1001)
        m = GaussModel(cfg, 5)
        parts = np.concatenate([m.next(n) for n in (1, 2, 0, 333, 665)])
        assert (parts == whole).all()
        count = whole.size - 2                  # not a whole number of beats for 3 lanes
        assert (generate(cfg, 5, count) == whole.reshape(-1)[:count]).all()
    cfg = GC(kind="boxmuller", lanes=1)
    small = GaussModel(cfg, 5)
    small.CHUNK = 7                             # many blocks of bank cycles: the same stream
    assert (small.next(1001) == GaussModel(cfg, 5).next(1001)).all()


def test_box_muller_pairs_and_half_rate_order():
    """Even lanes: lanes 2p, 2p+1 are unit p's cos and sin values; one lane: cos then sin of the
    same unit on consecutive beats (the same numbers as the 2-lane design's pairs)."""
    two = GaussModel(GC(kind="boxmuller", lanes=2), 77).next(500)
    one = GaussModel(GC(kind="boxmuller", lanes=1), 77).next(1000)
    assert (one.reshape(500, 2) == two).all()
    r2 = two[:, 0] ** 2 + two[:, 1] ** 2         # Q3.13 like R: z1^2 + z2^2 <= R^2
    assert r2.max() <= (gm.R_MAX + 2) ** 2


def test_box_muller_radius_accuracy_and_zero():
    """R = round(sqrt(-2 ln u) 2^13) within 2^-12 absolute for r >= 0.05, and within
    2^-10 everywhere (the sqrt steepens at u -> 1); u1 = 0 reads as u1 = 1 (the largest r)."""
    rng = np.random.default_rng(0)
    u1 = np.concatenate([rng.integers(0, 1 << 32, 200_000), np.arange(0, 4096),
                         (1 << 32) - 1 - np.arange(4096), 1 << np.arange(32),
                         (1 << np.arange(1, 33)) - 1])
    R = gm.bm_radius(u1)
    r = np.sqrt(-2 * np.log(np.maximum(u1, 1) / 2.0 ** 32))
    err = np.abs(R / 2.0 ** gm.R_FRAC - r)
    assert err[r >= 0.05].max() <= 2.0 ** -12
    assert err.max() <= 2.0 ** -10
    assert gm.bm_radius(np.array([0]))[0] == gm.bm_radius(np.array([1]))[0] == gm.R_MAX
    assert gm.R_MAX == round(math.sqrt(64 * math.log(2)) * 2 ** 13)     # 6.66 sigma
    st = gm.bm_radius(u1, stages=True)
    assert st["G"].min() >= 2 and st["G"].max() < 1 << 28
    assert st["s"].max() <= 13 and ((st["q"] >= 32) & (st["q"] < 128)).all()


def test_box_muller_tables_fit_the_hardware():
    cfg = GC(kind="boxmuller", angle_bits=12)
    t = gm.bm_tables(cfg)
    assert len(t["ln_a"]) == len(t["ln_b"]) == 64 and len(t["ln_e"]) == 32
    assert len(t["sq_a"]) == len(t["sq_b"]) == 128 and len(t["trig"]) == 1024
    assert max(t["ln_b"]) < 1 << 16 and max(t["sq_b"]) < 1 << 16       # 16 x 16 multiplies
    assert max(t["ln_a"]) < 1 << 22 and max(t["sq_a"]) < 1 << 23 and max(t["ln_e"]) < 1 << 27
    assert gm.R_MAX < 1 << 16 and max(t["trig"]) <= 1 << 15


@pytest.mark.parametrize("angle_bits", [4, 10])
def test_box_muller_angles_are_cos_and_sin(angle_bits):
    """Every angle: (sign, table value) equals round(cos / sin(2 pi (a + 1/2) / 2^A) 2^15)."""
    cfg = GC(kind="boxmuller", angle_bits=angle_bits)
    trig = np.array(gm.bm_tables(cfg)["trig"])
    a = np.arange(1 << angle_bits)
    ci, si, cn, sn = gm.bm_angle(a << (16 - angle_bits), cfg)
    theta = 2 * np.pi * (a + 0.5) / (1 << angle_bits)
    assert (np.where(cn, -1, 1) * trig[ci] == np.round(np.cos(theta) * 2 ** 15)).all()
    assert (np.where(sn, -1, 1) * trig[si] == np.round(np.sin(theta) * 2 ** 15)).all()


def test_clt_scale_digits():
    """The CSD scale of k = 4, 8, 12 (5 digits) is within 0.025 % of unit variance's; k = 12 is
    one digit (a pure shift)."""
    for k in (4, 8, 12):
        rep = gm.clt_scale_report(GC(kind="clt", k=k))
        assert abs(rep["rel_error"]) < 2.5e-4, (k, rep)
    assert gm.clt_digits(GC(kind="clt", k=12)) == [(1, 0)]
    assert gm.clt_scale_report(GC(kind="clt", k=4, scale_digits=2))["digits"] == ["+2^1",
                                                                                  "-2^-2"]


def test_clt_theory():
    t = gm.clt_theory(4)
    assert t["tail4"] == 0 and t["max_abs"] == pytest.approx(2 * math.sqrt(3))
    assert gm.clt_theory(12)["tail3"] == pytest.approx(0.002014, rel=1e-3)
    assert gm.clt_theory(400)["tail3"] == pytest.approx(2 * 0.0013499, rel=0.02)


# Statistical checks (10^6 values of the golden model, fixed seed) -----------------------------

N = 1_000_000


def _checks(cfg, seed=2024):
    return stat_checks(generate(cfg, seed, N) / float(1 << cfg.z_frac))


def _binomial_ok(value, p, n=N, sigmas=4):
    return value == 0 if p == 0 else abs(value - p) <= sigmas * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("k", [4, 8, 12])
def test_clt_statistics(k):
    """Sum of k uniforms (Q4.12, no saturation up to sqrt(3k) = 6): mean 0 and variance 1 pass;
    the excess kurtosis is the Irwin-Hall -1.2/k (so the normal kurtosis check fails); the masses
    beyond 3 and 4 sigma are Irwin-Hall's, thinner than the normal's (k = 4 has nothing beyond
    2 sqrt 3 = 3.46 sigma). Tolerances: 4 standard errors at n = 10^6."""
    s = _checks(GC(kind="clt", k=k, z_int=4, z_frac=12))
    theory = gm.clt_theory(k)
    assert s["mean"]["pass"] and s["variance"]["pass"]
    assert abs(s["excess_kurtosis"]["value"] - theory["excess_kurtosis"]) <= 4 * math.sqrt(24 / N)
    assert not s["excess_kurtosis"]["pass"] and not s["passed"]
    assert _binomial_ok(s["tail3"]["value"], theory["tail3"])
    assert _binomial_ok(s["tail4"]["value"], theory["tail4"])
    assert not s["tail4"]["pass"]
    assert s["max_abs"] <= theory["max_abs"] + 2 ** -12


@pytest.mark.parametrize("lanes", [1, 4])
def test_box_muller_statistics(lanes):
    """Box-Muller in Q4.12 passes every check (mean, variance, kurtosis, 3 and 4 sigma tails)."""
    s = _checks(GC(kind="boxmuller", lanes=lanes, z_int=4, z_frac=12))
    assert s["passed"], s
    assert s["max_abs"] > 4.5


def test_box_muller_in_q3_13_cuts_the_4_sigma_tail():
    """Q3.13 (the PeZO generator's default) ends at 4 - 2^-13: nothing lies beyond 4 sigma, so
    the tail4 check fails while every other check passes."""
    s = _checks(GC(kind="boxmuller", z_int=3, z_frac=13))
    assert s["tail4"]["value"] == 0 and not s["tail4"]["pass"] and not s["passed"]
    assert all(s[c]["pass"] for c in ("mean", "variance", "excess_kurtosis", "tail3"))
    assert s["max_abs"] == 4 - 2 ** -13


def test_stat_checks_on_known_distributions():
    rng = np.random.default_rng(1)
    s = stat_checks(rng.standard_normal(N))
    assert s["passed"] and s["samples"] == N
    assert s["tail3"]["expected"] == pytest.approx(0.0026998, rel=1e-4)
    assert s["tail4"]["expected"] == pytest.approx(6.334e-5, rel=1e-3)
    assert s["tail4"]["tolerance"] == pytest.approx(4 * math.sqrt(6.334e-5 / N), rel=1e-3)
    u = stat_checks(rng.uniform(-math.sqrt(3), math.sqrt(3), N))
    assert not u["passed"] and u["variance"]["pass"] and u["tail3"]["value"] == 0
    assert u["excess_kurtosis"]["value"] == pytest.approx(-1.2, abs=0.01)


# cocotb on the generated Verilog --------------------------------------------------------------

#: (configuration, simulator, values, regress only). ``make test`` runs one 100,000-value
#: Verilator run and short Icarus runs; ``make regress`` the rest. Icarus runs the small
#: configurations only: the bank's netlist slows it down sharply with its lane count (a 48-lane
#: bank, as CLT k=12 x 4 lanes needs, simulates at about 170 cycles/s there, 4 lanes at 30,000).
COCOTB_CASES = [
    (GC(kind="boxmuller", lanes=4, z_int=4, z_frac=12), "verilator", 100_000, False),
    (GC(kind="clt", k=4, lanes=1), "icarus", 4_000, False),
    (GC(kind="boxmuller", lanes=1), "icarus", 4_000, False),
    (GC(kind="clt", k=12, lanes=4), "verilator", 100_000, True),
    (GC(kind="clt", k=4, lanes=1), "verilator", 100_000, True),
    (GC(kind="clt", k=8, lanes=4, width=12), "verilator", 100_000, True),
    (GC(kind="boxmuller", lanes=1), "verilator", 100_000, True),
    (GC(kind="boxmuller", lanes=3, angle_bits=8, z_int=4, z_frac=12), "verilator", 100_000,
     True),
    (GC(kind="clt", k=4, lanes=1), "icarus", 100_000, True),
    (GC(kind="boxmuller", lanes=1), "icarus", 100_000, True),
]


def _cocotb_cases():
    sims = {p.values[0]: p.marks for p in SIMS}
    return [pytest.param(cfg, sim, values, id=f"{cfg.name()}-{sim}-{values}",
                         marks=list(sims[sim]) + [pytest.mark.cocotb] +
                         ([pytest.mark.regress] if regress else []))
            for cfg, sim, values, regress in COCOTB_CASES]


@pytest.mark.parametrize("cfg,sim,values", _cocotb_cases())
def test_gauss_cocotb(cfg, sim, values):
    """``values`` values of the generated Verilog equal the golden model: the seed-0 stream after
    reset, then two seeds, with ``o.ready`` low 30 % of the cycles."""
    text = _run_cocotb(sim, "pezo_gauss", make_gauss(cfg), f"gauss-{cfg.name()}-{sim}-{values}",
                       "pezo.sim.cosim.cocotb_gauss_tb",
                       {"config": cfg.to_dict(), "seeds": [0x5EED, 987654321], "values": values,
                        "ready_prob": 0.7, "rng_seed": 3, "reset_beats": 64})
    assert text == ["gauss_matches_golden_model"]


# Parameter errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(kind="ziggurat"), ValueError,
     r"^Gaussian baseline kind \(kind\) must be one of 'clt', 'boxmuller', not 'ziggurat'$"),
    (dict(kind=1), TypeError, r"^Gaussian baseline kind \(kind\) must be a string, not 1$"),
    (dict(lanes=0), ValueError, r"^Lane count \(lanes\) must be an integer in 1\.\.32, not 0$"),
    (dict(lanes=2.0), TypeError, r"^Lane count \(lanes\) must be an integer, not 2\.0$"),
    (dict(width=1), ValueError,
     r"^Uniform number width \(width\) must be an integer in 2\.\.32, not 1$"),
    (dict(k=1), ValueError, r"^CLT uniforms per value \(k\) must be an integer in 2\.\.64, not 1$"),
    (dict(k=True), TypeError, r"^CLT uniforms per value \(k\) must be an integer, not True$"),
    (dict(z_int=17), ValueError,
     r"^Integer bits of z \(z_int\) must be an integer in 2\.\.16, not 17$"),
    (dict(z_frac=31), ValueError,
     r"^Fraction bits of z \(z_frac\) must be an integer in 0\.\.30, not 31$"),
    (dict(z_int=16, z_frac=17), ValueError, r"^z format Q16\.17 is wider than 32 bits$"),
    (dict(seed_width=16), ValueError, r"^Seed width \(seed_width\) must be 32 or 64, not 16$"),
    (dict(seed_width="32"), TypeError,
     r"^Seed width \(seed_width\) must be an integer, not '32'$"),
    (dict(scale_digits=0), ValueError,
     r"^CLT scale digit count \(scale_digits\) must be an integer in 1\.\.8, not 0$"),
    (dict(angle_bits=13), ValueError,
     r"^Box-Muller angle bits \(angle_bits\) must be an integer in 4\.\.12, not 13$"),
    (dict(lanes=8, k=12), ValueError,
     r"^A CLT generator needs lanes \* k <= 64 uniform generators \(the bank's limit\), not "
     r"8 \* 12 = 96$"),
    (dict(kind="boxmuller", width=12), ValueError,
     r"^Box-Muller takes 16-bit uniform numbers \(u1 from two, u2 from one\): width must be 16, "
     r"not 12$"),
    (dict(kind="boxmuller", z_int=2, z_frac=28), ValueError,
     r"^Box-Muller output needs z_frac <= 27 \(r cos theta has 28 fraction bits\), not 28$"),
    (dict(kind="boxmuller", lanes=23), ValueError,
     r"^Box-Muller with 23 lanes needs 69 uniform generators; the bank has at most 64$"),
    (dict(state_bits=65), ValueError,
     r"^LFSR state bits \(state_bits\) must be an integer in 3\.\.64 or one of 71, 79, 81, 93, "
     r"95, 97, 127 \(the wide trinomials of the table\), not 65$"),
    (dict(state_bits=2), ValueError,
     r"^LFSR state bits \(state_bits\) must be an integer in 3\.\.64, not 2$"),
    (dict(state_bits=3, lanes=4, k=2), ValueError,
     r"^3 LFSR state bits cannot give the 8 uniform generators of this baseline distinct seeds; "
     r"use more state_bits$"),
])
def test_config_errors(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        GC(**kwargs)


def test_other_errors():
    with pytest.raises(TypeError, match=r"^Configuration must be a GaussConfig, not 3$"):
        make_gauss(3)
    with pytest.raises(TypeError, match=r"^Configuration must be a GaussConfig, not 3$"):
        CLTGenerator(3)
    with pytest.raises(ValueError, match=r"^CLTGenerator needs a GaussConfig of kind 'clt', not "
                                         r"'boxmuller'$"):
        CLTGenerator(GC(kind="boxmuller"))
    with pytest.raises(ValueError, match=r"^BoxMullerGenerator needs a GaussConfig of kind "
                                         r"'boxmuller', not 'clt'$"):
        BoxMullerGenerator(GC())
    with pytest.raises(TypeError, match=r"^Configuration must be a GaussConfig, not None$"):
        GaussModel(None, 1)
    with pytest.raises(TypeError, match=r"^Configuration must be a GaussConfig, not 'clt'$"):
        generate("clt", 1, 10)
    with pytest.raises(ValueError, match=r"^Count must be a non-negative integer, not -1$"):
        generate(GC(), 1, -1)
    with pytest.raises(ValueError, match=r"^Count must be a non-negative integer, not 2\.5$"):
        generate(GC(), 1, 2.5)
    with pytest.raises(ValueError, match=r"^Seed must be in 0\.\.2\^32-1, not -1$"):
        generate(GC(), -1, 10)
    with pytest.raises(ValueError, match=r"^Statistical checks need at least 1000 samples, "
                                         r"not 10$"):
        stat_checks(np.zeros(10))
    with pytest.raises(ValueError, match=r"^Tolerance in standard errors \(sigmas\) must be "
                                         r"positive, not 0$"):
        stat_checks(np.zeros(1000), sigmas=0)
    with pytest.raises(ConfigError, match=r"^Unknown Gaussian baseline parameter\(s\) foo; "
                                          r"accepted: angle_bits, k, kind, lanes, scale_digits, "
                                          r"seed_width, state_bits, width, z_frac, z_int$"):
        GC.from_dict({"foo": 1})
    assert GC.from_dict(GC(kind="boxmuller", lanes=2).to_dict()) == GC(kind="boxmuller", lanes=2)
