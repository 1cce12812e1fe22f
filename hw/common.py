"""Small helpers shared by the hardware blocks."""

from functools import reduce
from operator import xor

from amaranth.hdl import Const

from pezo.config import GeneratorConfig

__all__ = ["check_config", "xor_bits"]


def check_config(cfg, what="Configuration"):
    if not isinstance(cfg, GeneratorConfig):
        raise TypeError(f"{what} must be a GeneratorConfig, not {cfg!r}")
    return cfg


def xor_bits(value, mask: int):
    """XOR of the bits of ``value`` selected by ``mask`` (a 1-bit expression)."""
    bits = [value[i] for i in range(mask.bit_length()) if (mask >> i) & 1]
    return reduce(xor, bits) if bits else Const(0, 1)
