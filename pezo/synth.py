"""``make synth BOARD=...`` / ``pezo synth``: yosys + nextpnr for a board, and its report.json.

The board top level (:class:`pezo.boards.top.BoardTop`: the engine behind a UART command port)
is built with the amaranth-boards platform, using the YoWASP tools by default (a ``YOSYS``,
``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5`` or ``ECPPACK`` variable selects another build).
Products land in ``build/<board>/<config>/``: the bitstream, ``pezo_top.rpt`` (yosys log),
``pezo_top.tim`` (nextpnr log), ``stat.json`` (yosys cells), ``nextpnr.json`` (nextpnr report) and
``report.json`` (the summary this module writes).
"""

import json
import os
from pathlib import Path
import re
import signal
import subprocess
import time

from pezo.boards.wrapper import BlockWrapper
from pezo.boards.targets import clocked_board, get_board
from pezo.boards.top import BoardTop
from pezo.designs import (REGISTRY, check_design, default_config, design_block, design_config,
                          design_name)
from pezo.power import estimate_power
from pezo.report import load_report
from pezo.toolchain import PRE_SYNTH, setup_environment, undefined_collisions

__all__ = ["synth", "summarise", "sweep_seeds", "seed_spread", "worst_slack_met", "critical_path"]



def _tool_version(env, var, arg):
    try:
        r = subprocess.run([env[var], arg], capture_output=True, text=True, env=env, timeout=120)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except Exception as e:    # the version is informative only
        return f"unknown ({e})"


def worst_slack_met(pnr_report) -> tuple:
    """(met, worst achieved/constraint ratio) over the clocks of a nextpnr ``--report``."""
    ratios = [v["achieved"] / v["constraint"] for v in pnr_report.get("fmax", {}).values()
              if v.get("constraint")]
    worst = min(ratios) if ratios else 1.0
    return worst >= 1.0, worst


def sweep_seeds(first, count, run, first_result=None, stop_early=True):
    """Try placement seeds ``first``, ``first + 1``, ... (at most ``count``). ``run(seed)``
    places and routes with that seed and returns (met, ratio); ``first_result`` is that of seed
    ``first`` when it has already been placed. With ``stop_early`` the sweep ends at the first
    seed that meets timing; without it every seed is tried (for the spread) and the best is kept.
    When the kept seed is not the last one run, it is run again last, so its outputs are the ones
    left on disk. Returns (chosen seed, [(seed, ratio), ...] in the order tried)."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"Seed count must be a positive integer, not {count!r}")
    tried = []
    for seed in range(first, first + count):
        met, ratio = first_result if seed == first and first_result else run(seed)
        tried.append((seed, ratio))
        if met and stop_early:
            return seed, tried
    best = max(tried, key=lambda t: t[1])[0]
    if best != tried[-1][0]:
        run(best)
    return best, tried


def seed_spread(tried, constraint_mhz):
    """The fmax spread of a seed sweep: min / median / max in MHz (the worst clock's achieved
    frequency, ratio x constraint) and how many seeds met the constraint."""
    mhz = sorted(r * constraint_mhz for _, r in tried)
    n = len(mhz)
    median = mhz[n // 2] if n % 2 else (mhz[n // 2 - 1] + mhz[n // 2]) / 2
    return {"seeds": n, "met": sum(r >= 1.0 for _, r in tried),
            "min_mhz": round(mhz[0], 2), "median_mhz": round(median, 2),
            "max_mhz": round(mhz[-1], 2), "constraint_mhz": round(constraint_mhz, 2)}


def _src_line(attrs):
    """The first Amaranth ``file:line`` of a cell's ``src`` attribute (yosys' own techmap lines
    are not sources), or None."""
    srcs = [x.split(":")[0].split("/")[-1] + ":" + x.split(":")[1].split(".")[0]
            for x in attrs.get("src", "").split("|")
            if x and ":" in x and not re.search(r"(_map\w*|techmap)\.v", x)]
    return srcs[0] if srcs else None


class _Netlist:
    """The flat post-synthesis netlist (``<top>.json``), indexed for tracing nextpnr's cells to
    the registers (and their Amaranth lines) around them: after packing, a logic cell (``X_LC``)
    holds the LUT ``X`` and the flip-flop its output feeds, and the LUTs yosys mapped carry no
    source line of their own."""

    def __init__(self, cells):
        self.cells = cells
        self.driver, self.sinks = {}, {}
        for name, c in cells.items():
            dirs = c.get("port_directions", {})
            for port, bits in c.get("connections", {}).items():
                for b in bits:
                    if not isinstance(b, int):
                        continue
                    if dirs.get(port) == "output":
                        self.driver[b] = (name, port)
                    else:
                        self.sinks.setdefault(b, []).append((name, port))

    def _is_ff(self, name):
        return self.cells.get(name, {}).get("type", "").startswith(("SB_DFF", "TRELLIS_FF",
                                                                     "FD1"))

    def base(self, lc):
        return re.sub(r"(_DFFLC|_LC)$", "", lc)

    def src(self, name):
        return _src_line(self.cells.get(name, {}).get("attributes", {}))

    def own_line(self, lc):
        """The line of a packed cell: its own src, else the register its LUT feeds; for a block
        RAM or DSP without a source line, its instance name and type."""
        name = self.base(lc)
        line = self.src(name)
        if line or name not in self.cells:
            return line
        for bit in self.cells[name].get("connections", {}).get("O", []):
            for sink, _ in self.sinks.get(bit, []):
                if self._is_ff(sink) and self.src(sink):
                    return self.src(sink)
        kind = self.cells[name].get("type", "")
        if kind and not kind.endswith("LUT4"):     # a block RAM or DSP: its instance name
            return f"{name} ({kind})"
        return None

    def fed_by(self, lc):
        """Lines of the registers driving a LUT's inputs directly (the side inputs of a level)."""
        c = self.cells.get(self.base(lc), {})
        out = []
        for port, bits in sorted(c.get("connections", {}).items()):
            if c.get("port_directions", {}).get(port) == "output":
                continue
            for b in bits:
                drv = self.driver.get(b)
                if drv and self._is_ff(drv[0]) and self.src(drv[0]) not in out + [None]:
                    out.append(self.src(drv[0]))
        return out


def critical_path(out, top="pezo_top"):
    """The worst clock-to-clock path of the last placement in ``out`` (nextpnr's report), with
    each cell traced back to the Amaranth source line that made it (the ``src`` attribute yosys
    keeps in ``<top>.json``). Returns {"from", "to", "to_pin", "delay_ns", "logic_ns",
    "routing_ns", "levels", "through", "sources": [(file:line, ns), ...] largest first} or None.
    ``from`` and ``to`` are the lines of the launching and capturing registers (a packed logic
    cell is named by the register its LUT feeds), ``to_pin`` the pin the path ends on (``CEN``:
    a clock enable), ``through`` the registers feeding each logic level on the way; LUTs that
    yosys mapped carry no line of their own: their delay counts as "(mapped logic)"."""
    out = Path(out)
    try:
        pnr = json.loads((out / "nextpnr.json").read_text())
        net = _Netlist(json.loads((out / f"{top}.json").read_text())["modules"][top]["cells"])
    except (OSError, KeyError, ValueError):
        return None
    paths = [p for p in pnr.get("critical_paths", [])
             if p.get("from", "").startswith("posedge") and p.get("to", "").startswith("posedge")
             and p["path"]]
    if not paths:
        return None
    path = max(paths, key=lambda p: sum(s["delay"] for s in p["path"]))
    by_src = {}
    for seg in path["path"]:
        src = net.src(net.base(seg["to"]["cell"])) or "(mapped logic)"   # a delay counts at its sink
        by_src[src] = by_src.get(src, 0.0) + seg["delay"]
    through = []
    for seg in path["path"]:
        if seg["type"] == "logic":
            side = net.fed_by(seg["to"]["cell"])
            if side:
                through.append(side)
    logic = sum(s["delay"] for s in path["path"] if s["type"] in ("logic", "clk-to-q", "setup"))
    routing = sum(s["delay"] for s in path["path"] if s["type"] == "routing")
    return {"from": net.own_line(path["path"][0]["from"]["cell"]) or "(a packed LUT+FF)",
            "to": net.own_line(path["path"][-1]["to"]["cell"]) or "(a packed LUT+FF)",
            "to_pin": path["path"][-1]["to"].get("port"),
            "delay_ns": round(logic + routing, 2), "logic_ns": round(logic, 2),
            "routing_ns": round(routing, 2),
            "levels": sum(s["type"] == "logic" for s in path["path"]),
            "through": through,
            "sources": sorted(((k, round(v, 2)) for k, v in by_src.items()),
                              key=lambda kv: -kv[1])}


def over_capacity(log_text):
    """The resources nextpnr's "Device utilisation" lists as used beyond what the device has:
    [(resource, used, available)]."""
    found = re.findall(r"Info:\s+(\w+):\s+(\d+)\s*/\s*(\d+)\s+\d+%", log_text)
    return list(dict.fromkeys((k, int(u), int(a)) for k, u, a in found if int(u) > int(a)))


def _no_fit(out, board, env, largest=4):
    """Why a placement failed: the resources over capacity (from nextpnr's log) and the
    ``largest`` modules of the hierarchy-keeping breakdown (written to ``modules.json``), or
    None when the log names no resource over capacity."""
    try:
        over = over_capacity((Path(out) / "pezo_top.tim").read_text())
    except OSError:
        return None
    if not over:
        return None
    text = "; ".join(f"{k} {u:,} used of {a:,} ({100 * u / a:.0f} %, {u - a:,} over)"
                     for k, u, a in over)
    try:
        mods = module_breakdown(out, board.family, board.dsp, env=env)
    except RuntimeError:
        return text
    top = sorted(mods.items(), key=lambda kv: -(kv[1]["lut4"] + kv[1]["ff"]))[:largest]
    return (text + "; largest modules (own cells, LUT4 / FF): "
            + ", ".join(f"{k} {v['lut4']:,} / {v['ff']:,}" for k, v in top)
            + f" (all: {Path(out) / 'modules.json'})")


def _pnr_seconds(out):
    """Wall time of the build's first place and route (its log's first and last write), or
    60 s when the log cannot say."""
    log = Path(out) / "pezo_top.tim"
    try:
        st = log.stat()
        return max(1.0, st.st_mtime - (Path(out) / "pezo_top.json").stat().st_mtime)
    except OSError:
        return 60.0


def _worst_constraint(pnr_report):
    """The constraint (MHz) of the clock with the worst achieved/constraint ratio."""
    clocks = [v for v in pnr_report.get("fmax", {}).values() if v.get("constraint")]
    if not clocks:
        return None
    return min(clocks, key=lambda v: v["achieved"] / v["constraint"])["constraint"]


class PnrTimeout(RuntimeError):
    """A placement seed's place and route did not finish within its time limit."""


#: Time limit of one re-placement (seconds): the first placement's time x this, at least
#: :data:`PNR_TIMEOUT_MIN` (a seed whose routing does not converge is counted as a miss).
PNR_TIMEOUT_FACTOR = 6
PNR_TIMEOUT_MIN = 240.0


def _place_and_route(out, seed, env, timeout=None):
    """Re-run the build script's nextpnr and pack steps with another placement seed (the
    synthesised netlist is reused). Returns (met, ratio); raises :class:`PnrTimeout` after
    ``timeout`` seconds (the process group is killed)."""
    lines = (Path(out) / "build_pezo_top.sh").read_text().splitlines()
    keep = [line for line in lines if line.startswith(": ${")]
    pnr = [line for line in lines if line.lstrip().startswith('"$NEXTPNR')]
    pack = [line for line in lines if line.lstrip().startswith(('"$ICEPACK"', '"$ECPPACK"'))]
    if len(pnr) != 1:
        raise RuntimeError(f"Cannot find the nextpnr step in {out}/build_pezo_top.sh")
    script = "set -e\n" + "\n".join(keep + [re.sub(r"--seed \d+", f"--seed {seed}", pnr[0])]
                                     + pack) + "\n"
    proc = subprocess.Popen(["bash", "-c", script], cwd=out, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)         # nextpnr's router can loop for hours
        proc.communicate()
        raise PnrTimeout(f"Place and route with seed {seed} did not finish in {timeout:.0f} s "
                         "(the router could not resolve its congestion)") from None
    if proc.returncode:
        raise RuntimeError(f"Place and route with seed {seed} failed: {stderr[-800:]}; see the "
                           f"logs in {out}")
    return worst_slack_met(json.loads((Path(out) / "nextpnr.json").read_text()))


def synth(board_name, config=None, build_root="build", seed=1, name=None, progress=print,
          design="engine", power=True, seeds=1, all_seeds=False):
    """Synthesise, place and route ``design`` (:mod:`pezo.designs`) under ``config`` (default:
    the board's) for ``board_name``.

    ``config`` is an :class:`~pezo.config.EngineConfig` (its generator configuration is used by
    block designs), for block designs a :class:`~pezo.config.GeneratorConfig`, for the training
    design (``train``) a :class:`~pezo.sim.ontrain.TrainerConfig` (default: the iCEBreaker's).
    With ``power``, the activity-based power estimate (:mod:`pezo.power`: calibrated on iCE40,
    uncalibrated on ECP5, as its ``calibrated`` field says; not made for the training design,
    whose workload is not modelled) is added.
    ``seeds`` > 1: when placement with ``seed`` misses the clock constraint, try the next
    seeds (up to ``seeds`` in all) until one meets it, else keep the best; with ``all_seeds``,
    try all of them and keep the best (``seed_sweep`` in the report lists the seeds tried with
    their achieved fmax, ``fmax_spread`` gives min / median / max and how many met the
    constraint). ``timing_met`` says whether the kept placement meets every clock constraint.
    Returns the report dict (also written to ``<build_root>/<board>/<name>/report.json``)."""
    board = get_board(board_name)
    check_design(design)
    cfg = config or default_config(design, board.default)
    board = clocked_board(board, cfg)                 # the training design's own clock, if set
    bridged = REGISTRY[design].board == "bridge"      # the engine or the training design
    if bridged:
        design_config(design, cfg)                    # a ValueError unless it is the right kind
    gen = getattr(cfg, "generator", cfg)
    env = setup_environment()
    name = name or design_name(design, cfg)
    out = Path(build_root) / board.name / name
    out.mkdir(parents=True, exist_ok=True)
    platform = board.platform_class()()
    overrides = {"script_after_read": PRE_SYNTH,
                 "script_after_synth": "tee -q -o stat.json stat -json",
                 "nextpnr_opts": f"--seed {seed} --report nextpnr.json --timing-allow-fail"}
    if board.family == "ice40" and board.dsp:
        overrides["synth_opts"] = "-dsp"
    progress(f"[synth] {board.name}: {design} {name} -> {out}")
    t0 = time.time()
    if bridged:
        top, core = BoardTop(cfg, pll_mhz=board.pll_mhz), "pezo_top.bridge.engine"
    else:
        top = BoardTop(None, pll_mhz=board.pll_mhz, design=BlockWrapper(design_block(design, gen)))
        core = "pezo_top.bridge.dut"
    try:
        plan = platform.build(top, name="pezo_top", do_build=False, **overrides)
        plan.files["pezo_top.il"] = undefined_collisions(plan.files["pezo_top.il"])
        plan.execute_local(str(out))
    except Exception as e:
        log = out / "pezo_top.tim"
        tail = log.read_text()[-1500:] if log.exists() else ""
        if ("Unable to place" in tail or "failed to place" in tail.lower() or "available" in tail
                or "Failed to expand region" in tail):    # the packer's and placer's messages
            progress("[synth] does not fit: per-module breakdown (hierarchy kept)")
            raise ValueError(f"Configuration {name} does not fit {board.description}: "
                             f"{_no_fit(out, board, env) or tail.strip().splitlines()[-1]}") \
                from None
        raise RuntimeError(f"Synthesis for {board.name} failed ({e}); see the logs in {out}") \
            from None
    sweep = spread = None
    if seeds != 1:
        first = worst_slack_met(json.loads((out / "nextpnr.json").read_text()))
        progress(f"[synth] seed {seed}: {100 * first[1]:.1f} % of the clock constraint")

        paths = {seed: critical_path(out)}
        limit = max(PNR_TIMEOUT_MIN, PNR_TIMEOUT_FACTOR * _pnr_seconds(out))
        unrouted = []

        def run(sd):
            try:
                result = _place_and_route(out, sd, env, timeout=limit)
            except PnrTimeout as e:
                unrouted.append(sd)
                paths[sd] = None
                progress(f"[synth] seed {sd}: {e}; counted as a miss")
                return False, 0.0
            paths[sd] = critical_path(out)
            cp = paths[sd]
            progress(f"[synth] seed {sd}: {100 * result[1]:.1f} % of the clock constraint"
                     + (f" (critical path {cp['from']} -> {cp['to']} {cp.get('to_pin') or ''}, "
                          f"{cp['levels']} levels)"
                        if cp else ""))
            return result
        seed, tried = sweep_seeds(seed, seeds, run, first_result=first,
                                  stop_early=not all_seeds)
        constraint = _worst_constraint(json.loads((out / "nextpnr.json").read_text()))
        sweep = [{"seed": sd, "fmax_over_constraint": round(r, 4),
                  "fmax_mhz": round(r * constraint, 2) if constraint and sd not in unrouted
                  else None, "critical_path": paths.get(sd)}
                 | ({"unrouted": f"no route within {limit:.0f} s"} if sd in unrouted else {})
                 for sd, r in tried]
        routed = [(sd, r) for sd, r in tried if sd not in unrouted]
        spread = seed_spread(routed, constraint) if constraint and routed else None
        if spread is not None and unrouted:
            spread["seeds"] += len(unrouted)
            spread["unrouted"] = len(unrouted)
        progress(f"[synth] kept seed {seed}")
    progress("[synth] per-module breakdown (hierarchy kept)")
    modules = module_breakdown(out, board.family, board.dsp, env=env)
    secs = time.time() - t0
    report = summarise(out, board, cfg if bridged else gen, seed, secs, env)
    report["config_name"] = name
    report["design"] = design
    report["core_module"] = core
    report["modules"] = modules
    if sweep is not None:
        report["seed_sweep"] = sweep
    if spread is not None:
        report["fmax_spread"] = spread
    report["timing_met"] = worst_slack_met(json.loads((out / "nextpnr.json").read_text()))[0]
    report["critical_path"] = critical_path(out)
    if power:
        progress("[synth] power estimate (gate-level simulation of the core netlist)")
        report["power"] = estimate_power(design, cfg, board, out, report, env=env,
                                         progress=progress)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    progress(format_summary(report))
    return report


def cached_or_synth(board_name, cfg, design="engine", name=None, build_root="build",
                    force=False, progress=print):
    """The report of ``design`` under ``cfg`` on ``board_name``: the existing
    ``<build_root>/<board>/<name>/report.json`` unless ``force``, else :func:`synth`'s."""
    board = get_board(board_name)
    name = name or design_name(design, cfg)
    path = Path(build_root) / board.name / name / "report.json"
    if path.exists() and not force:
        return load_report(path)
    return synth(board.name, cfg, build_root=build_root, name=name, design=design,
                 progress=progress)


def _resources(cells):
    """LUT4 / FF / carry / BRAM / SPRAM / DSP counts of a yosys cells-by-type dict."""
    return {"lut4": sum(v for k, v in cells.items() if re.match(r"(SB_LUT4|LUT4)$", k)),
            "ff": sum(v for k, v in cells.items() if re.match(r"(SB_DFF\w*|TRELLIS_FF)$", k)),
            "carry": cells.get("SB_CARRY", cells.get("CCU2C", 0)),
            "bram": cells.get("SB_RAM40_4K", 0) + cells.get("DP16KD", 0),
            "spram": cells.get("SB_SPRAM256KA", 0),
            "dsp": cells.get("SB_MAC16", 0) + cells.get("MULT18X18D", 0)}


def module_breakdown(out, family, dsp, top="pezo_top", env=None):
    """Per-module cells from a hierarchy-keeping synthesis of ``<out>/<top>.il``.

    The main build flattens the design (as vendor flows do), so module boundaries are gone from
    its netlist; this second yosys run maps the same RTLIL with ``-noflatten`` and reports every
    module's own cells (not its submodules'). Its totals can differ from the flat build by the
    optimisations that cross module boundaries (a few percent). Returns {path: resources}, where
    path is the instance path (``pezo_top.bridge.engine.gen.bank``)."""
    env = env or setup_environment()
    synth_cmd = "synth_ice40" if family == "ice40" else "synth_ecp5"
    opts = " -dsp" if (family == "ice40" and dsp) else ""
    script = (f"read_rtlil {top}.il\n{PRE_SYNTH}\n{synth_cmd} -noflatten{opts} -top {top}\n"
              "tee -q -o modules.json stat -json\n")
    (Path(out) / "breakdown.ys").write_text(script)
    r = subprocess.run([env["YOSYS"], "-q", "-l", "breakdown.log", "-s", "breakdown.ys"],
                       cwd=out, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"Per-module synthesis failed; see {Path(out) / 'breakdown.log'}")
    stat = json.loads((Path(out) / "modules.json").read_text())
    names = {k.lstrip("\\") for k in stat.get("modules", {})}
    modules = {}
    for name, info in stat.get("modules", {}).items():
        cells = {k: v for k, v in info.get("num_cells_by_type", {}).items()
                 if k.lstrip("\\") not in names}
        res = _resources(cells)
        res["cells"] = dict(sorted(cells.items()))
        modules[name.lstrip("\\")] = res
    return dict(sorted(modules.items()))


def summarise(out, board, cfg, seed, seconds, env):
    stat = json.loads((Path(out) / "stat.json").read_text())
    design = stat.get("design", {})
    cells = design.get("num_cells_by_type", {})
    pnr = json.loads((Path(out) / "nextpnr.json").read_text())
    util = {k: {"used": v["used"], "available": v["available"],
                "percent": round(100.0 * v["used"] / v["available"], 2) if v["available"] else 0}
            for k, v in pnr.get("utilization", {}).items()}
    fmax = {clk: {"achieved_mhz": round(v["achieved"], 2), "constraint_mhz": round(v["constraint"], 2)}
            for clk, v in pnr.get("fmax", {}).items()}
    family = board.family
    nxp = "NEXTPNR_ICE40" if family == "ice40" else "NEXTPNR_ECP5"
    return {
        "board": board.name, "description": board.description, "family": family,
        "config_name": cfg.name(), "config": cfg.to_dict(), "seed": seed,
        "tools": {"yosys": _tool_version(env, "YOSYS", "-V"),
                  "nextpnr": _tool_version(env, nxp, "--version")},
        "cells": dict(sorted(cells.items())),
        "summary": _resources(cells),
        "utilization": util, "fmax": fmax, "seconds": round(seconds, 1),
    }


def format_summary(r):
    s = r["summary"]
    lines = [f"[synth] {r['board']} {r['config_name']}",
             f"        LUT4 {s['lut4']}  FF {s['ff']}  carry {s['carry']}  BRAM {s['bram']}  "
             f"SPRAM {s['spram']}  DSP {s['dsp']}"]
    for k, v in r["utilization"].items():
        if v["used"]:
            lines.append(f"        {k:<16} {v['used']:>6} / {v['available']:<6} ({v['percent']:.1f} %)")
    for clk, f in r["fmax"].items():
        lines.append(f"        fmax {clk}: {f['achieved_mhz']:.1f} MHz (constraint "
                     f"{f['constraint_mhz']:.1f} MHz)")
    sp = r.get("fmax_spread")
    if sp:
        routed = sp["seeds"] - sp.get("unrouted", 0)
        lines.append(f"        fmax over {routed} routed placement seeds: min {sp['min_mhz']:.1f} / "
                     f"median {sp['median_mhz']:.1f} / max {sp['max_mhz']:.1f} MHz; "
                     f"{sp['met']} of {sp['seeds']} meet {sp['constraint_mhz']:.1f} MHz "
                     f"(kept seed {r['seed']})"
                     + (f"; {sp['unrouted']} seed(s) did not route in time"
                        if sp.get("unrouted") else ""))
    cp = r.get("critical_path")
    if cp:
        lines.append(f"        critical path {cp['delay_ns']} ns ({cp['levels']} logic levels, "
                     f"{cp['routing_ns']} ns routing): {cp['from']} -> {cp['to']}"
                     + (f" ({cp['to_pin']})" if cp.get("to_pin") else ""))
    if r.get("timing_met") is False:
        lines.append("        TIMING MISSED: the kept placement does not meet its clock "
                     "constraint; the bitstream would run out of specification")
    p = r.get("power") or {}
    if p.get("total_mw") is not None:
        kind = "model" if p.get("calibrated", True) else "UNCALIBRATED model"
        lines.append(f"        power ({kind}, {p['clock_mhz']:.1f} MHz): static {p['static_mw']:.3f} mW"
                     f"  dynamic {p['dynamic_mw']:.3f} mW  total {p['total_mw']:.3f} mW"
                     + (f" (dynamic {p['dynamic_mw_range'][0]:.3f}-{p['dynamic_mw_range'][1]:.3f}"
                        f", total {p['total_mw_range'][0]:.3f}-{p['total_mw_range'][1]:.3f})"
                        if p.get("dynamic_mw_range") and p.get("total_mw_range") else ""))
    elif p.get("unavailable"):
        lines.append(f"        power: not estimated ({p['unavailable']})")
    lines.append(f"        {r['seconds']} s; report: build/{r['board']}/{r['config_name']}/report.json")
    return "\n".join(lines)
