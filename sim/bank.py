"""Golden model of the uniform RNG bank (bit-exact with :class:`pezo.hw.lfsr.UniformBank`).

Stream definition, lane l, cycle c (a cycle is one transfer of the bank's output stream; after a
seed load the count restarts at 0). Start states: :func:`pezo.sim.seeding.bank_states` of the seed
(XOR the bank's domain tweak).

* independent lanes: generator l has its own k-bit LFSR started from state l; the number is bits
  x_{c*w} .. x_{c*w + w - 1} of its sequence (``leap``: every bit is used once).
* ``shared``: one LFSR; lane l takes bits x_{c*n*w + l*w} .. x_{c*n*w + l*w + w - 1}.
* bit j of the field is bit j of the w-bit two's complement number (LSB = lowest index).
* ``rotate`` (used by ``onthefly`` reuse): output position j carries generator (j + c) mod n.
"""

import numpy as np

from pezo.sim.lfsr import extract, sequence_words
from pezo.sim.seeding import lane_states

__all__ = ["BankModel", "bank_stream", "bank_geometry"]


def bank_geometry(cfg):
    """(generators, step per cycle, bit offset of each lane) of a bank configuration."""
    n, w = cfg.lanes, cfg.width
    if cfg.shared:
        return 1, n * w, [l * w for l in range(n)]
    return n, w, [0] * n


class BankModel:
    """Resumable bank model: ``next(cycles)`` returns the next (cycles, lanes) int64 numbers.

    The generators' sequences are produced in large packed blocks and read from there, so many
    small ``next`` calls cost about the same as one large one."""

    BLOCK_BITS = 1 << 24
    FIRST_BITS = 1 << 14    # read-ahead of the first block; it doubles per block up to BLOCK_BITS

    def __init__(self, cfg, seed, rotate=False, tweak=0):
        self.cfg = cfg
        self.rotate = rotate
        self.gens, self.step, self.offsets = bank_geometry(cfg)
        self.cycle = 0
        self._base = 0          # sequence index of bit 0 of self._words
        self._ahead = self.FIRST_BITS
        self._words = sequence_words(cfg.state_bits,
                                     lane_states(seed, cfg.state_bits, self.gens, cfg.seed_width,
                                                 tweak),
                                     cfg.state_bits + 64)

    def _cover(self, first: int, last: int):
        """Make self._words hold sequence bits first..last (absolute indices)."""
        have = self._base + 64 * (self._words.shape[1] - 1)
        if first >= self._base and last < have:
            return
        k = self.cfg.state_bits
        new_base = first - first % 64
        at = np.array([new_base - self._base], dtype=np.int64)
        mask = (1 << k) - 1
        states = []
        for g in range(self.gens):      # in fields of at most 64 bits (k may exceed 64)
            st = 0
            for lo in range(0, k, 64):
                f = min(64, k - lo)
                st |= (int(extract(self._words[g], at + lo, f)[0]) & ((1 << f) - 1)) << lo
            states.append(st & mask)
        self._words = sequence_words(k, states, max(last - new_base + 1 + 64, self._ahead))
        self._ahead = min(2 * self._ahead, self.BLOCK_BITS)
        self._base = new_base

    def next(self, cycles: int) -> np.ndarray:
        cfg, w, n = self.cfg, self.cfg.width, self.cfg.lanes
        cycles = int(cycles)
        out = np.empty((cycles, n), dtype=np.int64)
        if cycles == 0:
            return out
        first = self.cycle * self.step
        self._cover(first, first + (cycles - 1) * self.step + max(self.offsets) + w)
        rel = first - self._base
        if not cfg.shared and w in (8, 16, 32):
            # Every lane's numbers are consecutive w-bit fields of its sequence: views.
            lanes = self._words.view(f"<i{w // 8}")[:, rel // w:rel // w + cycles]
            for c in range(0, cycles, 8192):  # blocked transpose stays in cache
                out[c:c + 8192] = lanes[:, c:c + 8192].T
        else:
            pos = np.arange(cycles, dtype=np.int64) * self.step + rel
            for lane in range(n):
                g = 0 if cfg.shared else lane
                out[:, lane] = extract(self._words[g], pos + self.offsets[lane], w)
        if self.rotate and n > 1:
            c = (self.cycle + np.arange(cycles))[:, None]
            out = np.take_along_axis(out, (np.arange(n)[None, :] + c) % n, axis=1)
        self.cycle += cycles
        return out


def bank_stream(cfg, seed, cycles, rotate=False, tweak=0) -> np.ndarray:
    """The first ``cycles`` outputs (cycles, lanes) of the bank after loading ``seed``."""
    return BankModel(cfg, seed, rotate, tweak).next(cycles)
