"""The activity-based power model (pezo.power): its calibration, the ECP5 table derived from it,
the VCD toggle counter, and gate-level estimates of small designs whose activity is known from
first principles (an LFSR bank on iCE40; a counter, block RAM and multiplier on ECP5)."""

import dataclasses

import pytest

from pezo import power as P

IDLE = {k: 0 for k in ("lut_toggles", "carry_toggles", "ff_toggles", "ff_clocked",
                        "ebr_accesses", "dsp_toggles")}


@pytest.mark.synth
@pytest.mark.regress        # about 2.5 CPU-minutes: `make regress` and `make calibrate` run it
def test_calibration_on_the_measured_designs_netlists(tmp_path):
    """The published UP5K measurements (tinyvision-ai-inc/ice40_power) through the real pipeline:
    every calibration design is synthesised and simulated at gate level, the coefficients are
    fitted on the `fit` rows only, and every held-out measurement is predicted within 10 %.
    The fit equals the table pezo.power uses, and it does not look at held-out rows (changing a
    held-out measurement changes no coefficient)."""
    from pezo.power import calibration as C
    act = C.measure(build_root=tmp_path, progress=lambda *_: None)
    # The activity is the netlists', not assumed: a counter toggles 2 FF outputs per cycle and
    # clocks all its FFs; the LUT multiplier design has far more LUT activity than the DSP one.
    assert act[("counter", 24)]["ff_toggles"] == pytest.approx(2, abs=0.01)
    assert act[("counter", 224)]["ff_clocked"] == 224
    assert act[("math", False)]["lut_toggles"] > 4 * act[("math", True)]["lut_toggles"]
    assert act[("math", True)]["dsp_toggles"] > 0 == act[("math", False)]["dsp_toggles"]
    coef = C.fit(act)
    for k, v in coef.items():
        assert P.COEFFICIENTS[k][0] == pytest.approx(v, rel=5e-3), k
    rows = C.validate(coef, act)
    held = [r for r in rows if r["role"] == "held-out"]
    assert len(held) >= 8
    for r in held:
        assert abs(r["error_pct"]) <= 10, r
        if r["pll_rail_error_pct"] is not None:
            assert abs(r["pll_rail_error_pct"]) <= 10, r
    i = next(i for i, r in enumerate(C.MEASUREMENTS) if r[8] == "held-out")
    moved = list(C.MEASUREMENTS[i])
    moved[6] *= 3
    try:
        C.MEASUREMENTS[i] = tuple(moved)
        assert C.fit(act) == coef
    finally:
        C.MEASUREMENTS[i] = tuple(moved[:6]) + (moved[6] / 3,) + tuple(moved[7:])


def test_model_structure_static_clock_sources_and_pll():
    """Static = the configured-design current; the HFOSC adds its standing current; a PLL adds
    core and rail currents in proportion to its VCO; the dynamic part is f x charges."""
    c = {k: v[0] for k, v in P.COEFFICIENTS.items()}
    ext = P.power_from_activity(IDLE, 12)
    assert ext["static_mw"] == pytest.approx(c["static_ua"] * 1.2e-3, rel=1e-3)
    assert ext["clock_mw"] == pytest.approx(12 * c["clock_base_pc"] * 1.2e-3, rel=1e-3)
    assert ext["dynamic_mw"] == 0 and ext["pll_mw"] == 0
    hf = P.power_from_activity(IDLE, 12, clock_source="hfosc")
    assert hf["clock_mw"] - ext["clock_mw"] == pytest.approx(c["hfosc_ua"] * 1.2e-3, abs=1e-4)
    pll = P.power_from_activity(IDLE, 48, clock_source="pll", vco_mhz=768)
    assert pll["pll_mw"] == pytest.approx(768 * c["pll_rail_ua_per_vco_mhz"] * 1.2e-3, rel=1e-3)
    assert pll["total_mw"] == pytest.approx(sum(pll[k] for k in ("static_mw", "clock_mw",
                                                                 "dynamic_mw", "pll_mw")),
                                            abs=1e-3)
    with pytest.raises(ValueError, match="VCO frequency"):
        P.power_from_activity(IDLE, 48, clock_source="pll")
    with pytest.raises(ValueError, match="Clock source must be one of external, hfosc, pll, "
                                         "not 'rc'"):
        P.power_from_activity(IDLE, 48, clock_source="rc")


def test_ranges_cover_the_corners_and_reductions_share_them():
    """The range of a figure is its min/max over the corners of UNCERTAIN, and contains the
    central value; a reduction uses the same corner for both designs (so a design compared with
    itself is exactly 0 % in every corner)."""
    a = {"lut_toggles": 100, "carry_toggles": 10, "ff_toggles": 50, "ff_clocked": 200,
         "ebr_accesses": 2, "dsp_toggles": 8}
    lo, hi = P.power_range(a, 48)
    mid = P.power_from_activity(a, 48)["dynamic_mw"]
    assert lo < mid <= hi
    q = {k: v[0] for k, v in P.COEFFICIENTS.items()}
    low = dict(q, **{k: q[k] * r[0] for k, r in P.UNCERTAIN.items()})
    assert lo == P.power_from_activity(a, 48, coefficients=low)["dynamic_mw"]
    assert P.reduction_range(a, a, 48) == (0.0, 0.0, 0.0)
    dsp_only = dict(IDLE, dsp_toggles=10)
    lut_only = dict(IDLE, lut_toggles=10)
    mid, lo, hi = P.reduction_range(lut_only, dsp_only, 48)
    assert lo <= mid <= hi and lo < hi      # the central values are a corner of this one


def test_dynamic_power_is_linear_in_activity_and_clock():
    a = {"lut_toggles": 100, "carry_toggles": 10, "ff_toggles": 50, "ff_clocked": 200,
         "ebr_accesses": 2, "dsp_toggles": 8}
    p1, p2 = P.power_from_activity(a, 24), P.power_from_activity(a, 48)
    assert p2["dynamic_mw"] == pytest.approx(2 * p1["dynamic_mw"], rel=1e-3)
    double = {k: 2 * v for k, v in a.items()}
    assert P.power_from_activity(double, 24)["dynamic_mw"] == \
        pytest.approx(2 * p1["dynamic_mw"], rel=1e-3)
    assert p1["static_mw"] == p2["static_mw"]


def test_vcd_toggle_counter(tmp_path):
    vcd = tmp_path / "t.vcd"
    vcd.write_text("""$timescale 1ps $end
$scope module tb $end
$var wire 1 # clk $end
$scope module dut $end
$var wire 1 ! a $end
$var wire 3 " \\bus [2:0] $end
$scope module cell $end
$var wire 1 ! O $end
$upscope $end
$upscope $end
$upscope $end
$enddefinitions $end
#0
0!
b000 "
#10
1!
b101 "
#20
0!
b110 "
#30
1!
#40
b001 "
""")
    got = P.parse_vcd_toggles(vcd, 10, 40)
    # Only the variables declared directly in tb.dut count (not tb's clk, not a cell's O).
    assert set(got) == {"a", "bus"}
    tog_a, high_a = got["a"]
    # a: 0->1 at 10 (before the window starts counting: the change at t=10 counts), 1->0 at 20,
    # 0->1 at 30; high during 10..20 and 30..40.
    assert list(tog_a) == [3] and list(high_a) == [20]
    tog_b, high_b = got["bus"]
    # bus bits (LSB first): 000->101->110->001: bit0 1,0,1 = 3 toggles; bit1 0,1,0 = 2; bit2 1,1,0 = 2
    assert list(tog_b) == [3, 2, 2]
    # high times in 10..40: bit0 high 10..20 and 40; bit1 high 20..40; bit2 high 10..40
    assert list(high_b) == [10, 20, 30]


@pytest.mark.synth
def test_gate_level_estimate_of_a_small_bank():
    """A 16-bit leap LFSR streaming without stalls clocks all 16 state FFs every cycle, and each
    state bit is a fresh random bit per cycle, so it toggles with probability 1/2: 8 FF toggles
    per cycle on average (2,048 cycles: standard deviation about 0.04). The seed mixer's
    flip-flops have enables that stay low while streaming; FFs without an enable (SB_DFFSR:
    load-control flags, or a state bit whose enable yosys folded into its logic) are clocked
    every cycle; of them only state bits toggle. The state FFs are told apart by their source
    line (the bank's lane-state signals) in the core netlist."""
    import json
    from pathlib import Path
    from pezo.boards.targets import get_board
    from pezo.config import GeneratorConfig as G
    from pezo.hw import lfsr
    cfg = G(lanes=1, width=16, state_bits=16, reuse="none")
    out = Path("build/test-power/bank")
    p = P.estimate_power("bank", cfg, get_board("ice40"), out, cycles=2048,
                         progress=lambda *_: None)
    act = p["activity_per_cycle"]
    text = Path(lfsr.__file__).read_text().splitlines()
    line = next(i + 1 for i, t in enumerate(text) if "self.lane_state_signals = [" in t)
    cells = [c for mod in json.loads((out / "power" / "core_net.json").read_text())["modules"]
             .values() for c in mod["cells"].values()]
    no_enable = [c for c in cells if c["type"] in ("SB_DFFSR", "SB_DFFSS", "SB_DFFR", "SB_DFFS",
                                                   "SB_DFF")]
    state = [c for c in cells if c["type"].startswith("SB_DFF")
             and f"lfsr.py:{line}" in c.get("attributes", {}).get("src", "")]
    assert len(state) == 16
    other_always = sum(1 for c in no_enable if c not in state)
    assert act["ff_clocked"] == pytest.approx(16 + other_always, abs=0.01)
    assert act["ff_toggles"] == pytest.approx(8, abs=0.3)
    assert act["ebr_accesses"] == 0 and act["dsp_toggles"] == 0
    assert p["unobserved_nets"] == 0 and p["cycles"] == 2048
    assert p["total_mw"] == pytest.approx(p["static_mw"] + p["clock_mw"] + p["dynamic_mw"]
                                          + p["pll_mw"],
                                          abs=1e-3)
    assert p["dynamic_mw"] > 0
    assert p["calibrated"] is True and p["v_core"] == 1.2 and "unmodelled_cells" not in p


# --- ECP5: uncalibrated, derived from the UP5K table --------------------------------------------

ACTIVITY = {"lut_toggles": 100, "carry_toggles": 10, "ff_toggles": 50, "ff_clocked": 200,
            "ebr_accesses": 2, "dsp_toggles": 8}


def test_ecp5_coefficients_are_the_up5k_ones_at_1v1():
    """Same capacitances at 1.1 V instead of 1.2 V: every charge per event scales by 1.1/1.2, so
    every energy (and the dynamic power of any activity) by (1.1/1.2)^2; no oscillator or PLL
    current; static = the UP5K configured current per logic cell x 83,640 LUTs, at 1.1 V."""
    up5k, ecp5 = P.COEFFICIENTS, P.ECP5_COEFFICIENTS
    assert set(ecp5) == set(up5k)
    for k in ("clock_base_pc", "net_toggle_pc", "ff_clock_pc", "ebr_access_pc", "dsp_toggle_pc"):
        assert ecp5[k][0] == pytest.approx(up5k[k][0] * 1.1 / 1.2, rel=1e-3), k
        assert "assumption" in ecp5[k][1]
    assert ecp5["hfosc_ua"][0] == 0 and ecp5["pll_ua_per_vco_mhz"][0] == 0
    assert ecp5["static_ua"][0] == pytest.approx(up5k["static_ua"][0] * 83640 / 5280, rel=1e-3)
    assert "assumption" in ecp5["static_ua"][1]
    ice, ecp = P.power_from_activity(ACTIVITY, 25, "ice40"), P.power_from_activity(ACTIVITY, 25,
                                                                                   "ecp5")
    assert ecp["dynamic_mw"] == pytest.approx(ice["dynamic_mw"] * (1.1 / 1.2) ** 2, rel=2e-3)
    assert ecp["static_mw"] == pytest.approx(up5k["static_ua"][0] * 83640 / 5280 * 1.1e-3,
                                             rel=1e-3)
    assert ecp["clock_mw"] == pytest.approx(25 * up5k["clock_base_pc"][0] * 1.1 / 1.2 * 1.1e-3,
                                            rel=1e-3)
    # Ratios between designs are what the comparisons read: they do not depend on the family.
    half = {k: v / 2 for k, v in ACTIVITY.items()}
    assert P.power_from_activity(half, 25, "ecp5")["dynamic_mw"] == \
        pytest.approx(ecp["dynamic_mw"] / 2, rel=1e-3)
    assert P.FAMILIES["ice40"]["calibrated"] is True
    assert P.FAMILIES["ecp5"]["calibrated"] is False
    assert "uncalibrated" in P.FAMILIES["ecp5"]["basis"]


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match=r"^No power model for family 'xc7'; the model covers "
                                         r"ice40, ecp5$"):
        P.power_from_activity(ACTIVITY, 25, "xc7")
    with pytest.raises(TypeError, match=r"^Power-model family must be a string, not 5$"):
        P.power_from_activity(ACTIVITY, 25, 5)
    with pytest.raises(ValueError, match=r"^Activity lacks dsp_toggles; it needs lut_toggles, "):
        P.power_from_activity({k: v for k, v in ACTIVITY.items() if k != "dsp_toggles"}, 25)
    with pytest.raises(TypeError, match=r"^Activity must be a dict of per-cycle figures, not 3$"):
        P.power_from_activity(3, 25)
    with pytest.raises(ValueError, match=r"^Clock frequency must be positive, not 0$"):
        P.power_from_activity(ACTIVITY, 0)
    with pytest.raises(TypeError, match=r"^Clock frequency must be a number of MHz, not '25'$"):
        P.power_from_activity(ACTIVITY, "25")
    from pezo.boards.targets import get_board
    from pezo.config import GeneratorConfig as G
    cfg = G(lanes=1, width=16, state_bits=16, reuse="none")
    with pytest.raises(ValueError, match=r"^Design must be one of engine, "):
        P.estimate_power("nope", cfg, get_board("ice40"), "build/test-power/never")
    with pytest.raises(TypeError, match=r"^Design must be a design name \(pezo.designs\) or an "
                                        r"Amaranth component, not 42$"):
        P.estimate_power(42, cfg, "ice40", "build/test-power/never")
    with pytest.raises(ValueError, match=r"^Unknown board 'nope'"):
        P.estimate_power("bank", cfg, "nope", "build/test-power/never")
    with pytest.raises(ValueError, match=r"^Cycle count must be a positive integer, not 0$"):
        P.estimate_power("bank", cfg, "ice40", "build/test-power/never", cycles=0)
    with pytest.raises(ValueError, match=r"^Warm-up must be a non-negative number of cycles, "
                                         r"not -1$"):
        P.estimate_power("bank", cfg, "ice40", "build/test-power/never", warmup=-1)
    # A family without a model is not an error: the report says why there is no estimate.
    other = dataclasses.replace(get_board("ice40"), name="gw", family="gowin")
    got = P.estimate_power("bank", cfg, other, "build/test-power/never")
    assert got == {"unavailable": "no power model for gowin; the model covers ice40, ecp5"}


def test_vcd_inner_scopes(tmp_path):
    """``inner`` reads named nets of the scopes directly below the counted one (an ECP5 CCU2C's
    internal carry), keyed ``<instance>.<net>``; other nets of those scopes are not read."""
    vcd = tmp_path / "t.vcd"
    vcd.write_text("""$timescale 1ps $end
$scope module tb $end
$scope module dut $end
$var wire 1 ! a $end
$scope module n7 $end
$var wire 1 " cout_0 $end
$var wire 1 ! A0 $end
$scope module lut4_0 $end
$var wire 1 # cout_0 $end
$upscope $end
$upscope $end
$upscope $end
$upscope $end
$enddefinitions $end
#0
0!
0"
0#
#10
1!
1"
1#
#20
0"
#30
1"
""")
    got = P.parse_vcd_toggles(vcd, 0, 40, inner={"cout_0"})
    assert set(got) == {"a", "n7.cout_0"}
    assert list(got["n7.cout_0"][0]) == [3] and list(got["a"][0]) == [1]
    assert set(P.parse_vcd_toggles(vcd, 0, 40)) == {"a"}


def _counter_ram_multiplier(n):
    """An n-bit counter c writes c to address c of a 2^n-word RAM and reads the same address
    (read before write: the value written 2^n cycles before, which is c again); the read data d,
    one cycle late, is streamed out as d * d."""
    from amaranth import Module, Signal
    from amaranth.lib import memory, stream, wiring
    from amaranth.lib.wiring import In, Out

    class CounterRamMultiplier(wiring.Component):
        def __init__(self):
            super().__init__({"seed": In(8), "seed_load": In(1),
                              "o": Out(stream.Signature(2 * n))})

        def elaborate(self, platform):
            m = Module()
            count = Signal(n)
            m.d.sync += count.eq(count + 1)
            m.submodules.mem = mem = memory.Memory(shape=n, depth=1 << n, init=[])
            wr, rd = mem.write_port(), mem.read_port()
            m.d.comb += [wr.addr.eq(count), wr.data.eq(count), wr.en.eq(1), rd.addr.eq(count),
                         self.o.payload.eq(rd.data * rd.data), self.o.valid.eq(1)]
            return m

    return CounterRamMultiplier()


@pytest.mark.synth
def test_ecp5_gate_level_estimate_of_a_counter_ram_and_multiplier():
    """The ECP5 netlist (synth_ecp5: TRELLIS_FF, CCU2C, DP16KD, MULT18X18D) simulated with yosys's
    cell models and this project's DP16KD / MULT18X18D models, over one full counter period of
    2^n cycles, toggles exactly what arithmetic says: counter bit i toggles 2^(n-i) times, so the
    n FFs 2 - 2^(1-n) times per cycle; the incrementer's carry into bit k toggles twice per 2^k
    cycles, so its n carries (CCU2C COUT and internal) 2 (1 - 2^-n) times; the RAM does one write
    and one read per cycle; and the multiplier's output toggles as c^2 does from c to c + 1,
    which only holds if the RAM model returned the right data."""
    n = 10
    period = 1 << n
    p = P.estimate_power(_counter_ram_multiplier(n), None, "ulx3s-85f",
                         "build/test-power/ecp5-counter", cycles=period, warmup=period + 8,
                         progress=lambda *_: None)
    cells, act = p["core_cells"], p["activity_per_cycle"]
    assert cells["TRELLIS_FF"] == n and cells["CCU2C"] == n // 2
    assert cells["DP16KD"] == 1 and cells["MULT18X18D"] == 1
    assert p["cycles"] == period and p["unobserved_nets"] == 0 and "unmodelled_cells" not in p
    assert act["ff_clocked"] == n
    assert act["ff_toggles"] == pytest.approx(2 - 2 ** (1 - n), abs=1e-3)
    assert act["carry_toggles"] == pytest.approx(2 * (1 - 2 ** -n), abs=1e-3)
    assert act["ebr_accesses"] == pytest.approx(2.0, abs=1e-3)
    square_toggles = sum(bin(c * c ^ ((c + 1) % period) ** 2).count("1") for c in range(period))
    assert act["dsp_toggles"] == pytest.approx(square_toggles / period, abs=1e-3)
    # Every CCU2C sum output toggles with its counter bit; the rest are LUT4s.
    assert act["ff_toggles"] <= act["lut_toggles"] <= act["ff_toggles"] + cells.get("LUT4", 0)
    # Report fields: uncalibrated, ECP5 table, 1.1 V, the ULX3S's 25 MHz clock.
    assert p["calibrated"] is False and "uncalibrated" in p["basis"]
    assert "UNCALIBRATED" in p["model"] and p["v_core"] == 1.1 and p["clock_mhz"] == 25.0
    assert p["coefficients_pc"] == {k: v[0] for k, v in P.ECP5_COEFFICIENTS.items()}
    again = P.power_from_activity(act, 25.0, "ecp5")
    assert {k: p[k] for k in again} == again
    assert p["total_mw"] == pytest.approx(p["static_mw"] + p["clock_mw"] + p["dynamic_mw"]
                                          + p["pll_mw"],
                                          abs=1e-3)


@pytest.mark.synth
def test_ice40_block_ram_accesses_follow_the_enables():
    """An SB_RAM40_4K read every other cycle and written every fourth cycle does 0.75 accesses
    per cycle: yosys ties RE/WE high and gates the ports with RCLKE/WCLKE, so counting the RE/WE
    pin levels (the old model) would give 2."""
    from amaranth import Module, Signal
    from amaranth.lib import memory, stream, wiring
    from amaranth.lib.wiring import Out

    class Ram(wiring.Component):
        o: Out(stream.Signature(8))

        def elaborate(self, platform):
            m = Module()
            count = Signal(8)
            m.d.sync += count.eq(count + 1)
            m.submodules.mem = mem = memory.Memory(shape=8, depth=256, init=[])
            wr, rd = mem.write_port(), mem.read_port()
            m.d.comb += [wr.addr.eq(count), wr.data.eq(count), wr.en.eq(count[:2] == 0),
                         rd.addr.eq(count + 7), rd.en.eq(count[0]),
                         self.o.payload.eq(rd.data), self.o.valid.eq(1)]
            return m

    p = P.estimate_power(Ram(), None, "ice40", "build/test-power/ice40-ram", cycles=1024,
                         warmup=16, progress=lambda *_: None)
    assert p["core_cells"]["SB_RAM40_4K"] == 1
    assert p["activity_per_cycle"]["ebr_accesses"] == pytest.approx(0.75, abs=1e-3)
