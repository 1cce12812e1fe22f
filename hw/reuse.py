"""Random-number reuse: ``onthefly`` fan-out and the ``pregen`` pool (see :mod:`pezo.sim.reuse`)."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.hw.common import check_config
from pezo.sim.reuse import onthefly_taps

__all__ = ["Fanout", "PoolBuffer", "sumsq_bits"]


def sumsq_bits(cfg) -> int:
    """Width of the pool's second-moment accumulator: holds N * 2^(2w-2) exactly."""
    return 2 * cfg.width - 1 + max(cfg.pool_size, 1).bit_length()


class Fanout(wiring.Component):
    """n lanes to m = r*n lanes: output lane j carries L_q(input lane j mod n), q = j // n, where
    L_0 is the identity and L_q(u) = u ^ rotl(u, a_q) ^ rotl(u, b_q) (one LUT3 per bit; taps
    from :func:`pezo.sim.reuse.onthefly_taps`, chosen so that the lanes' fourth moments are those
    of independent lanes). Combinational.

    With a rotating bank in front (``UniformBank(rotate=True)``) this is the ``onthefly`` strategy:
    each generator feeds m/n lanes and the order rotates by one position every cycle.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(signed(width), lanes)))
    o : Out(stream.Signature(ArrayLayout(signed(width), out_lanes)))
    """

    def __init__(self, config):
        self._cfg = cfg = check_config(config)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(cfg.width), cfg.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(cfg.width), cfg.out_lanes))),
        })

    config = property(lambda self: self._cfg)
    latency = property(lambda self: 0, doc="Combinational: 0 cycles.")

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        n, w = cfg.lanes, cfg.width
        taps = [None] + onthefly_taps(w, cfg.out_lanes // n)

        def rotl(v, r):
            return Cat(v[w - r:], v[:w - r])
        for j in range(cfg.out_lanes):
            u = self.i.payload[j % n].as_unsigned()
            if taps[j // n] is None:
                m.d.comb += self.o.payload[j].eq(self.i.payload[j % n])
            else:
                a, b = taps[j // n]
                m.d.comb += self.o.payload[j].eq((u ^ rotl(u, a) ^ rotl(u, b)).as_signed())
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        return m


class PoolBuffer(wiring.Component):
    """The ``pregen`` pool: N numbers in on-chip RAM, filled from the bank, read cyclically.

    After reset or ``restart`` the buffer takes N/n bank transfers (``i.ready`` high throughout;
    one pool word of m numbers per m/n transfers) and sums their squares. Then it streams words
    (o + b) mod (N/m) for beats b = 0, 1, ... from the offset register o, which starts at 0.

    Parameters
    ----------
    config : GeneratorConfig
        ``reuse`` must be ``"pregen"``.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(signed(width), lanes)))
        Numbers from the bank (taken only while filling).
    o : Out(stream.Signature(ArrayLayout(signed(width), out_lanes)))
        Pool words. Valid from ``latency`` cycles after the fill ends or the offset is set.
    restart : In(1)
        Refill the pool (pulse together with the bank's seed load); resets the offset to 0.
    offset : Out(range(N/m))
        Word index of the beat on ``o`` (the next to be transferred): read it to replay later.
    offset_value : In(range(N/m)), offset_set : In(1)
        Move the read position (rewind): the next beat delivered is word ``offset_value``.
    filling : Out(1)
        The pool is being filled; ``o`` is not valid.
    sumsq : Out(unsigned)
        Sum of the squares of the pool's numbers (valid when ``filling`` is low). Only with
        ``sumsq=True`` (the default); without it the block has no squaring logic.
    """

    def __init__(self, config, *, sumsq=True):
        self._cfg = cfg = check_config(config)
        if not isinstance(sumsq, bool):
            raise TypeError(f"sumsq must be a bool, not {sumsq!r}")
        self._sumsq = sumsq
        if cfg.reuse != "pregen":
            raise ValueError(f"PoolBuffer needs reuse 'pregen', not {cfg.reuse!r}")
        words = cfg.pool_words
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(cfg.width), cfg.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(cfg.width), cfg.out_lanes))),
            "restart": In(1),
            "offset": Out(range(words)),
            "offset_value": In(range(words)),
            "offset_set": In(1),
            "filling": Out(1),
            **({"sumsq": Out(unsigned(sumsq_bits(cfg)))} if sumsq else {}),
        })

    config = property(lambda self: self._cfg)
    latency = property(lambda self: 1, doc="Cycles from the fill's end or an offset set to valid "
                                           "data on ``o`` (one RAM read).")

    @property
    def fill_cycles(self):
        """Cycles a fill takes: N / n bank transfers, plus 2 for the second-moment pipeline."""
        return self._cfg.pool_size // self._cfg.lanes + 2

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        n, mo, words = cfg.lanes, cfg.out_lanes, cfg.pool_words
        beats = mo // n
        layout = data.ArrayLayout(signed(cfg.width), mo)
        m.submodules.pool = pool = memory.Memory(shape=layout, depth=words, init=[])
        wr = pool.write_port()
        rd = pool.read_port()

        filling = Signal(init=1)
        fill_addr = Signal(range(words))
        fill_beat = Signal(range(max(beats, 2)))
        gather = [Signal(data.ArrayLayout(signed(cfg.width), n), name=f"gather{b}")
                  for b in range(beats - 1)]
        sumsq = Signal(unsigned(sumsq_bits(cfg)))
        m.d.comb += self.filling.eq(filling)
        if self._sumsq:
            m.d.comb += self.sumsq.eq(sumsq)

        # Fill side.
        tail = Signal(range(3))
        taking = filling & (tail == 0)
        m.d.comb += self.i.ready.eq(taking)
        last_beat = fill_beat == beats - 1
        m.d.comb += [
            wr.addr.eq(fill_addr),
            wr.data.eq(Cat(*gather, self.i.payload)),
            wr.en.eq(taking & self.i.valid & last_beat),
        ]
        # Second moment, pipelined: squares are registered, then accumulated one cycle later;
        # `filling` stays high until the last square is in (TAIL cycles after the last write).
        squares = [Signal(unsigned(2 * cfg.width), name=f"sq{l}") for l in range(n)]
        sq_valid = Signal()
        m.d.sync += sq_valid.eq(0)
        with m.If(sq_valid & self._sumsq):
            m.d.sync += sumsq.eq(sumsq + sum(squares))
        with m.If(tail != 0):
            m.d.sync += tail.eq(tail - 1)
            with m.If(tail == 1):
                m.d.sync += filling.eq(0)
        with m.If(self.restart):
            m.d.sync += [filling.eq(1), fill_addr.eq(0), fill_beat.eq(0), sumsq.eq(0),
                         tail.eq(0), sq_valid.eq(0)]
        with m.Elif(filling & (tail == 0) & self.i.valid):
            m.d.sync += sq_valid.eq(1)
            for l in range(n if self._sumsq else 0):
                m.d.sync += squares[l].eq(self.i.payload[l] * self.i.payload[l])
            for b in range(beats - 1):
                with m.If(fill_beat == b):
                    m.d.sync += gather[b].eq(self.i.payload)
            with m.If(last_beat):
                m.d.sync += [fill_beat.eq(0), fill_addr.eq(fill_addr + 1)]
                with m.If(fill_addr == words - 1):
                    m.d.sync += [tail.eq(2), fill_addr.eq(0)]
            with m.Else():
                m.d.sync += fill_beat.eq(fill_beat + 1)

        # Read side: one RAM read register, stalled through the port enable.
        addr = Signal(range(words))
        head = Signal(range(words))
        valid = Signal()
        advance = ~valid | self.o.ready

        def wrap(x):
            return Mux(x == words - 1, 0, x + 1)

        m.d.comb += [
            rd.addr.eq(addr), rd.en.eq(advance),
            self.o.payload.eq(rd.data), self.o.valid.eq(valid), self.offset.eq(head),
        ]
        with m.If(self.restart):
            m.d.sync += [addr.eq(0), head.eq(0), valid.eq(0)]
        with m.Elif(self.offset_set):
            m.d.sync += [addr.eq(self.offset_value), head.eq(self.offset_value), valid.eq(0)]
        with m.Else():
            with m.If(advance):
                m.d.sync += valid.eq(~filling)
                with m.If(~filling):
                    m.d.sync += addr.eq(wrap(addr))
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += head.eq(wrap(head))
        return m
