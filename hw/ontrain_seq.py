"""The on-chip trainer's step sequencer: a small 32-bit accumulator machine that runs the step
controller's program from block RAM (instruction set, assembler and model:
:mod:`pezo.sim.ontrain_seq`; definition in docs/on_device.md, section 9).

The trainer's wide run state (the TRAIN parameters, the step counter, the loss sums, the run's
records) lives in 64 words of block RAM the sequencer reads and writes one at a time, instead of
in flip-flops with a comparator or a multiplexer each: the controller costs one adder, one
32-bit register and the program's block RAM."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from pezo.hw.common import one_hot_states
from pezo.sim.ontrain_seq import N_REGS, PC_BITS, Cond, Op

__all__ = ["Sequencer", "HALT_UNIT"]

#: The IO unit that ends the program (the sequencer goes idle; A unchanged).
HALT_UNIT = 15


class Sequencer(wiring.Component):
    """Runs ``program`` (16-bit words, :class:`pezo.sim.ontrain_seq.Assembler`) from address 0
    on ``start``, bit-exact with :class:`pezo.sim.ontrain_seq.SequencerModel` (AND and SHR are
    built only when the program uses them): each instruction
    is fetched (1 cycle), its register read (1 cycle, repeated while ``rf_wait``) and executed
    (1 cycle); an IO instruction then waits for its unit's ``io_ack``.

    Members
    -------
    start : In(1)
        Pulse while idle: run the program from address 0 (A, C and the return address keep
        their values).
    stop : In(1)
        Pulse: abandon the program at once (the trainer's engine-error trap); the sequencer is
        idle from the next cycle.
    busy : Out(1)
    a : Out(32)
        The A register (the argument of an IO instruction).
    rf_addr, rf_re, rf_rdata, rf_wait
        The register read: ``rf_re`` with ``rf_addr`` in one cycle, ``rf_rdata`` in the next;
        ``rf_wait`` high refuses the read that cycle (another user holds the port), and the
        sequencer asks again.
    rf_we : Out(1)
        ST: write A to ``rf_addr``.
    io_req, io_unit, io_sub, io_ack, io_load, io_data
        An IO instruction: ``io_req`` stays high, with its unit and sub-operation, until the
        unit raises ``io_ack`` (in the first cycle or later); with ``io_load`` A takes
        ``io_data``.
    """

    def __init__(self, program):
        words = [int(w) for w in program]
        if not words or len(words) > 1 << PC_BITS:
            raise ValueError(f"A program has 1..{1 << PC_BITS} words, not {len(words)}")
        if any(not 0 <= w < 1 << 16 for w in words):
            raise ValueError("Program words must be 16-bit values")
        self._program = words
        # only the ALU operations the program uses are built (any other is a no-op)
        self._ops = {w >> 12 for w in words}
        super().__init__({
            "start": In(1), "stop": In(1), "busy": Out(1), "a": Out(32),
            "rf_addr": Out(range(N_REGS)), "rf_re": Out(1), "rf_rdata": In(32), "rf_wait": In(1),
            "rf_we": Out(1),
            "io_req": Out(1), "io_unit": Out(4), "io_sub": Out(8), "io_ack": In(1),
            "io_load": In(1), "io_data": In(32),
        })

    program = property(lambda self: list(self._program))

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = memory.Memory(shape=16, depth=max(2, len(self._program)),
                                               init=self._program)
        rd = rom.read_port()
        st, goto = one_hot_states(m, ("IDLE", "FETCH", "DECODE", "EXEC", "IO"), "IDLE")
        pc = Signal(PC_BITS)
        ret = Signal(PC_BITS)
        a = Signal(32)
        c = Signal()
        ir = rd.data                      # held: the ROM is read only in FETCH
        op, k = ir[12:16], ir[:12]
        m.d.comb += [self.a.eq(a), self.busy.eq(~st["IDLE"]), rd.addr.eq(pc), rd.en.eq(st["FETCH"]),
                     self.rf_addr.eq(k[:6]), self.rf_re.eq(st["DECODE"]),
                     self.io_req.eq(st["IO"]), self.io_unit.eq(k[8:12]), self.io_sub.eq(k[:8])]

        # the ALU: one adder (LD and LDI add to zero), AND, shift right. Its controls are
        # decoded in DECODE into flip-flops (the instruction is held from then on), so EXEC's
        # path is the register read, one LUT per operand bit and the carry chain (timing).
        is_sub, zero_a, b_imm, sext, w_sum, w_c = (Signal(name=n) for n in (
            "is_sub", "zero_a", "b_imm", "sext", "w_sum", "w_c"))
        with m.If(st["DECODE"]):
            m.d.sync += [is_sub.eq(op == Op.SUB), zero_a.eq((op == Op.LD) | (op == Op.LDI)),
                         b_imm.eq((op == Op.ADDI) | (op == Op.LDI)), sext.eq(op == Op.ADDI),
                         w_sum.eq((op == Op.LD) | (op == Op.ADD) | (op == Op.SUB)
                                  | (op == Op.LDI) | (op == Op.ADDI)),
                         w_c.eq((op == Op.ADD) | (op == Op.SUB) | (op == Op.ADDI))]
        imm = Cat(k, (sext & k[11]).replicate(20))
        a_in = Mux(zero_a, 0, a)
        b_in = Mux(b_imm, imm, self.rf_rdata) ^ is_sub.replicate(32)
        total = Signal(33)
        m.d.comb += total.eq(a_in + b_in + is_sub)
        z = a == 0
        cond = ir[9:12]
        taken = Signal()
        with m.Switch(cond):
            with m.Case(Cond.ALWAYS, Cond.CALL):
                m.d.comb += taken.eq(1)
            with m.Case(Cond.Z):
                m.d.comb += taken.eq(z)
            with m.Case(Cond.NZ):
                m.d.comb += taken.eq(~z)
            with m.Case(Cond.C):
                m.d.comb += taken.eq(c)
            with m.Case(Cond.NC):
                m.d.comb += taken.eq(~c)

        with m.If(self.stop):
            m.d.sync += [st[n].eq(n == "IDLE") for n in st]
        with m.Elif(st["IDLE"]):
            with m.If(self.start):
                m.d.sync += pc.eq(0)
                goto("IDLE", "FETCH")
        with m.Elif(st["FETCH"]):
            goto("FETCH", "DECODE")
        with m.Elif(st["DECODE"]):
            with m.If(~self.rf_wait):
                goto("DECODE", "EXEC")
        with m.Elif(st["EXEC"]):
            m.d.sync += pc.eq(pc + 1)
            with m.If(w_sum):
                m.d.sync += a.eq(total[:32])
            with m.If(w_c):
                m.d.sync += c.eq(total[32])
            with m.Switch(op):
                if Op.AND in self._ops:
                    with m.Case(Op.AND):
                        m.d.sync += a.eq(a & self.rf_rdata)
                if Op.SHR in self._ops:
                    with m.Case(Op.SHR):
                        m.d.sync += a.eq(a >> 1)
                with m.Case(Op.ST):
                    m.d.comb += self.rf_we.eq(1)
                with m.Case(Op.JMP):
                    with m.If(cond == Cond.RET):
                        m.d.sync += pc.eq(ret)
                    with m.Elif(taken):
                        m.d.sync += pc.eq(ir[:PC_BITS])
                    with m.If(cond == Cond.CALL):
                        m.d.sync += ret.eq(pc + 1)
            with m.If((op == Op.IO) & (k[8:12] == HALT_UNIT)):
                goto("EXEC", "IDLE")
            with m.Elif(op == Op.IO):
                goto("EXEC", "IO")
            with m.Else():
                goto("EXEC", "FETCH")
        with m.Elif(st["IO"]):
            with m.If(self.io_ack):
                with m.If(self.io_load):
                    m.d.sync += a.eq(self.io_data)
                goto("IO", "FETCH")
        return m
