"""Board top level: the engine behind a UART command port (``pezo.boards.bridge``)."""

from amaranth.hdl import Elaboratable, Module
from amaranth.build import ResourceError
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer

from pezo.boards.bridge import SerialBridge
from pezo.boards.uart import UARTRx, UARTTx, divisor_for

__all__ = ["BoardTop"]


class BoardTop(Elaboratable):
    """The engine, reachable from outside through the board's UART (so synthesis keeps all of
    it), clocked from the board's default clock. LED 0 shows the error flag, LED 1 saturation
    (where the board has them)."""

    def __init__(self, config, baud=115200):
        self.config = config
        self.baud = baud

    def elaborate(self, platform):
        m = Module()
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        div = divisor_for(platform.default_clk_frequency, self.baud)
        m.submodules.rx = rx = UARTRx(div)
        m.submodules.tx = tx = UARTTx(div)
        m.submodules.bridge = bridge = SerialBridge(self.config)
        m.submodules.rx_sync = FFSynchronizer(rx_buf.i, rx.rx, init=1)
        m.d.comb += tx_buf.o.eq(tx.tx)
        wiring.connect(m, rx.o, bridge.i)
        wiring.connect(m, bridge.o, tx.i)
        for index, flag in enumerate((bridge.error, bridge.saturated)):
            try:
                led = platform.request("led", index, dir="-")
            except ResourceError:        # boards with fewer LEDs
                break
            m.submodules[f"led{index}"] = buf = io.Buffer("o", led)
            m.d.comb += buf.o.eq(flag)
        return m
