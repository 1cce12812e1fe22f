"""Weight memory in the iCE40 UltraPlus single-port RAMs (``SB_SPRAM256KA``, 16K x 16 bits).

An UP5K has four SPRAMs (256 Kbit each, 1 Mbit in all) beside its thirty 4-Kbit EBRs: 65,536
16-bit weights instead of the EBRs' 8,192 at most. The price is the single port: in a cycle the
memory reads *or* writes. :class:`SpramWeights` builds a weight memory of ``words`` rows of
``row_bits`` from SPRAMs: the row is cut into 16-bit slices (one SPRAM each, side by side), and
rows beyond 16,384 go to further banks of slices (the bank of a read is registered to select the
read data). The engine (:class:`pezo.hw.engine.PerturbEngine` with ``weights="spram"``) runs its
passes at half rate: a word is read in one cycle and a MAC result written in the next.

On an iCE40 UltraPlus platform each SPRAM is an ``Instance("SB_SPRAM256KA")``; without a platform
(simulation, ``pezo generate``) it is :class:`SpramModel`, a model of the primitive as yosys's
own simulation model (``share/ice40/cells_sim.v``) defines it: reads registered, nibble write
masks, and DATAOUT undefined after a write. The model makes that undefined value a poison word
(the written data inverted), so a design that used DATAOUT after a write would fail the
bit-exact tests instead of passing by luck.

:class:`BlockRamWeights` is the same contract (ports, one access per cycle, read latency 3) in
block RAM, for families without SPRAM (the ECP5); :func:`single_port_memory` chooses between
the two by the platform.
"""

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SPRAM_WORDS", "SPRAM_BITS", "UP5K_SPRAMS", "READ_LATENCY", "SpramModel",
           "SpramWeights", "BlockRamWeights", "single_port_memory", "spram_count",
           "is_ultraplus"]

SPRAM_WORDS = 16384
SPRAM_BITS = 16
#: SB_SPRAM256KA blocks on an iCE40 UP5K (and UP3K: 4 too).
UP5K_SPRAMS = 4
#: Cycles from ``re`` to the row on :class:`SpramWeights`' ``rdata``: the input register, the
#: SPRAM's own read register, the output register.
READ_LATENCY = 3


def spram_count(row_bits: int, words: int) -> int:
    """SPRAMs a memory of ``words`` rows of ``row_bits`` needs: 16-bit slices x 16K-row banks."""
    return -(-row_bits // SPRAM_BITS) * -(-words // SPRAM_WORDS)


def is_ultraplus(platform) -> bool:
    """Whether ``platform`` is an iCE40 UltraPlus (has SB_SPRAM256KA)."""
    return str(getattr(platform, "device", "")).startswith("iCE40UP")


class SpramModel(wiring.Component):
    """Simulation model of one ``SB_SPRAM256KA`` (the ports the engine drives).

    Members
    -------
    addr : In(14), data_in : In(16), mask_wren : In(4), wren : In(1), cs : In(1)
    data_out : Out(16)
        Registered: after a cycle with ``cs`` and not ``wren`` it holds the word at ``addr``;
        after a write (``cs`` and ``wren``) the poison ``~data_in``; otherwise it keeps its value.
    """

    addr: In(14)
    data_in: In(16)
    mask_wren: In(4)
    wren: In(1)
    cs: In(1)
    data_out: Out(16)

    def elaborate(self, platform):
        m = Module()
        # One memory per nibble: MASKWREN writes nibbles independently.
        nibbles = []
        for i in range(4):
            mem = memory.Memory(shape=4, depth=SPRAM_WORDS, init=[])
            m.submodules[f"nib{i}"] = mem
            wr = mem.write_port()
            rd = mem.read_port(transparent_for=())
            m.d.comb += [wr.addr.eq(self.addr), wr.data.eq(self.data_in[4 * i:4 * i + 4]),
                         wr.en.eq(self.cs & self.wren & self.mask_wren[i]),
                         rd.addr.eq(self.addr), rd.en.eq(self.cs & ~self.wren)]
            nibbles.append(rd.data)
        poison = Signal(16)
        wrote = Signal()
        with m.If(self.cs):
            m.d.sync += wrote.eq(self.wren)
        with m.If(self.cs & self.wren):
            m.d.sync += poison.eq(~self.data_in)
        m.d.comb += self.data_out.eq(Mux(wrote, poison, Cat(*nibbles)))
        return m


class _SinglePortMemory(wiring.Component):
    """The shape checks, ports and read-back properties both single-ported memories share."""

    def __init__(self, row_bits, words):
        for what, v, hi in (("Row width", row_bits, 1 << 10), ("Row count", words, 1 << 16)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
                raise ValueError(f"{what} must be an integer in 1..{hi}, not {v!r}")
        self._row_bits, self._words = row_bits, words
        super().__init__({"addr": In(range(words)), "re": In(1), "we": In(1),
                          "wdata": In(row_bits), "rdata": Out(row_bits)})

    row_bits = property(lambda self: self._row_bits)
    words = property(lambda self: self._words)
    latency = property(lambda self: READ_LATENCY)


class SpramWeights(_SinglePortMemory):
    """A single-ported memory of ``words`` rows of ``row_bits`` bits in SB_SPRAM256KA blocks.

    One access per cycle: ``re`` reads row ``addr``, ``we`` writes ``wdata`` to row ``addr``;
    ``re`` and ``we`` must not be high together (the caller arbitrates; the engine alternates
    them). The SPRAMs sit in the corners of the UP5K, several nanoseconds of routing from the
    logic, so both ends are registered: the access reaches the SPRAMs one cycle after it is
    asked for, and a read's row is on ``rdata`` :data:`READ_LATENCY` (3) cycles after ``re``,
    held there until the next read's row replaces it. Accesses keep their order (a read asked
    for after a write sees it).

    Parameters
    ----------
    row_bits : int
        Bits per row (the engine's m x b); cut into ceil(row_bits / 16) SPRAM slices.
    words : int
        Rows, 1..65536 (rows beyond 16,384 take further banks of slices).

    Members
    -------
    addr : In(range(words)), re : In(1), we : In(1), wdata : In(row_bits), rdata : Out(row_bits)

    Raises
    ------
    ValueError
        On elaboration for a platform that is not an iCE40 UltraPlus, or when the memory needs
        more than the UP5K's four SPRAMs there.
    """

    @property
    def sprams(self) -> int:
        """SB_SPRAM256KA blocks used."""
        return spram_count(self._row_bits, self._words)

    def _cell(self, m, platform, name, addr, data_in, wren, cs):
        """One SPRAM: the primitive on an UltraPlus, else the model. Returns its DATAOUT."""
        out = Signal(16, name=f"{name}_out")
        if platform is None:
            cell = m.submodules[name] = SpramModel()
            m.d.comb += [cell.addr.eq(addr), cell.data_in.eq(data_in), cell.mask_wren.eq(0xF),
                         cell.wren.eq(wren), cell.cs.eq(cs), out.eq(cell.data_out)]
        else:
            m.submodules[name] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=addr, i_DATAIN=data_in, i_MASKWREN=0xF, i_WREN=wren, i_CHIPSELECT=cs,
                i_CLOCK=ClockSignal(), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=out)
        return out

    def elaborate(self, platform):
        if platform is not None:
            if not is_ultraplus(platform):
                raise ValueError(f"weights='spram' needs an iCE40 UltraPlus (SB_SPRAM256KA); "
                                 f"the platform {type(platform).__name__} has none (use "
                                 f"weights='bram')")
            if self.sprams > UP5K_SPRAMS:
                raise ValueError(f"A weight memory of {self._words} rows x {self._row_bits} "
                                 f"bits needs {self.sprams} SB_SPRAM256KA; the UltraPlus has "
                                 f"{UP5K_SPRAMS} (at most {UP5K_SPRAMS * SPRAM_WORDS * 16} bits)")
        m = Module()
        slices = -(-self._row_bits // SPRAM_BITS)
        banks = -(-self._words // SPRAM_WORDS)
        # input registers: the SPRAMs' address, data and enables come straight from flip-flops
        addr = Signal.like(self.addr, name="addr_r")
        we, re = Signal(name="we_r"), Signal(name="re_r")
        wdata = Signal(slices * SPRAM_BITS, name="wdata_r")
        m.d.sync += [addr.eq(self.addr), we.eq(self.we), re.eq(self.re & ~self.we),
                     wdata.eq(self.wdata)]
        lo = Signal(14)
        m.d.comb += lo.eq(addr[:14])
        bank = addr[14:] if banks > 1 else 0
        outs = []
        for b in range(banks):
            sel = (bank == b) if banks > 1 else 1
            outs.append(Cat(*(self._cell(m, platform, f"spram_b{b}_s{s}", lo,
                                         wdata[16 * s:16 * s + 16], we, sel & (re | we))
                              for s in range(slices)))[:self._row_bits])
        # output register: takes the SPRAMs' DATAOUT in the cycle after they read, else holds
        read_done = Signal()
        m.d.sync += read_done.eq(re)
        rsel = outs[0]
        if banks > 1:
            bank_r = Signal(range(banks))
            with m.If(re):
                m.d.sync += bank_r.eq(bank)
            for b in range(1, banks):
                rsel = Mux(bank_r == b, outs[b], rsel)
        with m.If(read_done):
            m.d.sync += self.rdata.eq(rsel)
        return m


class BlockRamWeights(_SinglePortMemory):
    """:class:`SpramWeights`' contract in block RAM (``amaranth.lib.memory.Memory``): for
    families without SPRAM (the ECP5's DP16KD). The same ports and the same timing: one access
    per cycle (``re`` and ``we`` not together), the input registered, the memory's synchronous
    read, the output registered: a read's row is on ``rdata`` :data:`READ_LATENCY` (3) cycles
    after ``re`` and held until the next read's row replaces it; accesses keep their order.

    Parameters
    ----------
    row_bits : int
        Bits per row, 1..1024.
    words : int
        Rows, 1..65536.

    Members
    -------
    addr : In(range(words)), re : In(1), we : In(1), wdata : In(row_bits), rdata : Out(row_bits)
    """

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self._row_bits, depth=self._words, init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=())    # a write lands before a later read is issued
        addr = Signal.like(self.addr, name="addr_r")
        we, re = Signal(name="we_r"), Signal(name="re_r")
        wdata = Signal(self._row_bits, name="wdata_r")
        m.d.sync += [addr.eq(self.addr), we.eq(self.we), re.eq(self.re & ~self.we),
                     wdata.eq(self.wdata)]
        m.d.comb += [wr.addr.eq(addr), wr.data.eq(wdata), wr.en.eq(we),
                     rd.addr.eq(addr), rd.en.eq(re)]
        read_done = Signal()
        m.d.sync += read_done.eq(re)
        with m.If(read_done):
            m.d.sync += self.rdata.eq(rd.data)
        return m


def single_port_memory(row_bits, words, platform):
    """The single-ported memory of ``words`` rows of ``row_bits`` for ``platform``: in SPRAM
    (:class:`SpramWeights`) on an iCE40 UltraPlus and in simulation (``platform`` None: the
    SPRAM model), in block RAM (:class:`BlockRamWeights`, same ports and latency) elsewhere."""
    if platform is None or is_ultraplus(platform):
        return SpramWeights(row_bits, words)
    return BlockRamWeights(row_bits, words)
