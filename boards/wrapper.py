"""A block (generator, bank, Gaussian baseline...) behind the board's UART, for synthesis only.

Resource comparisons need a single block on a real device with nothing optimised away, without
its own command protocol. :class:`BlockWrapper` gives any component with an output stream ``o``
the byte streams :class:`pezo.boards.top.BoardTop` expects:

* every input port of the block (``seed``, ``seed_load``, ``scale_value``...) is driven from one
  shift register that received bytes shift into (8 bits per byte, LSB first), so no input is a
  constant that synthesis could fold;
* every output bit (the ``o`` payload and status outputs such as ``saturated``) is XOR-folded
  into one byte that is sent whenever the UART takes one (``o.ready`` of the block is the UART's
  ready, so backpressure reaches the block).

The fold and the shift register are the wrapper's own cost; :class:`PassThrough` has the same
ports as a block and no logic of its own, so a wrapper around it measures that cost
("marginal logic cells" of a block = its design's cells minus the pass-through design's cells of
the same port widths). The block is the submodule ``dut`` (path ``pezo_top.bridge.dut`` in the
per-module breakdown).
"""

from functools import reduce
from operator import xor

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BlockWrapper", "PassThrough"]


class PassThrough(wiring.Component):
    """``o.payload`` = ``seed`` bits (copies rotated by 0, 1, 2... bits, truncated to
    ``lanes * width``), ``o.valid`` = 1: a block with ports and no logic, the wrapper-only
    reference design."""

    def __init__(self, lanes, width, seed_width=64):
        self._bits = lanes * width
        super().__init__({
            "o": Out(stream.Signature(data.ArrayLayout(width, lanes))),
            "seed": In(seed_width),
            "seed_load": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        sw = len(self.seed)
        reps = -(-self._bits // sw)
        # Copy r of the seed is rotated by r bits, so no seed bit meets itself in the wrapper's
        # XOR fold (plain copies 32 bits apart would cancel and the fold would become constant).
        copies = [self.seed.rotate_left(r) for r in range(reps)]
        m.d.comb += [Value.cast(self.o.payload).eq(Cat(*copies)[:self._bits]),
                     self.o.valid.eq(1)]
        return m


class BlockWrapper(wiring.Component):
    """Byte streams ``i`` (to the block's inputs) and ``o`` (XOR fold of its outputs).

    Parameters
    ----------
    block : wiring.Component
        Must have an output stream member ``o``; every other member is a plain port.
    """

    def __init__(self, block):
        if "o" not in block.signature.members:
            raise ValueError(f"{type(block).__name__} has no output stream 'o'; the wrapper "
                             f"takes stream-producing blocks (generator, bank, baselines)")
        self.block = block
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.block
        ins, outs = [], []
        for path, member, value in dut.signature.flatten(dut):
            if path == ("o", "ready"):
                continue
            (ins if member.flow == In else outs).append(Value.cast(value))
        width = max(8, sum(len(v) for v in ins))
        shreg = Signal(width)
        m.d.comb += self.i.ready.eq(1)
        with m.If(self.i.valid):
            m.d.sync += shreg.eq(Cat(shreg[8:], self.i.payload))
        pos = 0
        for v in ins:
            m.d.comb += v.eq(shreg[pos:pos + len(v)])
            pos += len(v)
        bits = Cat(*outs)
        folded = reduce(xor, [bits[i:i + 8] for i in range(0, len(bits), 8)])
        m.d.comb += [dut.o.ready.eq(self.o.ready),
                     self.o.valid.eq(dut.o.valid),
                     self.o.payload.eq(folded)]
        return m
