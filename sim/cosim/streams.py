"""Shared cocotb stream driver and monitor for ``amaranth.lib.stream`` ports in generated Verilog.

A stream port ``name`` of an Amaranth component appears in its Verilog as ``name__valid``,
``name__ready`` and ``name__payload``. Every testbench drives and samples them the same way:

* :class:`StreamSource` puts values on an input stream, one transfer each, inserting random
  ``valid`` gaps with probability ``stall`` per cycle;
* :class:`StreamSink` takes ``n`` transfers from an output stream, with ``ready`` high with
  probability ``ready_prob`` each cycle.

Both sample handshakes at the falling edge (between the DUT's register updates), so a transfer is
counted exactly when the DUT sees ``valid & ready`` at the rising edge. An unresolved X on a
handshake signal reads as 0 (see :func:`high`).
"""

from cocotb.triggers import FallingEdge, RisingEdge

__all__ = ["StreamSink", "StreamSource", "high", "reset_dut"]


async def reset_dut(dut, inputs=("cmd__valid", "wdata__valid", "rdata__ready", "cmd__payload",
                                  "wdata__payload"), period_ns=10):
    """Start ``dut.clk``, drive ``inputs`` low and hold ``dut.rst`` for two cycles."""
    import cocotb
    from cocotb.clock import Clock
    cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())
    for sig in inputs:
        getattr(dut, sig).value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


def high(sig):
    """The 1-bit signal is 1 (X or Z read as 0: not ready/valid)."""
    return str(sig.value) == "1"


class _StreamPort:
    """The three signals of stream port ``name`` of ``dut``, its clock and a random source."""

    def __init__(self, dut, name, rng, clk=None):
        self.clk = clk if clk is not None else dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.rng = rng


class StreamSource(_StreamPort):
    """Drive ``dut.<name>__valid/__payload`` and wait for ``__ready``."""

    def __init__(self, dut, name, rng, stall=0.0, clk=None):
        super().__init__(dut, name, rng, clk)
        self.stall = stall
        self.sent = 0

    def idle(self):
        self.valid.value = 0

    async def send(self, value):
        """One transfer of the integer ``value``; returns after the rising edge that took it."""
        while self.rng.random() < self.stall:           # random valid gaps
            self.valid.value = 0
            await RisingEdge(self.clk)
        self.payload.value = value
        self.valid.value = 1
        while True:
            await FallingEdge(self.clk)
            taken = high(self.ready)
            await RisingEdge(self.clk)
            if taken:
                break
        self.valid.value = 0
        self.sent += 1


class StreamSink(_StreamPort):
    """Drive ``dut.<name>__ready`` at random and record ``__payload`` on every transfer."""

    def __init__(self, dut, name, rng, ready_prob=1.0, clk=None):
        super().__init__(dut, name, rng, clk)
        self.ready_prob = ready_prob

    def idle(self):
        self.ready.value = 0

    async def recv(self, n):
        """The payloads of the next ``n`` transfers, as integers."""
        got = []
        while len(got) < n:
            self.ready.value = int(self.rng.random() < self.ready_prob)
            await FallingEdge(self.clk)
            if high(self.valid) and high(self.ready):
                got.append(int(self.payload.value))
            await RisingEdge(self.clk)
        self.ready.value = 0
        return got
