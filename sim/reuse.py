"""Golden model of the random-number reuse strategies (bit-exact with :mod:`pezo.hw.reuse`).

Output beat b (m numbers, lane j) in terms of the bank's numbers g[c, l] (cycle c, generator l):

* ``none``: out[b, j] = g[b, j] (m = n).
* ``onthefly``: out[b, j] = g[b, (j + b) mod n]: every generator feeds m/n lanes, and after every
  cycle the order rotates by one ("the generator of the first position moves to the end").
* ``pregen``: after a seed load the bank runs N/n cycles to fill the pool, pool[c*n + l] = g[c, l];
  the pool memory holds words of m numbers, word a = pool[a*m : (a+1)*m]. Beats read words
  cyclically: out[b] = word (o + b) mod (N/m), where o is the offset register (in words; 0 after
  the fill). The next perturbation starts where the last stopped; writing o back replays one.
  The fill also accumulates the pool's second moment S = sum pool^2 (for the scaler's correction).
"""

import numpy as np

from pezo.sim.bank import BankModel

__all__ = ["ReuseModel"]


class ReuseModel:
    """Bank + reuse, resumable. ``next(beats)`` returns (beats, m) int64 uniform numbers."""

    def __init__(self, cfg, seed):
        self.cfg = cfg
        self.load_seed(seed)

    def load_seed(self, seed):
        cfg = self.cfg
        self.bank = BankModel(cfg, seed, rotate=cfg.reuse == "onthefly")
        self.offset = 0
        self.pool = self.sumsq = None
        if cfg.reuse == "pregen":
            self.pool = self.bank.next(cfg.pool_size // cfg.lanes).reshape(cfg.pool_words,
                                                                            cfg.out_lanes)
            self.sumsq = int(np.sum(self.pool * self.pool))

    def set_offset(self, word: int):
        words = self.cfg.pool_words
        if not 0 <= word < words:
            raise ValueError(f"Pool offset must be a word index in 0..{words - 1}, not {word!r}")
        self.offset = int(word)

    def next(self, beats: int) -> np.ndarray:
        cfg = self.cfg
        if cfg.reuse == "none":
            return self.bank.next(beats)
        if cfg.reuse == "onthefly":
            return np.tile(self.bank.next(beats), (1, cfg.out_lanes // cfg.lanes))
        idx = (self.offset + np.arange(beats)) % cfg.pool_words
        self.offset = int((self.offset + beats) % cfg.pool_words)
        return self.pool[idx]
