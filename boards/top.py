"""Board top level: the engine behind a UART command port (``pezo.boards.bridge``)."""

from amaranth.build import ResourceError
from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from pezo.boards.bridge import SerialBridge
from pezo.boards.protocol import TIMEOUT_BYTES
from pezo.boards.uart import UARTRx, UARTTx, divisor_for
from pezo.hw.ontrain import OnChipTrainer
from pezo.sim.ontrain import TrainerConfig

__all__ = ["BoardTop", "UartBoard", "attach_uart", "ice40_pll_params", "make_bridge"]


def make_bridge(config, timeout):
    """The serial bridge in front of the design ``config`` builds: the perturbation engine of an
    :class:`~pezo.config.EngineConfig`, or the training design
    (:class:`~pezo.hw.ontrain.OnChipTrainer`, which answers the training commands too) of a
    :class:`~pezo.sim.ontrain.TrainerConfig`."""
    if isinstance(config, TrainerConfig):
        return SerialBridge(config.engine(), timeout=timeout, engine=OnChipTrainer(config))
    return SerialBridge(config, timeout=timeout)


def attach_uart(m, bridge, divisor):
    """Put byte-stream design ``bridge`` (streams ``i``/``o``, optional ``overrun`` input) behind
    an 8N1 UART with ``divisor`` clocks per bit, as submodules ``rx``, ``tx``, ``bridge`` of
    ``m``; returns (rx, tx). The one wiring shared by the board top and the simulated board."""
    m.submodules.rx = rx = UARTRx(divisor)
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.bridge = bridge
    wiring.connect(m, rx.o, bridge.i)
    wiring.connect(m, bridge.o, tx.i)
    if hasattr(bridge, "overrun"):
        m.d.comb += bridge.overrun.eq(rx.overrun)
    return rx, tx


class UartBoard(wiring.Component):
    """The board's logic without a platform: the engine behind its bridge and UART, with the
    serial lines as ports. It is what :class:`BoardTop` puts on an FPGA (same
    :func:`attach_uart` wiring, same bridge timeout in byte times) and what the Verilator-built
    board (:mod:`pezo.sim.cosim.board`) compiles.

    Members
    -------
    rx : In(1), tx : Out(1)
        The serial lines, idle high (``rx`` passes a two-flip-flop synchroniser, as on a board).
    error : Out(1), saturated : Out(1)
    active : Out(1)
        The design works without the host: a training run is in progress (the training design;
        always low for the engine). The Verilator-built board keeps its clock running while it is
        high (it pauses the clock while the line and the design are idle).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    error: Out(1)
    saturated: Out(1)
    active: Out(1)

    def __init__(self, config, divisor):
        self.config = config
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        bridge = make_bridge(self.config, TIMEOUT_BYTES * 10 * self.divisor)
        rx, tx = attach_uart(m, bridge, self.divisor)
        m.submodules.rx_sync = FFSynchronizer(self.rx, rx.rx, init=1)
        m.d.comb += [self.tx.eq(tx.tx), self.error.eq(bridge.error),
                     self.saturated.eq(bridge.saturated)]
        trainer = bridge.engine if isinstance(bridge.engine, OnChipTrainer) else None
        if trainer is not None:
            m.d.comb += self.active.eq(trainer.flags.running)
        return m


def ice40_pll_params(f_in_mhz: float, f_out_mhz: float) -> dict:
    """DIVR/DIVF/DIVQ/FILTER_RANGE of an iCE40 SB_PLL40 (simple feedback) for ``f_out`` from
    ``f_in``, the way ``icepll`` chooses them: the exact or closest output with the VCO in
    533..1066 MHz and the phase detector in 10..133 MHz. Raises ValueError when no setting is
    within 0.5 %."""
    if not (10 <= f_in_mhz <= 133):
        raise ValueError(f"PLL input clock must be 10..133 MHz, not {f_in_mhz!r}")
    if not (16 <= f_out_mhz <= 275):
        raise ValueError(f"PLL output clock must be 16..275 MHz, not {f_out_mhz!r}")
    best = None
    for divr in range(16):
        f_pfd = f_in_mhz / (divr + 1)
        if not (10 <= f_pfd <= 133):
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not (533 <= f_vco <= 1066):
                continue
            for divq in range(1, 7):
                f = f_vco / 2 ** divq
                if best is None or abs(f - f_out_mhz) < abs(best[0] - f_out_mhz):
                    best = (f, divr, divf, divq, f_pfd)
    f, divr, divf, divq, f_pfd = best
    if abs(f - f_out_mhz) / f_out_mhz > 0.005:
        raise ValueError(f"No iCE40 PLL setting gives {f_out_mhz} MHz from {f_in_mhz} MHz within "
                         f"0.5 % (closest {f:.3f} MHz)")
    filt = next(i for i, hi in enumerate((17, 26, 44, 66, 101), start=1) if f_pfd < hi) \
        if f_pfd < 101 else 6
    return {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filt, "f_out_mhz": f}


class BoardTop(Elaboratable):
    """The engine (or any design with the :class:`SerialBridge`-like byte streams ``i``/``o``),
    reachable from outside through the board's UART, so synthesis keeps all of it. LED 0 shows
    the error flag, LED 1 saturation (where the board has them and the design has the flags).

    Parameters
    ----------
    config : EngineConfig or TrainerConfig
        The engine (or the training design) behind the serial bridge (ignored when ``design`` is given).
    baud : int
        UART bit rate.
    pll_mhz : float or None
        iCE40 only: clock the design from an SB_PLL40_PAD fed by the board clock pin at this
        frequency (the power-on reset is held until the PLL locks and 15 us more, which the
        iCE40 BRAMs need). None: the board clock itself.
    design : Elaboratable or None
        A byte-stream design to put behind the UART instead of the engine's bridge.
    """

    def __init__(self, config, baud=115200, pll_mhz=None, design=None):
        self.config = config
        self.baud = baud
        self.pll_mhz = pll_mhz
        self.design = design

    def clock_hz(self, platform):
        return self.pll_mhz * 1e6 if self.pll_mhz else platform.default_clk_frequency

    def _pll_domain(self, m, platform):
        f_in = platform.default_clk_frequency / 1e6
        p = ice40_pll_params(f_in, self.pll_mhz)
        clk_pin = platform.request(platform.default_clk, dir="-")
        clk, lock = Signal(name="pll_clk"), Signal(name="pll_lock")
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"],
            p_FILTER_RANGE=p["FILTER_RANGE"],
            i_PACKAGEPIN=clk_pin.io, i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=clk, o_LOCK=lock)
        # Asynchronous reset (asserted and released from the `ready` flip-flop, so released in
        # step with the clock): the reset then drives the flip-flops' reset pins on a global net
        # instead of entering every enable's logic (iCE40 synchronous resets are gated by the
        # enable), which put it on the critical paths.
        m.domains.sync = ClockDomain("sync", async_reset=True)
        m.d.comb += ClockSignal("sync").eq(clk)
        platform.add_clock_constraint(clk, p["f_out_mhz"] * 1e6)
        delay = int(15e-6 * p["f_out_mhz"] * 1e6)
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        timer = Signal(range(delay + 1))
        ready = Signal()
        m.d.comb += ClockSignal("por").eq(clk)
        with m.If(~lock):
            m.d.por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == delay):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)
        m.d.comb += ResetSignal("sync").eq(~ready)

    def elaborate(self, platform):
        m = Module()
        if self.pll_mhz:
            self._pll_domain(m, platform)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        div = divisor_for(self.clock_hz(platform), self.baud)
        bridge = self.design or make_bridge(self.config, TIMEOUT_BYTES * 10 * div)
        rx, tx = attach_uart(m, bridge, div)
        m.submodules.rx_sync = FFSynchronizer(rx_buf.i, rx.rx, init=1)
        m.d.comb += tx_buf.o.eq(tx.tx)
        flags = [getattr(bridge, f) for f in ("error", "saturated") if hasattr(bridge, f)]
        for index, flag in enumerate(flags):
            try:
                led = platform.request("led", index, dir="-")
            except ResourceError:        # boards with fewer LEDs
                break
            m.submodules[f"led{index}"] = buf = io.Buffer("o", led)
            m.d.comb += buf.o.eq(flag)
        return m
