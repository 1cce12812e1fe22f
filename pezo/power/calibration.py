"""Calibration and validation of the iCE40 power model (:mod:`pezo.power`) on public measurements.

The measurements: tinyvision-ai-inc/ice40_power (commit ecc5e59, 2020-09-25), core and PLL rail
currents of an iCE40 UP5K-SG48 breakout measured with a Joulescope JS110 while it runs variants of
one test design (``power_test/rgb_blink.v``): a free-running counter (24 bits on the on-chip
HFOSC, 28 to 224 bits on an external 12 MHz clock, 24 bits behind the PLL), optionally two 8-bit
counters (+3, +5 per cycle) and their 16-bit product in LUTs or in one SB_MAC16. The output pin is
the counter's top bit OR the AND-reductions of the counters and the product.

:class:`CalibrationDesign` rebuilds that logic in Amaranth (the product is kept: today's yosys
proves ``&product`` constant for 8-bit operands and would delete the multiplier that 2020's kept);
:func:`measure` runs every design through the same netlist simulation as any estimate
(:func:`pezo.power.netlist_activity`); :func:`fit` solves the model's coefficients by least
squares on the rows marked ``fit`` and :func:`validate` predicts every other row with them.
``pezo calibrate`` (``make calibrate``) writes docs/power_calibration.md and .json.
"""

import json
from pathlib import Path

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out
import numpy as np

from pezo.boards.targets import get_board
from pezo.power.model import COEFFICIENTS, UNCERTAIN, block_testbench, netlist_activity
from pezo.tables import markdown_table

__all__ = ["MEASUREMENTS", "CalibrationDesign", "measure", "fit", "validate", "run", "FITTED"]

SOURCE = ("tinyvision-ai-inc/ice40_power, README results table (commit ecc5e59, 2020-09-25): "
          "iCE40 UP5K-SG48 breakout, Joulescope JS110, core at 1.219 V")

#: One row per published measurement: (key, description as published, design, clock source,
#: clock MHz, VCO MHz, core uA, PLL-rail uA, role, note). design: ("counter", bits) |
#: ("math", dsp) | None (nothing clocked). role: "fit" (used to solve the coefficients),
#: "held-out" (predicted and compared), "not modelled" (what it isolates is outside the model).
MEASUREMENTS = [
    ("blank", "Blank design", None, "none", 0, None, 85.6, 4.1, "held-out",
     "no logic at all; the model's static current is the configured design's"),
    ("halted", "External halted clock (0 kHz) + 24 bit counter (28 LC's)", ("counter", 24),
     "external", 0, None, 92.1, 4.4, "fit", "static current of a configured design"),
    ("ext28", "External 12 MHz + 28 bit counter (32 LC's)", ("counter", 28), "external", 12,
     None, 613.5, 4.1, "fit", ""),
    ("ext56", "External 12 MHz + 28*2 bit counter (60 LC's)", ("counter", 56), "external", 12,
     None, 616.65, 4.1, "held-out", ""),
    ("ext112", "External 12 MHz + 28*4 bit counter (116 LC's)", ("counter", 112), "external", 12,
     None, 624.2, 4.1, "held-out", ""),
    ("ext224", "External 12 MHz + 28*8 bit counter (228 LC's)", ("counter", 224), "external", 12,
     None, 641.3, 4.1, "fit", ""),
    ("hf48", "HFOSC (48 MHz) + 24 bit counter (28 LC's)", ("counter", 24), "hfosc", 48, None,
     2184, 4.1, "held-out", ""),
    ("hf24", "HFOSC (24 MHz) + 24 bit counter (28 LC's)", ("counter", 24), "hfosc", 24, None,
     1162, 4.1, "fit", ""),
    ("hf12", "HFOSC (12 MHz) + 24 bit counter (28 LC's)", ("counter", 24), "hfosc", 12, None,
     645, 4.1, "fit", ""),
    ("hf6", "HFOSC (6 MHz) + 24 bit counter (28 LC's)", ("counter", 24), "hfosc", 6, None,
     388.4, 4.1, "held-out", ""),
    ("lf", "LFOSC (10 kHz) + 24 bit counter (28 LC's)", ("counter", 24), "lfosc", 0.01, None,
     96.3, 4.4, "not modelled", "isolates the LFOSC's own current (no design here uses it)"),
    ("math", "HFOSC (12 MHz) + Math (no DSP) + 24 bit counter (208 LC's)", ("math", False),
     "hfosc", 12, None, 996, 4.1, "fit", ""),
    ("mathdsp", "HFOSC (12 MHz) + Math (1 DSP) + 24 bit counter (72 LC's)", ("math", True),
     "hfosc", 12, None, 882, 4.1, "fit", ""),
    ("rgb", "HFOSC + RGB (48 MHz clock)", ("counter", 24), "hfosc", 48, None, 2195, 4.4,
     "held-out", "the RGB LED driver's core share is not modelled"),
    ("pll16", "PLL (12MHz in, 16MHz output)", ("counter", 24), "pll", 15.9375, 1020.0, 1419,
     138.6, "held-out", "icepll: DIVF 84, DIVQ 6 (VCO 1020 MHz); HFOSC at 12 MHz as the input"),
    ("pll32", "PLL (12MHz in, 32MHz output)", ("counter", 24), "pll", 31.875, 1020.0, 2029, 138.9,
     "held-out", "icepll: DIVF 84, DIVQ 5 (VCO 1020 MHz); HFOSC at 12 MHz as the input"),
    ("pll48", "PLL (12MHz in, 48MHz output)", ("counter", 24), "pll", 48.0, 768.0, 2573, 103.6,
     "fit", "icepll: DIVF 63, DIVQ 4 (VCO 768 MHz), the iCEBreaker engine's own setting; HFOSC at "
            "12 MHz as the input"),
]

#: The unknowns :func:`fit` solves, in order.
FITTED = ("static_ua", "hfosc_ua", "clock_base_pc", "ff_clock_pc", "net_toggle_pc",
          "dsp_toggle_pc", "pll_ua_per_vco_mhz")


class CalibrationDesign(wiring.Component):
    """The clocked logic of ``rgb_blink.v``: a ``bits``-bit counter; with ``math``, the two 8-bit
    counters (+3, +5) and their 16-bit product (kept). ``o.payload`` is the output pin
    (counter MSB | &ctr1 | &ctr2 | &product), ``o.valid`` is 1: the stream is only what the
    power testbench drives (``o.ready`` is unused)."""

    def __init__(self, bits=24, math=False):
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 2:
            raise ValueError(f"Counter width must be an integer >= 2, not {bits!r}")
        self.bits, self.math = bits, bool(math)
        super().__init__({"o": Out(stream.Signature(1))})

    def elaborate(self, platform):
        m = Module()
        cnt = Signal(self.bits)
        m.d.sync += cnt.eq(cnt + 1)
        pin = cnt[-1]
        if self.math:
            c1, c2 = Signal(8), Signal(8)
            product = Signal(16, attrs={"keep": 1})
            m.d.sync += [c1.eq(c1 + 3), c2.eq(c2 + 5)]
            m.d.comb += product.eq(c1 * c2)
            pin = Cat(pin, c1.all(), c2.all(), product.all()).any()
        m.d.comb += [self.o.payload.eq(pin), self.o.valid.eq(1)]
        return m


def _designs():
    return sorted({row[2] for row in MEASUREMENTS if row[2] is not None})


def measure(build_root="build", progress=print, env=None, cycles=4096):
    """Simulated activity (per cycle) of every calibration design: {design: activity}."""
    board = get_board("ice40")
    out = {}
    for kind, arg in _designs():
        dut = CalibrationDesign(bits=arg) if kind == "counter" else CalibrationDesign(math=True)
        dsp = kind == "math" and arg
        name = f"{kind}-{arg}" if kind == "counter" else f"math-{'dsp' if arg else 'lut'}"
        progress(f"[calibrate] {name}: synthesis and gate-level simulation ({cycles} cycles)")
        sim = netlist_activity(dut, board, Path(build_root) / "power-calibration" / name,
                               block_testbench(dut, cycles, 8), env=env, progress=progress,
                               dsp=dsp)
        if "unavailable" in sim:
            raise RuntimeError(f"Cannot calibrate: {sim['unavailable']}")
        out[(kind, arg)] = dict(sim["activity"], cells=sim["cells"])
    return out


def _row_vector(row, act):
    """The fit's design-matrix row of a measurement: core uA = x . coefficients."""
    _, _, design, src, f, vco, *_ = row
    a = act[design] if design is not None else None
    tog = 0.0 if a is None else a["lut_toggles"] + a["carry_toggles"] + a["ff_toggles"]
    ffc = 0.0 if a is None else a["ff_clocked"]
    dsp = 0.0 if a is None else a["dsp_toggles"]
    f = f if a is not None else 0.0
    # the PLL rows' input is the HFOSC at 12 MHz
    return np.array([1.0, 1.0 if src in ("hfosc", "pll") else 0.0, f, f * ffc, f * tog, f * dsp,
                     (vco or 0.0) if src == "pll" else 0.0])


def fit(act):
    """The fitted coefficients {name: value} (least squares over the ``fit`` rows), plus the
    PLL rail's current per VCO MHz (from the ``fit`` PLL row)."""
    rows = [r for r in MEASUREMENTS if r[8] == "fit"]
    X = np.array([_row_vector(r, act) for r in rows])
    y = np.array([r[6] for r in rows], dtype=float)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise RuntimeError("The fit rows do not determine every coefficient")
    x, *_ = np.linalg.lstsq(X, y, rcond=None)
    out = dict(zip(FITTED, (float(v) for v in x)))
    pll = [r for r in rows if r[3] == "pll"]
    out["pll_rail_ua_per_vco_mhz"] = float(np.mean([r[7] / r[5] for r in pll]))
    return out


def validate(coef, act):
    """One dict per measurement: measured and predicted core (and PLL rail) current, error in
    percent, role and note."""
    x = np.array([coef[k] for k in FITTED])
    out = []
    for row in MEASUREMENTS:
        key, desc, design, src, f, vco, core, rail, role, note = row
        pred = float(_row_vector(row, act) @ x) if role != "not modelled" else None
        prail = coef["pll_rail_ua_per_vco_mhz"] * vco if src == "pll" else None
        out.append({"key": key, "description": desc, "role": role, "note": note,
                    "clock": src, "clock_mhz": f, "measured_ua": core, "predicted_ua":
                    None if pred is None else round(pred, 1),
                    "error_pct": None if pred is None else round(100 * (pred - core) / core, 2),
                    "pll_rail_measured_ua": rail if src == "pll" else None,
                    "pll_rail_predicted_ua": None if prail is None else round(prail, 1),
                    "pll_rail_error_pct": None if prail is None else
                    round(100 * (prail - rail) / rail, 2)})
    return out


def _markdown(coef, rows, act):
    lines = ["# Power model calibration (iCE40 UP5K)", "",
             f"Generated by `pezo calibrate` (`make calibrate`). Measurements: {SOURCE}. "
             "Every design below was rebuilt in Amaranth (`pezo.power.calibration.CalibrationDesign`), "
             "synthesised with the project's `synth_ice40` flow and simulated at gate level "
             "(Verilator, 4,096 cycles): the activity is the netlist's, not assumed.", "",
             "Model: core current = static + clock source + f x (clock base + FF clock x clocked "
             "FFs + net toggle x (LUT + carry + FF output toggles) + DSP toggle x SB_MAC16 output "
             "toggles + EBR access x EBR accesses), per cycle; a PLL adds its core current and "
             "its supply rail in proportion to its VCO frequency.", "",
             "## Fitted coefficients", ""]
    lines += markdown_table(["coefficient", "fitted", "in pezo.power", "source"],
                            [[f"`{k}`", f"{v:.4g}", f"{COEFFICIENTS[k][0]:.4g}",
                              COEFFICIENTS[k][1]] for k, v in coef.items()], "lrrl")
    lines += ["", "## Every measurement: fitted rows and held-out validation", ""]
    table = []
    for r in rows:
        pred = "–" if r["predicted_ua"] is None else f"{r['predicted_ua']:.1f}"
        err = "–" if r["error_pct"] is None else f"{r['error_pct']:+.1f} %"
        rail = "" if r["pll_rail_measured_ua"] is None else \
            f"{r['pll_rail_measured_ua']} / {r['pll_rail_predicted_ua']} " \
            f"({r['pll_rail_error_pct']:+.1f} %)"
        table.append([r["description"], r["role"], r["measured_ua"], pred, err, rail, r["note"]])
    lines += markdown_table(["measurement", "role", "measured core uA", "predicted", "error",
                             "PLL rail uA (measured / predicted)", "note"], table, "llrrrrl")
    held = [r for r in rows if r["role"] == "held-out"]
    worst = max(held, key=lambda r: abs(r["error_pct"]))
    lines += ["", f"Held out: {len(held)} points; largest error {worst['error_pct']:+.1f} % "
                  f"({worst['description']}).", "",
              "## Simulated activity of the calibration designs (per cycle)", ""]
    table = []
    for (kind, arg), a in sorted(act.items(), key=lambda kv: str(kv[0])):
        name = f"counter {arg} bits" if kind == "counter" else \
            f"math, {'1 DSP' if arg else 'LUT multiplier'}"
        cells = ", ".join(f"{n} {c}" for n, c in a["cells"].items())
        table.append([name, a["lut_toggles"], a["carry_toggles"], a["ff_toggles"],
                      a["ff_clocked"], a["dsp_toggles"], cells])
    lines += markdown_table(["design", "LUT toggles", "carry toggles", "FF toggles",
                             "clocked FFs", "DSP toggles", "cells"], table, "lrrrrrl")
    lines += ["", "## What the model still assumes (carried as ranges)", "",
              "Every power figure in a report (`dynamic_mw_range`, `total_mw_range`) and every "
              "reduction in `make compare` is given over the corners of these ranges (the "
              "same coefficients for both designs of a comparison):", ""]
    for k, (lo, hi, why) in UNCERTAIN.items():
        lines.append(f"* `{k}` x {lo:g} .. x {hi:g}: {why}.")
    lines += ["", "Glitches: zero-delay simulation cannot see them. The net-toggle charge is "
              "fitted on the LUT multiplier, whose glitches it therefore includes; the counters "
              "cannot separate it from the clock base (their toggles do not change with width). "
              "The range above bounds it instead of modelling delays.", "",
              "EBR: no published iCE40 block-RAM current exists to our knowledge; accesses are "
              "counted from the clock enables (RCLKE and RE for a read, WCLKE and WE for a "
              "write), and the energy per access is the assumption above.", "",
              "PLL: its core current and supply-rail current are modelled as proportional to the "
              "VCO frequency, fitted at the 48 MHz setting (VCO 768 MHz, the iCEBreaker "
              "engine's) and validated at 16 and 32 MHz (VCO 1020 MHz).", ""]
    return "\n".join(lines)


def run(out_dir="docs", build_root="build", progress=print):
    """Measure, fit, validate; write power_calibration.md/.json into ``out_dir``. Returns
    (coefficients, validation rows)."""
    act = measure(build_root, progress)
    coef = fit(act)
    rows = validate(coef, act)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "power_calibration.md").write_text(_markdown(coef, rows, act))
    (out / "power_calibration.json").write_text(json.dumps(
        {"source": SOURCE, "coefficients": coef, "rows": rows,
         "activity": {f"{k[0]}-{k[1]}": v for k, v in act.items()}}, indent=2) + "\n")
    return coef, rows
