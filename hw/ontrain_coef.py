"""The on-chip trainer's coefficient unit: c from the two loss sums, serially, with no
multiplier or divider (golden model :func:`pezo.sim.ontrain.coefficient`; definition in
docs/on_device.md, section 6)."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
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

    Built for area, one adder: x = diff is registered on acceptance; 8 cycles multiply it by lr_m, adding x 2^i when bit i of lr_m is set (x
    doubles and lr_m halves each cycle); |shift| cycles shift the product one bit each (right:
    the last bit shifted out is the guard bit g, the ones before it are or-ed into the sticky
    bit s); a cycle adds g & (s | lsb) (round half to even); a cycle saturates by bit tests
    (|v| <= 2^15 - 1 exactly when the bits from 15 up equal the sign and v is not -2^15).
    The result is on ``o`` 11 + |shift| cycles after the accepting edge and stays until taken;
    ``i.ready`` is high while the unit is idle.

    Members
    -------
    i : In(stream.Signature(StructLayout({"diff": signed(33), "lr_m": 8, "shift": signed(8)})))
        The operands (for a shift outside SHIFT_MIN..SHIFT_MAX the result is unspecified: the
        trainer refuses such a TRAIN).
    o : Out(stream.Signature(StructLayout({"coef": signed(16), "clipped": 1})))
    """

    def __init__(self):
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "diff": signed(SUM_BITS + 1),
                "lr_m": unsigned(LR_BITS), "shift": signed(8)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "coef": signed(COEF_BITS), "clipped": unsigned(1)}))),
        })

    def latency(self, shift):
        """Cycles from the accepting edge to ``o.valid`` for this shift."""
        return 11 + abs(int(shift))

    def elaborate(self, platform):
        m = Module()
        lim = (1 << (COEF_BITS - 1)) - 1
        cx = Signal(signed(SUM_BITS + 1 + LR_BITS))    # x 2^i
        acc = Signal(signed(_ACC_BITS))
        cm = Signal(LR_BITS)                           # lr_m >> i
        cbit = Signal(range(LR_BITS))
        left = Signal()                                # shift < 0
        cn = Signal(6)                                 # shifts still to do
        g_bit, st_bit = Signal(), Signal()
        ip = self.i.payload

        # the one adder: x 2^i (multiply) or the rounding bit (round)
        rounding = Signal()
        addend = Signal(signed(len(cx)))
        m.d.comb += addend.eq(Mux(rounding, g_bit & (st_bit | acc[0]), Mux(cm[0], cx, 0)))
        total = acc + addend
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [cx.eq(ip.diff),
                                 acc.eq(0), cbit.eq(0), cm.eq(ip.lr_m),
                                 left.eq(ip.shift < 0),
                                 cn.eq(Mux(ip.shift < 0, -ip.shift, ip.shift)),
                                 g_bit.eq(0), st_bit.eq(0)]
                    m.next = "MUL"
            with m.State("MUL"):
                m.d.sync += [acc.eq(total), cbit.eq(cbit + 1), cx.eq(cx << 1), cm.eq(cm >> 1)]
                with m.If(cbit == LR_BITS - 1):
                    m.next = "SHIFT"
            with m.State("SHIFT"):
                with m.If(cn == 0):
                    m.next = "ROUND"
                with m.Else():
                    m.d.sync += cn.eq(cn - 1)
                    with m.If(left):
                        m.d.sync += acc.eq(acc << 1)
                    with m.Else():
                        m.d.sync += [acc.eq(acc >> 1), g_bit.eq(acc[0]),
                                     st_bit.eq(st_bit | g_bit)]
            with m.State("ROUND"):
                m.d.comb += rounding.eq(1)
                m.d.sync += acc.eq(total)
                m.next = "SAT"
            with m.State("SAT"):
                hi_bits = acc[COEF_BITS - 1:]
                in_range = Mux(acc[-1], hi_bits.all() & acc[:COEF_BITS - 1].any(),
                               ~hi_bits.any())
                m.d.sync += [self.o.payload.coef.eq(Mux(in_range, acc[:COEF_BITS],
                                                        Mux(acc[-1], -lim, lim))),
                             self.o.payload.clipped.eq(~in_range), self.o.valid.eq(1)]
                m.next = "OUT"
            with m.State("OUT"):
                with m.If(self.o.ready):
                    m.d.sync += self.o.valid.eq(0)
                    m.next = "IDLE"
        return m
