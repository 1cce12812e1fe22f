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
MAC_LATENCY = PerturbMAC.latency.fget(None)


def command_layout():
    return data.StructLayout({"op": 4, "arg": ARG_BITS})


class PerturbEngine(wiring.Component):
    """ZO perturbation engine, bit-exact with :class:`pezo.sim.engine.EngineModel`.

    Commands (opcodes, arguments, errors) are those of :mod:`pezo.sim.engine`. A PERTURB or UPDATE
    pass streams all d weights through the MAC at m per cycle: memory read -> MAC (4 stages) ->
    write back; the z values come from the generator, so a pass stalls only while the generator
    has no beat (pool fill, 2-3 cycles after a SEED or OFFSET).

    Parameters
    ----------
    config : EngineConfig

    Members
    -------
    cmd : In(stream.Signature(StructLayout({"op": 4, "arg": 64})))
        Commands; ``cmd.ready`` is high only while the engine is idle; an accepted
        command executes in the next cycle (``busy`` is high from then on until it is done).
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
        does not stall: one cycle to execute the registered command, one issue cycle per word,
        then 7 (last read, 4 MAC stages, write, return to idle)."""
        return self._cfg.words + MAC_LATENCY + 4

    @property
    def latency(self):
        """Cycles from a word's read to its write-back in a pass (memory read + MAC stages)."""
        return MAC_LATENCY + 1

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        g = cfg.generator
        words = cfg.words
        S = cfg.product_shift
        has_r = "r" in dict(mac_input_layout(cfg).members)

        m.submodules.gen = gen = PerturbationGenerator(g, sumsq=False)   # not in the command map
        m.submodules.mac = mac = PerturbMAC(cfg)
        if has_r:
            m.submodules.rbank = rbank = UniformBank(rounding_config(cfg))
        row = data.ArrayLayout(signed(cfg.w_bits), cfg.lanes)
        m.submodules.weights = wmem = memory.Memory(shape=row, depth=words, init=[])
        wr = wmem.write_port()
        rd = wmem.read_port()

        # Commands are registered when accepted (IDLE) and executed in the next cycle (EXEC), with
        # the argument checks already computed: no path from the command port to the FSM.
        op = Signal(4)
        arg = Signal(ARG_BITS)
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
        in_arg = self.cmd.payload.arg
        nb = words.bit_length()
        hi = in_arg[cb - 1:]
        start, count = arg[:32], arg[32:]
        checks = {
            "coef_ok": hi.all() | ~hi.any(),
            # start + count <= words, count != 0, on short words (no 32-bit carry chains).
            "block_ok": ((in_arg[32:] != 0) & ~in_arg[nb:32].any() & ~in_arg[32 + nb:].any() &
                         (in_arg[:nb] + in_arg[32:32 + nb] <= words)),
            "seed_bad": in_arg[g.seed_width:].any(),
            "gt1": in_arg[1:].any(),
        }
        if g.scale == "runtime":
            checks["scale_bad"] = in_arg[scale_register_bits(g):].any()
        if g.reuse == "pregen":
            pb = g.pool_words.bit_length()
            checks["offset_bad"] = in_arg[pb:].any() | (in_arg[:pb] >= g.pool_words)
        # The error code of the command on the port, registered with it (0: no error).
        err_in = Signal(2)
        err_r = Signal(2)
        ARG, UNSUP = int(Err.ARG), int(Err.UNSUPPORTED)
        with m.Switch(self.cmd.payload.op):
            with m.Case(Op.NOP, Op.CLEAR):
                pass
            with m.Case(Op.SEED):
                m.d.comb += err_in.eq(Mux(checks["seed_bad"], ARG, 0))
            with m.Case(Op.MU, Op.UPDATE):
                m.d.comb += err_in.eq(Mux(checks["coef_ok"], 0, ARG))
            with m.Case(Op.PERTURB):
                m.d.comb += err_in.eq(Mux(checks["gt1"], ARG, 0))
            with m.Case(Op.SCALE):
                m.d.comb += err_in.eq(Mux(checks["scale_bad"], ARG, 0)
                                      if g.scale == "runtime" else UNSUP)
            with m.Case(Op.OFFSET):
                m.d.comb += err_in.eq(Mux(checks["offset_bad"], ARG, 0)
                                      if g.reuse == "pregen" else UNSUP)
            with m.Case(Op.WRITE, Op.READ):
                m.d.comb += err_in.eq(Mux(checks["block_ok"], 0, ARG))
            with m.Case(Op.ROUNDING):
                m.d.comb += err_in.eq(Mux(checks["gt1"], ARG,
                                          Mux(in_arg[0], 0 if has_r else UNSUP, 0)))
            with m.Default():
                m.d.comb += err_in.eq(int(Err.OPCODE))

        counter = Signal(range(words + 1))
        more = Signal()                         # PASS: words still to issue (counter < words)
        left = Signal(range(words + 1))         # WRITE/READ: words still to transfer
        issue_left = Signal(range(words + 1))   # READ: words still to read from memory
        one_left = Signal()                     # left == 1, registered
        drain = Signal(range(8))
        # Pass pipeline registers.
        va = Signal()
        za = Signal(data.ArrayLayout(signed(g.z_bits), cfg.lanes))
        ra = Signal(data.ArrayLayout(unsigned(S), cfg.lanes)) if has_r else None
        # Word addresses travel beside the data: one register per MAC stage.
        addr_a = Signal(range(words), name="addr_a")
        addr_pipe = [Signal(range(words), name=f"addr_s{i}") for i in range(mac.latency)]
        # Read pipeline register.
        rvalid = Signal()           # high only in READ: cleared with the last word
        m.d.comb += [self.rdata.valid.eq(rvalid), self.rdata.payload.eq(rd.data)]

        m.d.comb += [mac.i.valid.eq(va), mac.i.payload.w.eq(rd.data), mac.i.payload.z.eq(za)]
        if has_r:
            m.d.comb += mac.i.payload.r.eq(ra)
        m.d.sync += va.eq(0)
        for prev, nxt in zip([addr_a] + addr_pipe[:-1], addr_pipe):
            m.d.sync += nxt.eq(prev)
        addr_c = addr_pipe[-1]

        # Control pulses to the generator and MAC are registered (one cycle after EXEC; the
        # argument register still holds their value then): no path from decode into the datapath.
        seed_p, scale_p, offset_p, clear_p = (Signal(name=n) for n in
                                              ("seed_p", "scale_p", "offset_p", "clear_p"))
        m.d.sync += [seed_p.eq(0), scale_p.eq(0), offset_p.eq(0), clear_p.eq(0)]
        m.d.comb += [gen.seed.eq(arg), gen.seed_load.eq(seed_p),
                     mac.sat_clear.eq(clear_p), gen.sat_clear.eq(clear_p)]
        if has_r:
            const = rounding_seed(0, g.seed_width)
            m.d.comb += [rbank.seed.eq(arg[:g.seed_width] ^ const), rbank.seed_load.eq(seed_p)]
        if g.scale == "runtime":
            m.d.comb += [gen.scale_value.eq(arg), gen.scale_load.eq(scale_p)]
        if g.reuse == "pregen":
            m.d.comb += [gen.offset_value.eq(arg), gen.offset_set.eq(offset_p)]

        # Issue of a word in a pass: ``more`` is high only in PASS (no state decode on the path
        # into the generator's ready).
        use_r = (mac_op == MacOp.UPDATE) & stochastic
        r_ok = (rbank.o.valid | ~use_r) if has_r else 1
        issue = more & gen.o.valid & r_ok
        m.d.comb += gen.o.ready.eq(issue)
        if has_r:
            m.d.comb += rbank.o.ready.eq(issue & use_r)

        with m.FSM(init="FILL"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [op.eq(self.cmd.payload.op), arg.eq(in_arg), err_r.eq(err_in)]
                    m.next = "EXEC"

            with m.State("EXEC"):
                m.d.comb += self.busy.eq(1)
                m.next = "SETTLE"
                def fail(code):
                    m.d.sync += [error.eq(1), error_code.eq(code)]

                with m.If(err_r != 0):
                    fail(err_r)
                with m.Else():
                    with m.Switch(op):
                        with m.Case(Op.SEED):
                            m.d.sync += seed_p.eq(1)
                            m.next = "FILL"
                        with m.Case(Op.MU):
                            m.d.sync += mu.eq(arg[:cb])
                        with m.Case(Op.PERTURB):
                            m.d.sync += [mac_op.eq(Mux(arg[0], MacOp.MINUS2, MacOp.PLUS)),
                                         last_pass.eq(Mux(arg[0], 2, 1)), counter.eq(0),
                                         more.eq(1)]
                            m.next = "PASS"
                        with m.Case(Op.UPDATE):
                            m.d.sync += [coef_c.eq(arg[:cb]), mac_op.eq(MacOp.UPDATE),
                                         last_pass.eq(3), counter.eq(0), more.eq(1)]
                            m.next = "PASS"
                        with m.Case(Op.SCALE):
                            m.d.sync += scale_p.eq(1)
                        with m.Case(Op.OFFSET):
                            m.d.sync += offset_p.eq(1)
                        with m.Case(Op.WRITE, Op.READ):
                            # counter runs over the block's addresses from start.
                            m.d.sync += [left.eq(count), issue_left.eq(count),
                                         counter.eq(start), rvalid.eq(0), one_left.eq(count == 1)]
                            with m.If(op == Op.WRITE):
                                m.next = "WRITE"
                            with m.Else():
                                m.next = "READ"
                        with m.Case(Op.CLEAR):
                            m.d.sync += [error.eq(0), error_code.eq(0), clear_p.eq(1)]
                        with m.Case(Op.ROUNDING):
                            m.d.sync += stochastic.eq(arg[0])

            with m.State("SETTLE"):
                # The registered pulses (scale, offset, clear) take effect in this cycle: the
                # status is current when busy falls.
                m.d.comb += self.busy.eq(1)
                m.next = "IDLE"

            with m.State("FILL"):
                # After reset or SEED: busy until a pregen pool is full (one cycle otherwise).
                m.d.comb += self.busy.eq(1)
                if g.reuse == "pregen":
                    with m.If(~gen.filling & ~seed_p):
                        m.next = "IDLE"
                else:
                    m.next = "IDLE"

            with m.State("PASS"):
                m.d.comb += self.busy.eq(1)
                m.d.comb += [rd.addr.eq(counter), rd.en.eq(1)]
                with m.If(issue):
                    m.d.sync += [va.eq(1), za.eq(gen.o.payload), addr_a.eq(counter),
                                 counter.eq(counter + 1), more.eq(counter != words - 1)]
                    if has_r:
                        m.d.sync += ra.eq(Cat(rbank.o.payload[l].as_unsigned()[:S]
                                              for l in range(cfg.lanes)))
                with m.If(~more):
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
                    m.d.sync += [counter.eq(counter + 1), left.eq(left - 1),
                                 one_left.eq(left == 2)]
                    with m.If(one_left):
                        m.next = "IDLE"

            with m.State("READ"):
                m.d.comb += self.busy.eq(1)
                advance = ~rvalid | self.rdata.ready
                m.d.comb += [rd.addr.eq(counter), rd.en.eq(advance)]
                with m.If(advance):
                    m.d.sync += rvalid.eq(issue_left != 0)
                    with m.If(issue_left != 0):
                        m.d.sync += [counter.eq(counter + 1), issue_left.eq(issue_left - 1)]
                with m.If(self.rdata.valid & self.rdata.ready):
                    m.d.sync += [left.eq(left - 1), one_left.eq(left == 2)]
                    with m.If(one_left):
                        m.d.sync += rvalid.eq(0)
                        m.next = "IDLE"

        # Write port: MAC results during a pass, host words during WRITE.
        with m.If(mac.o.valid):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(addr_c), wr.data.eq(mac.o.payload)]
        with m.Elif(self.wdata.valid & self.wdata.ready):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(counter), wr.data.eq(self.wdata.payload)]
        return m
