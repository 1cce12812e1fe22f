"""Golden model of the random-number reuse strategies (bit-exact with :mod:`pezo.hw.reuse`).

Output beat b (m numbers, lane j) in terms of the bank's numbers g[c, l] (cycle c, generator l):

* ``none``: out[b, j] = g[b, j] (m = n).
* ``onthefly``: out[b, j] = L_q(g[b, (j + b) mod n]) with q = j // n: every generator feeds m/n
  lanes, the order rotates by one position after every cycle ("the generator of the first
  position moves to the end"), and lane group q sees its number through a fixed invertible
  GF(2)-linear map: L_0(u) = u, L_q(u) = u ^ rotl(u, a_q) ^ rotl(u, b_q) on the w bits
  (:func:`onthefly_taps`). Every bit of L_q(u) is the XOR of three bits of u and no two groups
  share such a triple, so two lanes fed by one generator are uncorrelated (not copies, as they
  would be without the maps).
* ``pregen``: after a seed load the bank runs N/n cycles to fill the pool, pool[c*n + l] = g[c, l];
  the pool memory holds words of m numbers, word a = pool[a*m : (a+1)*m]. Beats read words
  cyclically from the offset register o (in words; 0 after the fill): the uniform number of beat b,
  lane j is P = pool word (o + b) mod (N/m), lane j, sign-flipped by a fresh random bit:
  out[b, j] = P XOR -s[b, j] (one's complement, P -> -P-1, when s = 1). The sign bits come from the
  bank, which keeps running after the fill at one cycle per r beats (r = the largest power of two
  with r*m <= n*w): s[b, j] is bit (b mod r)*m + j of the bank's cycle floor(b / r) output, the n
  numbers concatenated (lane l in bits [l*w, (l+1)*w)), counting from the end of the fill. Reused
  pool numbers therefore come back with independent signs: no two coordinates of a perturbation,
  and no two queries, are tied, however short the pool. ``OFFSET`` o with query key q moves the
  read position and restarts the sign stream from a bank reloaded with the seed XOR the sign
  domain tweak XOR q: passes that replay a query set the same (o, q).
  The fill also accumulates the pool's second moment S = sum pool^2 (for the scaler's correction).
"""

import math

import numpy as np

from pezo.sim.bank import BankModel
from pezo.sim.gf2 import onthefly_taps
from pezo.sim.seeding import domain_tweak

__all__ = ["ReuseModel", "onthefly_taps", "group_map", "sign_rate", "sign_bits", "apply_signs",
           "KEY_BITS", "onthefly_lanes", "query_stride"]

KEY_BITS = 32       # query key of a pregen OFFSET


def group_map(u, a: int, b: int, width: int):
    """L(u) = u ^ rotl(u, a) ^ rotl(u, b) on w-bit two's complement integers (int64 arrays)."""
    mask = (1 << width) - 1
    v = np.asarray(u, dtype=np.int64) & mask

    def rotl(x, r):
        return ((x << r) | (x >> (width - r))) & mask
    v = v ^ rotl(v, a) ^ rotl(v, b)
    sign = 1 << (width - 1)
    return (v ^ sign) - sign


def onthefly_lanes(g, taps, width):
    """The m output lanes of ``onthefly`` reuse from the rotated bank numbers ``g`` (..., n):
    group 0 as they are, group q through :func:`group_map` with taps q."""
    return np.concatenate([g] + [group_map(g, a, b, width) for a, b in taps], axis=-1)


def query_stride(cfg, beats: int) -> int:
    """pregen: the pool words from one query's start to the next's, for queries of ``beats``
    beats: the smallest t >= beats whose remainder modulo the pool's N/m words is coprime to it.
    Successive queries then start at N/m different words before any start repeats (with
    t = beats, the "leftover numbers start the next perturbation" rule, a query as long as the
    pool would start every query at the same word)."""
    words = cfg.pool_words
    t = int(beats)
    while math.gcd(t % words, words) != 1:
        t += 1
    return t


def sign_rate(cfg) -> int:
    """r: pregen output beats per bank cycle of sign bits."""
    per = cfg.lanes * cfg.width // cfg.out_lanes
    return 1 << (per.bit_length() - 1)


def sign_bits(bank, cfg, first_beat: int, beats: int):
    """Sign bits (beats, m) of beats first_beat .. first_beat + beats - 1 of the sign stream, from
    ``bank`` = the sign stream's bank cycles floor(first_beat / r) .. (as returned by the bank)."""
    r, m, w = sign_rate(cfg), cfg.out_lanes, cfg.width
    b = first_beat + np.arange(beats)
    cyc = b // r - first_beat // r
    idx = (b % r)[:, None] * m + np.arange(m)[None, :]        # bit index in the cycle's n*w bits
    lane, bit = idx // w, idx % w
    vals = np.asarray(bank, dtype=np.int64)[cyc[:, None], lane]
    return (vals >> bit) & 1


def apply_signs(u, s):
    """u XOR -s: one's complement where the sign bit is set (a bijection on w-bit integers)."""
    return np.asarray(u, dtype=np.int64) ^ -np.asarray(s, dtype=np.int64)


class ReuseModel:
    """Bank + reuse, resumable. ``next(beats)`` returns (beats, m) int64 uniform numbers."""

    def __init__(self, cfg, seed, bank_factory=BankModel):
        """``bank_factory(cfg, seed)`` makes the bank of a pregen sign stream (a stand-in with
        the same numbers may be passed by a fast path)."""
        self.cfg = cfg
        self._bank_factory = bank_factory
        self.taps = onthefly_taps(cfg.width, cfg.out_lanes // cfg.lanes) \
            if cfg.reuse == "onthefly" else []
        self.load_seed(seed)

    def load_seed(self, seed):
        cfg = self.cfg
        self.seed = int(seed)
        self.bank = BankModel(cfg, seed, rotate=cfg.reuse == "onthefly")
        self.offset = 0
        self.key = None
        self.pool = self.sumsq = None
        if cfg.reuse == "pregen":
            self.pool = self.bank.next(cfg.pool_size // cfg.lanes).reshape(cfg.pool_words,
                                                                            cfg.out_lanes)
            self.sumsq = int(np.sum(self.pool * self.pool))
            self._sign_start()

    def _sign_start(self):
        self._sign_beat = 0
        self._sign_buf = np.zeros((0, self.cfg.lanes), dtype=np.int64)

    def set_offset(self, word: int, key: int = 0):
        """Move the pool read position to ``word`` and restart the sign stream for query ``key``."""
        words = self.cfg.pool_words
        if not 0 <= word < words:
            raise ValueError(f"Pool offset must be a word index in 0..{words - 1}, not {word!r}")
        if not 0 <= key < (1 << KEY_BITS):
            raise ValueError(f"Query key must be in 0..2^{KEY_BITS}-1, not {key!r}")
        self.offset = int(word)
        self.key = int(key)
        sw = self.cfg.seed_width
        self.bank = self._bank_factory(self.cfg, self.seed ^ domain_tweak("sign", sw) ^ self.key)
        self._sign_start()

    def signs(self, beats: int) -> np.ndarray:
        """The next ``beats`` rows of sign bits (pregen)."""
        r = sign_rate(self.cfg)
        first, last = self._sign_beat, self._sign_beat + beats      # beats [first, last)
        have = first // r                   # bank cycle of row 0 of the buffer
        need = -(-last // r) - have         # bank cycles covering the beats
        if len(self._sign_buf) < need:
            more = self.bank.next(need - len(self._sign_buf))
            self._sign_buf = np.concatenate([self._sign_buf, more])
        s = sign_bits(self._sign_buf, self.cfg, first, beats)
        self._sign_beat = last
        self._sign_buf = self._sign_buf[last // r - have:]
        return s

    def next(self, beats: int) -> np.ndarray:
        cfg = self.cfg
        if cfg.reuse == "none":
            return self.bank.next(beats)
        if cfg.reuse == "onthefly":
            return onthefly_lanes(self.bank.next(beats), self.taps, cfg.width)
        idx = (self.offset + np.arange(beats)) % cfg.pool_words
        self.offset = int((self.offset + beats) % cfg.pool_words)
        return apply_signs(self.pool[idx], self.signs(beats))
