"""A minimal 8N1 UART (receiver and transmitter) with byte streams, for the board command port."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "divisor_for"]


def divisor_for(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit; raises when the baud rate cannot be met within 2 %."""
    if baud <= 0:
        raise ValueError(f"Baud rate must be positive, not {baud!r}")
    div = round(clk_hz / baud)
    if div < 4 or abs(clk_hz / div - baud) / baud > 0.02:
        raise ValueError(f"Baud rate {baud} is not reachable from a {clk_hz / 1e6:g} MHz clock "
                         f"within 2 % (divisor {div})")
    return div


class UARTRx(wiring.Component):
    """8N1 receiver: samples each bit in its middle; a byte is held until taken.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Members
    -------
    rx : In(1)
        The serial line (idle high); synchronise it before this block if it is asynchronous.
    o : Out(stream.Signature(8))
        Received bytes. A byte that arrives while the previous one is still held is dropped.
    overrun : Out(1)
        High for one cycle when a byte is dropped (the bridge keeps the sticky flag).
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    overrun: Out(1)

    def __init__(self, divisor):
        if isinstance(divisor, bool) or not isinstance(divisor, int):
            raise TypeError(f"Divisor must be an integer, not {divisor!r}")
        if divisor < 4:
            raise ValueError(f"Divisor must be at least 4, not {divisor!r}")
        self._divisor = divisor
        super().__init__()

    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        timer = Signal(range(div * 3 // 2 + 1))
        bits = Signal(range(10))
        shreg = Signal(8)
        m.d.sync += self.overrun.eq(0)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~self.rx):
                    m.d.sync += [timer.eq(div + div // 2 - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq((shreg >> 1) | (self.rx << 7)), bits.eq(bits + 1),
                                 timer.eq(div - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(self.rx):          # a valid stop bit
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.sync += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; taken when the transmitter is idle.
    tx : Out(1)
        The serial line (idle high).
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor):
        if isinstance(divisor, bool) or not isinstance(divisor, int):
            raise TypeError(f"Divisor must be an integer, not {divisor!r}")
        if divisor < 4:
            raise ValueError(f"Divisor must be at least 4, not {divisor!r}")
        self._divisor = divisor
        super().__init__()

    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        timer = Signal(range(div))
        bits = Signal(range(11))
        shreg = Signal(10, init=0x3FF)
        busy = Signal()
        m.d.comb += [self.i.ready.eq(~busy), self.tx.eq(shreg[0])]
        with m.If(~busy):
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq((1 << 9) | (self.i.payload << 1)), busy.eq(1),
                             bits.eq(0), timer.eq(div - 1)]
        with m.Else():
            with m.If(timer == 0):
                m.d.sync += [shreg.eq((shreg >> 1) | (1 << 9)), timer.eq(div - 1),
                             bits.eq(bits + 1)]
                with m.If(bits == 9):
                    m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
