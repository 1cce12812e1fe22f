"""The perturbation engine: generator + MAC + weight memory + command FSM."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from pezo.config import EngineConfig
from pezo.hw.generator import PerturbationGenerator
from pezo.hw.lfsr import UniformBank
from pezo.hw.mac import MacOp, PerturbMAC, mac_input_layout
from pezo.hw.scaler import scale_register_bits
from pezo.sim.engine import Err, Op
from pezo.sim.mac import rounding_config, rounding_seed

__all__ = ["PerturbEngine", "command_layout"]

ARG_BITS = 64


def command_layout():
    return data.StructLayout({"op": 4, "arg": ARG_BITS})


class PerturbEngine(wiring.Component):
    """ZO perturbation engine, bit-exact with :class:`pezo.sim.engine.EngineModel`.

    Commands (opcodes, arguments, errors) are those of :mod:`pezo.sim.engine`. A PERTURB or UPDATE
    pass streams all d weights through the MAC at m per cycle: memory read -> MAC (2 stages) ->
    write back; the z values come from the generator, so a pass stalls only while the generator
    has no beat (pool fill, 2-3 cycles after a SEED or OFFSET).

    Parameters
    ----------
    config : EngineConfig

    Members
    -------
    cmd : In(stream.Signature(StructLayout({"op": 4, "arg": 64})))
        Commands; ``cmd.ready`` is high only while the engine is idle.
    wdata : In(stream.Signature(ArrayLayout(signed(b), m)))
        Weight words for WRITE.
    rdata : Out(stream.Signature(ArrayLayout(signed(b), m)))
        Weight words answering READ.
    busy, error, error_code, saturated, filling, last_pass, offset : Out
        Status (see :mod:`pezo.sim.engine`).
    """

    def __init__(self, config):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"Configuration must be an EngineConfig, not {config!r}")
        self._cfg = cfg = config
        g = cfg.generator
        row = data.ArrayLayout(signed(cfg.w_bits), cfg.lanes)
        super().__init__({
            "cmd": In(stream.Signature(command_layout())),
            "wdata": In(stream.Signature(row)),
            "rdata": Out(stream.Signature(row)),
            "busy": Out(1),
            "error": Out(1),
            "error_code": Out(2),
            "saturated": Out(1),
            "filling": Out(1),
            "last_pass": Out(2),
            "offset": Out(range(g.pool_words) if g.reuse == "pregen" else 1),
        })

    config = property(lambda self: self._cfg)

    @property
    def pass_cycles(self):
        """Cycles from accepting PERTURB/UPDATE to accepting the next command, when the generator
        does not stall: one issue cycle per word, then 6 (last read, 3 MAC stages, write, return
        to idle)."""
        return self._cfg.words + 6

    @property
    def latency(self):
        """Cycles from a word's read to its write-back in a pass."""
        return 4

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        g = cfg.generator
        words = cfg.words
        S = cfg.product_shift
        has_r = "r" in dict(mac_input_layout(cfg).members)

        m.submodules.gen = gen = PerturbationGenerator(g)
        m.submodules.mac = mac = PerturbMAC(cfg)
        if has_r:
            m.submodules.rbank = rbank = UniformBank(rounding_config(cfg))
        row = data.ArrayLayout(signed(cfg.w_bits), cfg.lanes)
        m.submodules.weights = wmem = memory.Memory(shape=row, depth=words, init=[])
        wr = wmem.write_port()
        rd = wmem.read_port()

        op, arg = self.cmd.payload.op, self.cmd.payload.arg
        mu = Signal(signed(cfg.coef_bits))
        coef_c = Signal(signed(cfg.coef_bits))
        mac_op = Signal(MacOp)
        stochastic = Signal()
        error = Signal()
        error_code = Signal(2)
        last_pass = Signal(2)
        m.d.comb += [self.error.eq(error), self.error_code.eq(error_code),
                     self.last_pass.eq(last_pass),
                     self.saturated.eq(mac.saturated | gen.saturated)]
        if g.reuse == "pregen":
            m.d.comb += [self.filling.eq(gen.filling), self.offset.eq(gen.offset)]

        # MAC wiring: coefficient and operation are registers, constant during a pass.
        m.d.comb += [mac.op.eq(mac_op), mac.stochastic.eq(stochastic),
                     mac.coef.eq(Mux(mac_op == MacOp.UPDATE, coef_c, mu)),
                     mac.o.ready.eq(1)]

        # Argument checks.
        cb = cfg.coef_bits
        hi = arg[cb - 1:]
        coef_ok = hi.all() | ~hi.any()
        start, count = arg[:32], arg[32:]
        block_ok = (count != 0) & (start + count <= words)

        counter = Signal(range(words + 1))
        base = Signal(range(words + 1))
        total = Signal(range(words + 1))
        drain = Signal(range(8))
        # Pass pipeline registers.
        va = Signal()
        za = Signal(data.ArrayLayout(signed(g.z_bits), cfg.lanes))
        ra = Signal(data.ArrayLayout(unsigned(S), cfg.lanes)) if has_r else None
        # Word addresses travel beside the data: one register per MAC stage.
        addr_a = Signal(range(words), name="addr_a")
        addr_pipe = [Signal(range(words), name=f"addr_s{i}") for i in range(mac.latency)]
        # Read pipeline register.
        rvalid = Signal()
        rdone = Signal(range(words + 1))

        m.d.comb += [mac.i.valid.eq(va), mac.i.payload.w.eq(rd.data), mac.i.payload.z.eq(za)]
        if has_r:
            m.d.comb += mac.i.payload.r.eq(ra)
        m.d.sync += va.eq(0)
        for prev, nxt in zip([addr_a] + addr_pipe[:-1], addr_pipe):
            m.d.sync += nxt.eq(prev)
        addr_c = addr_pipe[-1]

        with m.FSM(init="FILL"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    def fail(code):
                        m.d.sync += [error.eq(1), error_code.eq(code)]

                    with m.Switch(op):
                        with m.Case(Op.NOP):
                            pass
                        with m.Case(Op.SEED):
                            with m.If(arg[g.seed_width:].any()):
                                fail(Err.ARG)
                            with m.Else():
                                m.d.comb += [gen.seed.eq(arg), gen.seed_load.eq(1)]
                                m.next = "FILL"
                                if has_r:
                                    const = rounding_seed(0, g.seed_width)
                                    m.d.comb += [rbank.seed.eq(arg[:g.seed_width] ^ const),
                                                 rbank.seed_load.eq(1)]
                        with m.Case(Op.MU):
                            with m.If(coef_ok):
                                m.d.sync += mu.eq(arg[:cb])
                            with m.Else():
                                fail(Err.ARG)
                        with m.Case(Op.PERTURB):
                            with m.If(arg > 1):
                                fail(Err.ARG)
                            with m.Else():
                                m.d.sync += [mac_op.eq(Mux(arg[0], MacOp.MINUS2, MacOp.PLUS)),
                                             last_pass.eq(Mux(arg[0], 2, 1)), counter.eq(0)]
                                m.next = "PASS"
                        with m.Case(Op.UPDATE):
                            with m.If(coef_ok):
                                m.d.sync += [coef_c.eq(arg[:cb]), mac_op.eq(MacOp.UPDATE),
                                             last_pass.eq(3), counter.eq(0)]
                                m.next = "PASS"
                            with m.Else():
                                fail(Err.ARG)
                        with m.Case(Op.SCALE):
                            if g.scale == "runtime":
                                with m.If(arg[scale_register_bits(g):].any()):
                                    fail(Err.ARG)
                                with m.Else():
                                    m.d.comb += [gen.scale_value.eq(arg), gen.scale_load.eq(1)]
                            else:
                                fail(Err.UNSUPPORTED)
                        with m.Case(Op.OFFSET):
                            if g.reuse == "pregen":
                                with m.If(arg >= g.pool_words):
                                    fail(Err.ARG)
                                with m.Else():
                                    m.d.comb += [gen.offset_value.eq(arg), gen.offset_set.eq(1)]
                            else:
                                fail(Err.UNSUPPORTED)
                        with m.Case(Op.WRITE, Op.READ):
                            with m.If(block_ok):
                                m.d.sync += [base.eq(start), total.eq(count), counter.eq(0),
                                             rdone.eq(0), rvalid.eq(0)]
                                with m.If(op == Op.WRITE):
                                    m.next = "WRITE"
                                with m.Else():
                                    m.next = "READ"
                            with m.Else():
                                fail(Err.ARG)
                        with m.Case(Op.CLEAR):
                            m.d.sync += [error.eq(0), error_code.eq(0)]
                            m.d.comb += [mac.sat_clear.eq(1), gen.sat_clear.eq(1)]
                        with m.Case(Op.ROUNDING):
                            with m.If(arg > 1):
                                fail(Err.ARG)
                            with m.Elif(arg[0] if not has_r else 0):
                                fail(Err.UNSUPPORTED)
                            with m.Else():
                                m.d.sync += stochastic.eq(arg[0])
                        with m.Default():
                            fail(Err.OPCODE)

            with m.State("FILL"):
                # After reset or SEED: busy until a pregen pool is full (one cycle otherwise).
                m.d.comb += self.busy.eq(1)
                if g.reuse == "pregen":
                    with m.If(~gen.filling):
                        m.next = "IDLE"
                else:
                    m.next = "IDLE"

            with m.State("PASS"):
                m.d.comb += self.busy.eq(1)
                use_r = (mac_op == MacOp.UPDATE) & stochastic
                r_ok = (rbank.o.valid | ~use_r) if has_r else 1
                issue = (counter < words) & gen.o.valid & r_ok
                m.d.comb += [gen.o.ready.eq(issue), rd.addr.eq(counter), rd.en.eq(1)]
                if has_r:
                    m.d.comb += rbank.o.ready.eq(issue & use_r)
                with m.If(issue):
                    m.d.sync += [va.eq(1), za.eq(gen.o.payload), addr_a.eq(counter),
                                 counter.eq(counter + 1)]
                    if has_r:
                        m.d.sync += ra.eq(Cat(rbank.o.payload[l].as_unsigned()[:S]
                                              for l in range(cfg.lanes)))
                with m.If(counter == words):
                    m.d.sync += drain.eq(0)
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == mac.latency):
                    m.next = "IDLE"

            with m.State("WRITE"):
                m.d.comb += [self.busy.eq(1), self.wdata.ready.eq(1)]
                with m.If(self.wdata.valid):
                    m.d.sync += counter.eq(counter + 1)
                    with m.If(counter + 1 == total):
                        m.next = "IDLE"

            with m.State("READ"):
                m.d.comb += self.busy.eq(1)
                advance = ~rvalid | self.rdata.ready
                m.d.comb += [rd.addr.eq(base + counter), rd.en.eq(advance),
                             self.rdata.valid.eq(rvalid), self.rdata.payload.eq(rd.data)]
                with m.If(advance):
                    m.d.sync += rvalid.eq(counter < total)
                    with m.If(counter < total):
                        m.d.sync += counter.eq(counter + 1)
                with m.If(self.rdata.valid & self.rdata.ready):
                    m.d.sync += rdone.eq(rdone + 1)
                    with m.If(rdone + 1 == total):
                        m.d.sync += rvalid.eq(0)
                        m.next = "IDLE"

        # Write port: MAC results during a pass, host words during WRITE.
        with m.If(mac.o.valid):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(addr_c), wr.data.eq(mac.o.payload)]
        with m.Elif(self.wdata.valid & self.wdata.ready):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(base + counter), wr.data.eq(self.wdata.payload)]
        return m
