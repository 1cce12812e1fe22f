"""Small helpers shared by the hardware blocks."""

from functools import reduce
from operator import xor

from amaranth.hdl import Const, Signal

from pezo.config import GeneratorConfig

__all__ = ["check_config", "one_hot_states", "xor_bits"]


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
