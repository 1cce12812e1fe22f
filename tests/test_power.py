"""The activity-based power model (pezo.power): its calibration, the VCD toggle counter, and a
gate-level estimate of a small LFSR bank whose activity is known from first principles."""

import pytest

from pezo import power as P

# Public UP5K measurements the model is calibrated on (uA at 1.2 V; the project brief).
COUNTER = {6: 388, 12: 645, 24: 1162, 48: 2184}
ARITH_208_12MHZ = 996


def test_model_reproduces_its_calibration_points():
    got = P.calibration_check()
    for f, meas in COUNTER.items():
        model, m = got[f"counter_{f}mhz"]
        assert m == meas and model == pytest.approx(meas, rel=0.01)
    model, m = got["arith_208_12mhz"]
    assert m == ARITH_208_12MHZ and model == pytest.approx(ARITH_208_12MHZ, rel=0.01)
    # A blank design at any clock: static + clock source only (85.6 uA measured blank).
    idle = {k: 0 for k in ("lut_toggles", "carry_toggles", "ff_toggles", "ff_clocked",
                           "ebr_accesses", "dsp_toggles")}
    assert P.power_from_activity(idle, 12)["static_mw"] == pytest.approx(85.6e-3 * 1.2, rel=1e-3)


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
    per cycle on average (2,048 cycles: standard deviation about 0.04)."""
    from pezo.boards.targets import get_board
    from pezo.config import GeneratorConfig as G
    cfg = G(lanes=1, width=16, state_bits=16, reuse="none")
    p = P.estimate_power("bank", cfg, get_board("ice40"), "build/test-power/bank",
                         cycles=2048, progress=lambda *_: None)
    act = p["activity_per_cycle"]
    assert p["core_cells"].get("SB_DFFESR", 0) + p["core_cells"].get("SB_DFFESS", 0) == 16
    assert act["ff_clocked"] == pytest.approx(16, abs=0.01)
    assert act["ff_toggles"] == pytest.approx(8, abs=0.3)
    assert act["ebr_accesses"] == 0 and act["dsp_toggles"] == 0
    assert p["unobserved_nets"] == 0 and p["cycles"] == 2048
    assert p["total_mw"] == pytest.approx(p["static_mw"] + p["clock_mw"] + p["dynamic_mw"],
                                          abs=1e-3)
    assert p["dynamic_mw"] > 0
