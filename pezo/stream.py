"""The generator's exact output stream as bytes (``pezo stream``): raw values or packed bits."""

import numpy as np

from pezo.sim.bank import BankModel
from pezo.sim.generator import STAGES, GeneratorModel

__all__ = ["write_stream", "pack_bits", "FORMATS"]

FORMATS = ("raw", "bits")


def pack_bits(values, width):
    """Pack w-bit two's complement values contiguously, LSB first, into bytes."""
    v = values.astype(np.int64) & ((1 << width) - 1)
    bits = ((v[:, None] >> np.arange(width)) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def write_stream(cfg, seed, count, out, stage="z", fmt="raw"):
    """Write the first ``count`` values of ``stage`` (``z``, ``uniform`` after reuse, ``bank``)
    after loading ``seed`` to the binary file object ``out``: ``raw`` (each value little-endian
    two's complement in the smallest of 1/2/4/8 bytes) or ``bits`` (the w bits of every value
    back to back, LSB first, for test batteries). Streams in chunks of about 2^20 values."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"Count must be a non-negative integer, not {count!r}")
    if stage not in STAGES:
        raise ValueError(f"Stage must be one of {', '.join(STAGES)}, not {stage!r}")
    if fmt not in FORMATS:
        raise ValueError(f"Format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    width = {"z": cfg.z_bits, "uniform": cfg.width, "bank": cfg.width}[stage]
    container = next(b for b in (1, 2, 4, 8) if 8 * b >= width)
    per_beat = cfg.lanes if stage == "bank" else cfg.out_lanes
    model = BankModel(cfg, seed) if stage == "bank" else GeneratorModel(cfg, seed)
    chunk_beats = max(1, (1 << 20) // per_beat)
    left, carry = int(count), np.empty(0, dtype=np.int64)
    while left > 0:
        beats = min(chunk_beats, -(-left // per_beat))
        vals = model.next_uniform(beats) if stage == "uniform" else model.next(beats)
        vals = vals.reshape(-1)[:left]
        left -= len(vals)
        if fmt == "raw":
            out.write(vals.astype(f"<i{container}").tobytes())
        else:
            # Keep whole bytes: carry values over so the bit packing is continuous.
            vals = np.concatenate([carry, vals])
            keep = len(vals) - (len(vals) % 8) if left > 0 else len(vals)
            out.write(pack_bits(vals[:keep], width))
            carry = vals[keep:]
