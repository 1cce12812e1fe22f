"""Small helpers shared by the hardware blocks."""

from functools import reduce
from operator import xor

from amaranth.hdl import Const, Mux, Signal, Value

from pezo.config import GeneratorConfig

__all__ = ["check_config", "one_hot_states", "xor_bits", "NO_RW_CHECK", "collision_read"]

#: Memory attributes: a read of the address being written in the same cycle is undefined.
#: Without it yosys builds bypass logic on the iCE40 (two flip-flops and a multiplexer per data
#: bit) to give such a read the old data; use it only with :func:`collision_read`.
NO_RW_CHECK = {"no_rw_check": 1}


def check_config(cfg, what="Configuration"):
    if not isinstance(cfg, GeneratorConfig):
        raise TypeError(f"{what} must be a GeneratorConfig, not {cfg!r}")
    return cfg


def xor_bits(value, mask: int):
    """XOR of the bits of ``value`` selected by ``mask`` (a 1-bit expression)."""
    bits = [value[i] for i in range(mask.bit_length()) if (mask >> i) & 1]
    return reduce(xor, bits) if bits else Const(0, 1)


def one_hot_states(m, names, init):
    """One flip-flop per state (``init`` high after reset) and ``goto(src, dst)``, which moves
    from state ``src`` to ``dst`` on the next clock edge (call it under ``m.If(st[src])``).

    Used instead of an Amaranth FSM where timing matters: yosys does not re-encode an FSM whose
    state register has an initial value, and a binary next-state decode was the critical path on
    the iCE40; with one-hot flags every transition is a few gates from flip-flops."""
    st = {n: Signal(name=f"st_{n.lower()}", init=(n == init)) for n in names}

    def goto(src, dst):
        m.d.sync += [st[src].eq(0), st[dst].eq(1)]
    return st, goto


def collision_read(m, rd, wr, platform):
    """The read data of ``rd``, for a memory built with :data:`NO_RW_CHECK`: a read of the
    address ``wr`` writes in the same cycle is undefined on the FPGA. In simulation
    (``platform`` None: the Amaranth simulator, the Verilator builds) such a read returns its
    data inverted, so a design that used one would fail its bit-exact tests; on a platform the
    data is the memory's own."""
    if platform is not None:
        return rd.data
    en = wr.en.any() if len(wr.en) > 1 else wr.en
    hit = Signal(name="collided")
    m.d.sync += hit.eq(rd.en & en & (rd.addr == wr.addr))
    raw = Value.cast(rd.data)
    out = Signal(rd.data.shape(), name="collision_data")
    m.d.comb += Value.cast(out).eq(Mux(hit, ~raw, raw))
    return out
