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

import copy

import numpy as np

from pezo.sim.lfsr import WORD_BLOCK, continue_words, extract, sequence_words
from pezo.sim.seeding import lane_states

__all__ = ["BankModel", "bank_stream", "bank_geometry", "lanes_to_beats"]


def bank_geometry(cfg):
    """(generators, step per cycle, bit offset of each lane) of a bank configuration."""
    n, w = cfg.lanes, cfg.width
    if cfg.shared:
        return 1, n * w, [l * w for l in range(n)]
    return n, w, [0] * n


def lanes_to_beats(lanes, out):
    """Copy lane-major numbers ``lanes`` (n, cycles) into the beat-major ``out`` (cycles, n):
    column by column in cache-sized chunks for few lanes (several times faster than one
    transposing copy of a (cycles, 4) array), as one transposed copy for many."""
    n, cycles = lanes.shape
    if n > 8:
        for c in range(0, cycles, 8192):
            out[c:c + 8192] = lanes[:, c:c + 8192].T
        return out
    step = 1 << 16
    for c in range(0, cycles, step):
        for lane in range(n):
            out[c:c + step, lane] = lanes[lane, c:c + step]
    return out


class BankModel:
    """Resumable bank model: ``next(cycles)`` returns the next (cycles, lanes) int64 numbers,
    ``next_lanes(cycles)`` the same numbers lane-major.

    The generators' sequences are produced in large packed blocks and read from there, so many
    small ``next`` calls cost about the same as one large one. The blocks continue one another
    in one buffer (:func:`pezo.sim.lfsr.continue_words`'s recurrence, in its largest steps):
    no start state is extracted, no sequence bootstrapped again and no memory allocated once the
    buffer has grown; when it is full, the words already read are dropped, keeping the history
    the recurrence needs."""

    BLOCK_BITS = 1 << 24
    FIRST_BITS = 1 << 14    # read-ahead of the first block; it doubles per block up to BLOCK_BITS
    HISTORY_WORDS = 1 << 20     # history kept over all generators at most (at least 2k each)

    def __init__(self, cfg, seed, rotate=False, tweak=0):
        self.cfg = cfg
        self.rotate = rotate
        self.gens, self.step, self.offsets = bank_geometry(cfg)
        self.cycle = 0
        self._base = 0          # sequence index of bit 0 of self._words
        self._ahead = self.FIRST_BITS
        k = cfg.state_bits
        # 2k words: what sequence_words bootstraps anyway, and enough history to continue from
        self._buf = sequence_words(k, lane_states(seed, k, self.gens, cfg.seed_width, tweak),
                                   64 * 2 * k)
        self._words = self._buf         # the valid words: self._buf[:, :n]
        self._start = self._buf.copy()  # for restarted()

    def restarted(self):
        """A new bank of the same seed at cycle 0 (what ``BankModel(cfg, seed, rotate, tweak)``
        returns), without mixing the seed and bootstrapping its sequences again."""
        new = copy.copy(self)
        new.cycle, new._base, new._ahead = 0, 0, self.FIRST_BITS
        new._buf = new._words = self._start.copy()
        return new

    def _cover(self, first: int, last: int):
        """Make self._words hold sequence bits first..last (absolute indices; first never
        moves back)."""
        have = self._base + 64 * (self._words.shape[1] - 1)
        if first >= self._base and last < have:
            return
        k, buf, n, base = self.cfg.state_bits, self._buf, self._words.shape[1], self._base
        target = -(-max(last - base + 1 + 64, first - base + self._ahead) // 64) + 1
        self._ahead = min(2 * self._ahead, self.BLOCK_BITS)
        if target + WORD_BLOCK > buf.shape[1]:
            # drop the words before the first one needed, keeping the recurrence's history
            keep = max(2 * k, min(2 * k * WORD_BLOCK, self.HISTORY_WORDS // self.gens))
            s = max(0, min((first - base) // 64, n - keep))
            n, target, base = n - s, target - s, base + 64 * s
            if target + WORD_BLOCK > buf.shape[1] or 4 * s < n:
                cap = buf.shape[1] if target + WORD_BLOCK <= buf.shape[1] \
                    else max(2 * buf.shape[1], target + WORD_BLOCK)
                new = np.empty((self.gens, cap), dtype=np.uint64)
                new[:, :n] = buf[:, s:s + n]
                buf = new
            else:
                for i in range(0, n, s):     # in pieces that do not overlap their source
                    buf[:, i:min(i + s, n)] = buf[:, s + i:s + min(i + s, n)]
        self._words = continue_words(k, buf[:, :n], target, out=buf)
        self._buf, self._base = buf, base

    def next_lanes(self, cycles: int) -> np.ndarray:
        """The next ``cycles`` outputs lane-major, (lanes, cycles): the transpose of what
        :meth:`next` returns: int64, or for an independent-lane bank of 8-, 16- or 32-bit numbers
        those w-bit integers (a copy of its packed sequences, whose buffer is reused)."""
        cfg, w, n = self.cfg, self.cfg.width, self.cfg.lanes
        cycles = int(cycles)
        if cycles == 0:
            return np.empty((n, 0), dtype=np.int64)
        first = self.cycle * self.step
        self._cover(first, first + (cycles - 1) * self.step + max(self.offsets) + w)
        rel = first - self._base
        if not cfg.shared and w in (8, 16, 32):
            # Every lane's numbers are consecutive w-bit fields of its sequence.
            out = self._words.view(f"<i{w // 8}")[:, rel // w:rel // w + cycles].copy()
        else:
            pos = np.arange(cycles, dtype=np.int64) * self.step + rel
            out = np.empty((n, cycles), dtype=np.int64)
            for lane in range(n):
                g = 0 if cfg.shared else lane
                out[lane] = extract(self._words[g], pos + self.offsets[lane], w)
        if self.rotate and n > 1:      # position j of cycle c carries generator (j + c) mod n
            c = (self.cycle + np.arange(cycles))[None, :]
            out = np.take_along_axis(out, (np.arange(n)[:, None] + c) % n, axis=0)
        self.cycle += cycles
        return out

    def next(self, cycles: int) -> np.ndarray:
        cycles = int(cycles)
        return lanes_to_beats(self.next_lanes(cycles),
                              np.empty((cycles, self.cfg.lanes), dtype=np.int64))


def bank_stream(cfg, seed, cycles, rotate=False, tweak=0) -> np.ndarray:
    """The first ``cycles`` outputs (cycles, lanes) of the bank after loading ``seed``."""
    return BankModel(cfg, seed, rotate, tweak).next(cycles)
