"""``make bench`` / ``pezo bench``: throughput figures, measured here and printed (not asserted).

* golden model: values per second for 10^7 values (best of 3), per configuration, beside the
  NumPy PCG64 reference (10^7 int16 draws, best of 3) measured in the same run;
* Amaranth simulator: generator cycles per second;
* Verilator: generator cycles per second with the compiled harness (random stalls, 75 % ready),
  and the bulk comparison speed with the golden model;
* engine cycles per pass for d = 4096 weights at m = 1/4/8 (Amaranth simulator, counted), and the
  cocotb-on-Verilator co-simulation speed of the engine in weight updates per second (MeZO passes
  with a full read-back after each, so the figure includes the checking traffic);
* MeZO passes through the Verilator-built board over a pseudo-terminal (the host's serial
  transport) against the Amaranth transport, in weight updates per second, and their ratio;
* training steps per second (:func:`pezo.host.trainbench.bench_training`): the golden engine on every
  data set and model, the float baseline, the simulated hardware; per step the time of the
  perturbation path and of the NumPy forward pass, and their ratio (a second table);
* the wall time of ``make test``.

Results go to the terminal (a table) and to ``build/bench/bench.json``.
"""

import json
from pathlib import Path
import platform
import subprocess
import sys
import time

from amaranth.sim import Simulator
import numpy as np
from rich.console import Console
from rich.table import Table

from pezo.config import EngineConfig, GeneratorConfig as G
from pezo.host.engine import AmaranthTransport
from pezo.host.serial_link import SerialTransport
from pezo.host.trainbench import bench_training
from pezo.hw.engine import PerturbEngine
from pezo.hw.generator import PerturbationGenerator
from pezo.sim.cosim.board import SimBoard
from pezo.sim.cosim.cocotb_run import run_cocotb
from pezo.sim.engine import Op
from pezo.sim.generator import generate
from pezo.sim.cosim.harness import build_harness, compare_with_model, run_harness

__all__ = ["run_bench"]

MODEL_CONFIGS = [G(), G(lanes=8), G(lanes=8, scale="fixed"), G(reuse="pregen"),
                 G(lanes=2, reuse="onthefly", out_lanes=8), G(lanes=4, width=12)]


def _best_of(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_model(count):
    """Golden model values per second (best of 3) per configuration, and the NumPy PCG64
    reference measured in the same run: ``count`` int16 draws (best of 3)."""
    rng = np.random.default_rng(1)
    secs = _best_of(lambda: rng.integers(-1 << 15, 1 << 15, count, dtype=np.int16))
    rows = [{"what": "NumPy PCG64 reference", "config": "int16 draws", "count": count,
             "seconds": secs, "rate": count / secs, "unit": "values/s"}]
    for cfg in MODEL_CONFIGS:
        generate(cfg, 1, 1000)
        secs = _best_of(lambda: generate(cfg, 1, count))
        rows.append({"what": "golden model", "config": cfg.name(), "count": count,
                     "seconds": secs, "rate": count / secs, "unit": "values/s",
                     "vs_pcg64": secs and rows[0]["seconds"] / secs})
    return rows


def bench_amaranth(cycles):

    rows = []
    for cfg in (G(), G(lanes=8)):
        dut = PerturbationGenerator(cfg)

        async def tb(ctx):
            ctx.set(dut.o.ready, 1)
            await ctx.tick().repeat(cycles)

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(tb)
        t0 = time.perf_counter()
        sim.run()
        secs = time.perf_counter() - t0
        rows.append({"what": "Amaranth simulator", "config": cfg.name(), "count": cycles,
                     "seconds": secs, "rate": cycles / secs, "unit": "cycles/s"})
    return rows


def bench_verilator(beats, tmp):
    rows = []
    for cfg in (G(lanes=8), G(lanes=8, scale="fixed")):
        exe = build_harness(cfg)
        run = run_harness(exe, tmp / f"{cfg.name()}.bin", beats, 1, ready_pct=75)
        rows.append({"what": "Verilator harness", "config": cfg.name(), "count": run.cycles,
                     "seconds": run.seconds, "rate": run.cycles_per_second, "unit": "cycles/s"})
        t0 = time.perf_counter()
        n = compare_with_model(cfg, 1, run)
        secs = time.perf_counter() - t0
        rows.append({"what": "bulk check vs golden", "config": cfg.name(), "count": n,
                     "seconds": secs, "rate": n / secs, "unit": "values/s"})
        (tmp / f"{cfg.name()}.bin").unlink()
    return rows


def bench_engine(quick):
    """Engine cycles per pass (Amaranth simulator, measured) for d = 4096 at m = 1/4/8, and the
    cocotb-on-Verilator co-simulation speed in weight updates per second."""
    rows = []
    depth = 512 if quick else 4096
    for m in (1, 4, 8):
        cfg = EngineConfig(generator=G(lanes=m), depth=depth)
        t = AmaranthTransport(cfg)
        t.command(Op.SEED, 1)
        t.command(Op.NOP)
        c0, t0 = t.cycles, time.perf_counter()
        t.command(Op.PERTURB, 0)
        secs = time.perf_counter() - t0
        rows.append({"what": "engine pass (Amaranth sim)", "config": f"{cfg.name()}",
                     "count": t.cycles - c0, "seconds": secs, "rate": depth / secs,
                     "unit": "weights/s", "cycles_per_pass": t.cycles - c0})
    cfg = EngineConfig(generator=G(lanes=8), depth=depth)
    steps = 2 if quick else 6
    _, secs = run_cocotb("verilator", "pezo_engine", PerturbEngine(cfg), f"bench-{cfg.name()}",
                            "pezo.sim.cosim.cocotb_engine_tb",
                            {"config": cfg.to_dict(), "seed": 3, "steps": steps, "queries": 1,
                             "stall": 0.0, "rng_seed": 1}, root="build/bench/cocotb")
    updates = steps * 4 * depth
    rows.append({"what": "engine co-sim (cocotb+Verilator)", "config": cfg.name(),
                 "count": updates, "seconds": secs, "rate": updates / secs,
                 "unit": "weight updates/s"})
    return rows


def _timed_passes(transport, n, cfg, what):
    """A bench row: ``n`` PERTURB passes on ``transport`` (after a SEED), timed."""
    transport.command(Op.SEED, 1)
    t0 = time.perf_counter()
    for k in range(n):
        transport.command(Op.PERTURB, k % 2)
    secs = time.perf_counter() - t0
    return {"what": what, "config": cfg.name(), "count": n * cfg.depth, "seconds": secs,
            "rate": n * cfg.depth / secs, "unit": "weight updates/s"}


def bench_link(quick):
    """Weight updates per second of MeZO passes (PERTURB commands, d = 4096, m = 4) through the
    Amaranth transport and through the Verilator-built board behind a pseudo-terminal
    (SerialTransport: frames, UART bits at 4 clocks per bit, replies), and their ratio."""
    cfg = EngineConfig(generator=G(lanes=4), depth=512 if quick else 4096)
    rows = [_timed_passes(AmaranthTransport(cfg), 1 if quick else 2, cfg,
                          "MeZO passes, Amaranth transport")]
    with SimBoard(cfg) as board:
        link = SerialTransport(cfg, board.port)
        rows.append(_timed_passes(link, 20 if quick else 200, cfg,
                                  "MeZO passes, Verilator board over a pty"))
        link.close()
    rows.append({"what": "Verilator board / Amaranth transport", "config": cfg.name(),
                 "count": 1, "seconds": 0.0, "rate": rows[1]["rate"] / rows[0]["rate"],
                 "unit": "x"})
    return rows


def bench_make_test():
    t0 = time.perf_counter()
    r = subprocess.run(["make", "test"], capture_output=True, text=True)
    secs = time.perf_counter() - t0
    tail = (r.stdout.strip().splitlines() or ["?"])[-1]
    return [{"what": "make test (wall)", "config": tail, "count": 1, "seconds": secs,
             "rate": secs, "unit": "s", "ok": r.returncode == 0}]


def _bench_training(quick):
    return bench_training(quick)


def run_bench(args):
    console = Console(width=max(140, Console().width))
    out = Path("build/bench")
    out.mkdir(parents=True, exist_ok=True)
    quick = getattr(args, "quick", False)
    rows = []
    steps = [("golden model", lambda: bench_model(10**6 if quick else 10**7)),
             ("Amaranth simulator", lambda: bench_amaranth(500 if quick else 5000)),
             ("Verilator harness", lambda: bench_verilator(10**5 if quick else 2 * 10**6, out)),
             ("engine", lambda: bench_engine(quick)),
             ("board link", lambda: bench_link(quick)),
             ("training", lambda: _bench_training(quick))]
    if not getattr(args, "no_test_timing", False) and not quick:
        steps.append(("make test", bench_make_test))
    for name, fn in steps:
        with console.status(f"measuring {name} ..."):
            rows += fn()
    t = Table(title="pezo bench (this machine)")
    for col in ("measurement", "configuration", "count", "seconds", "rate"):
        t.add_column(col, justify="right" if col in ("count", "seconds", "rate") else "left")
    for r in rows:
        if r["unit"] == "s":
            rate = f"{r['rate']:.1f} s"
        elif r["rate"] < 1e3:
            rate = f"{r['rate']:.2f} {r['unit']}"
        elif r["rate"] >= 1e6:
            rate = f"{r['rate'] / 1e6:.2f} M{r['unit']}"
        else:
            rate = f"{r['rate'] / 1e3:.2f} k{r['unit']}"
        if "vs_pcg64" in r:
            rate += f" ({r['vs_pcg64']:.2f} x PCG64)"
        count = f"{r['count']:,}" + (" cycles" if "cycles_per_pass" in r else "")
        t.add_row(r["what"], r["config"], count, f"{r['seconds']:.3f}", rate)
    console.print(t)
    train_rows = [r for r in rows if "forward_ms_per_step" in r]
    if train_rows:
        # Training: the perturbation path next to the forward pass, per step (medians).
        tt = Table(title="training step: perturbation path vs NumPy forward pass (ms per step; "
                         "ratio < 1: the engine is not the bottleneck)")
        for col in ("measurement", "configuration", "steps/s", "perturbation ms", "forward ms",
                    "ratio", "vs none"):
            tt.add_column(col, justify="left" if col in ("measurement", "configuration")
                          else "right")
        for r in train_rows:
            src = r.get("source_ms_per_step")
            tt.add_row(r["what"], r["config"], f"{r['rate']:,.1f}",
                       "-" if src is None else f"{src:.4f}", f"{r['forward_ms_per_step']:.4f}",
                       f"{r['ratio']:.2f}" if "ratio" in r else "-",
                       f"{r['vs_none']:.2f} x" if "vs_none" in r else "-")
        console.print(tt)
    meta = {"python": sys.version.split()[0], "machine": platform.machine(),
            "processor": platform.processor(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    (out / "bench.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    console.print(f"written {out / 'bench.json'}")
    return 0
