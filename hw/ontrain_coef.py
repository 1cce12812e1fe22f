"""The on-chip trainer's coefficient unit: c from the two loss sums, serially, with no
multiplier or divider (golden model :func:`pezo.sim.ontrain.coefficient`; definition in
docs/on_device.md, section 6)."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CoefUnit", "SHIFT_MIN", "SHIFT_MAX"]

SUM_BITS = 32
LR_BITS = 8
COEF_BITS = 16
#: The shifts the unit is exact for: x = diff lr_m is below 2^40 in
#: magnitude, so a left shift of up to 11 still fits the 52-bit accumulator; the right shift's
#: counter has 6 bits.
SHIFT_MIN, SHIFT_MAX = -11, 63
_ACC_BITS = 52


class CoefUnit(wiring.Component):
    """c = sat(round_half_even(diff lr_m / 2^shift), +-(2^15 - 1)) and whether it saturated,
    with diff = sum_minus - sum_plus: bit-exact with :func:`pezo.sim.ontrain.coefficient` for
    every sum_plus, sum_minus (32-bit unsigned, so diff is any 33-bit signed value), lr_m
    (8-bit unsigned) and :data:`SHIFT_MIN` <= shift <= :data:`SHIFT_MAX` (a left shift when
    shift < 0).

    Built for area, one adder and one shift register: 8 cycles multiply diff by lr_m, MSB
    first (acc = 2 acc + diff when the bit is set); |shift| cycles shift the product one bit
    each (left: the same doubling with nothing added; right: the last bit shifted out is the
    guard bit g, the ones before it are or-ed into the sticky bit s); a cycle rounds and
    saturates: v = the shifted value, r = v + (g & (s | lsb)) on 17 bits when v fits 16, and
    |r| <= 2^15 - 1 by bit tests. The result is on ``o`` :meth:`latency` = 10 + |shift| cycles
    after the accepting edge and stays until taken; ``i.ready`` is high while the unit is idle.

    Parameters
    ----------
    held : bool
        The source holds ``i.payload`` from its acceptance until ``o`` is taken (the trainer's
        sequencer and OUT registers do), so the unit keeps no copy of the operands. Default
        False: they are registered on acceptance.

    Members
    -------
    i : In(stream.Signature(StructLayout({"diff": signed(33), "lr_m": 8, "shift": signed(8)})))
        The operands (for a shift outside SHIFT_MIN..SHIFT_MAX the result is unspecified: the
        trainer refuses such a TRAIN).
    o : Out(stream.Signature(StructLayout({"coef": signed(16), "clipped": 1})))
    """

    def __init__(self, held=False):
        self._held = bool(held)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "diff": signed(SUM_BITS + 1),
                "lr_m": unsigned(LR_BITS), "shift": signed(8)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "coef": signed(COEF_BITS), "clipped": unsigned(1)}))),
        })

    held = property(lambda self: self._held)

    def latency(self, shift):
        """Cycles from the accepting edge to ``o.valid`` for this shift."""
        return 10 + abs(int(shift))

    def elaborate(self, platform):
        m = Module()
        lim = (1 << (COEF_BITS - 1)) - 1
        ip = self.i.payload
        if self._held:
            diff, lr_m, shift = ip.diff, ip.lr_m, ip.shift
        else:
            diff, lr_m = Signal(signed(SUM_BITS + 1)), Signal(LR_BITS)
            shift = Signal(signed(8))
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [diff.eq(ip.diff), lr_m.eq(ip.lr_m), shift.eq(ip.shift)]
        acc = Signal(signed(_ACC_BITS))
        cbit = Signal(range(LR_BITS))                  # multiply step: bit LR_BITS - 1 - cbit
        cn = Signal(6)                                 # shifts still to do
        g_bit, st_bit = Signal(), Signal()
        mul = Signal()
        # the one adder: 2 acc + (diff or 0); or the right shift
        msb_first = Cat(*(lr_m[LR_BITS - 1 - i] for i in range(LR_BITS)))
        addend = Mux(mul & msb_first.bit_select(cbit, 1), diff, 0)
        doubled = Signal(signed(_ACC_BITS))
        m.d.comb += doubled.eq((acc << 1) + addend)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [acc.eq(0), cbit.eq(0), g_bit.eq(0), st_bit.eq(0),
                                 cn.eq(Mux(ip.shift < 0, -ip.shift, ip.shift))]
                    m.next = "MUL"
            with m.State("MUL"):
                m.d.comb += mul.eq(1)
                m.d.sync += [acc.eq(doubled), cbit.eq(cbit + 1)]
                with m.If(cbit == LR_BITS - 1):
                    m.next = "SHIFT"
            with m.State("SHIFT"):
                with m.If(cn == 0):
                    m.next = "SAT"
                with m.Else():
                    m.d.sync += cn.eq(cn - 1)
                    with m.If(shift < 0):
                        m.d.sync += acc.eq(doubled)
                    with m.Else():
                        m.d.sync += [acc.eq(acc >> 1), g_bit.eq(acc[0]),
                                     st_bit.eq(st_bit | g_bit)]
            with m.State("SAT"):
                # v fits 16 bits exactly when the bits from 15 up all equal the sign; then
                # r = v + inc on 17 bits, and |r| <= 2^15 - 1 unless r = +-2^15
                hi_bits = acc[COEF_BITS - 1:]
                fits = hi_bits.all() | ~hi_bits.any()
                inc = g_bit & (st_bit | acc[0])
                r = Signal(signed(COEF_BITS + 1))
                m.d.comb += r.eq(acc[:COEF_BITS].as_signed() + inc)
                in_range = fits & (r[COEF_BITS] == r[COEF_BITS - 1]) & (r != -(1 << 15))
                m.d.sync += [self.o.payload.coef.eq(Mux(in_range, r[:COEF_BITS],
                                                        Mux(acc[-1], -lim, lim))),
                             self.o.payload.clipped.eq(~in_range), self.o.valid.eq(1)]
                m.next = "OUT"
            with m.State("OUT"):
                with m.If(self.o.ready):
                    m.d.sync += self.o.valid.eq(0)
                    m.next = "IDLE"
        return m
