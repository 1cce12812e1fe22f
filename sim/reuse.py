"""Golden model of the random-number reuse strategies (bit-exact with :mod:`pezo.hw.reuse`).

Output beat b (m numbers, lane j) in terms of the bank's numbers g[c, l] (cycle c, generator l):

* ``none``: out[b, j] = g[b, j] (m = n).
* ``onthefly``: out[b, j] = L_q(g[b, (j + b) mod n]) with q = j // n: every generator feeds m/n
  lanes, the order rotates by one position after every cycle ("the generator of the first
  position moves to the end"), and lane group q sees its number through a fixed invertible
  GF(2)-linear map: L_0(u) = u, L_q(u) = u ^ rotl(u, a_q) ^ rotl(u, b_q) on the w bits
  (:func:`onthefly_taps`). Every bit of L_q(u) is the XOR of three bits of u and no two groups
  share such a triple, so two lanes fed by one generator are uncorrelated (not copies, as they
  would be without the maps); the taps are chosen so that their fourth moments (which set the
  variance of a ZO gradient estimate) are those of independent lanes, exactly or nearly
  (:func:`fourth_moment_excess`). They stay bijections of one number: the lanes are not
  independent (docs/streams.md).
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

import functools
import itertools
import math

import numpy as np

from pezo.sim import scaler
from pezo.sim.bank import BankModel
from pezo.sim.gf2 import poly_gcd
from pezo.sim.seeding import domain_tweak

__all__ = ["ReuseModel", "onthefly_taps", "group_map", "sign_rate", "sign_bits", "apply_signs",
           "pregen_read", "KEY_BITS", "onthefly_lanes", "query_stride", "pool_mean_square",
           "lane_characters", "fourth_moment_excess", "TAPS_FULL_GROUPS", "TAPS_SHORTLIST"]

KEY_BITS = 32       # query key of a pregen OFFSET


# onthefly taps ------------------------------------------------------------------------------------
#
# A w-bit two's complement number u with bits b_k, written with the characters x_k = (-1)^b_k,
# is u + 1/2 = -1/2 sum_k c_k x_k (c_k = 2^k, c_{w-1} = -2^(w-1)); the output bit k of
# L(u) = u ^ rotl(u, a) ^ rotl(u, b) has the character x_k x_{k-a} x_{k-b} (indices mod w). For
# u uniform over all 2^w values E[prod of characters] is 1 when the bits cancel (the XOR of
# their masks is 0) and 0 otherwise, so every fourth moment of the centred lanes is an exact
# integer sum over masks: 16 E[A B C D] = sum over (k, l) of (A B)'s and (C D)'s mask pairs.

TAPS_FULL_GROUPS = 16      # groups scored on every fourth moment; later ones on two-lane moments
TAPS_SHORTLIST = 8         # candidates per group scored in full (the best on two-lane moments)


def lane_characters(width: int, tap=None) -> list:
    """(c_k, mask_k) for the w bits of a lane: group 0 (``tap`` None) takes u's bits, a group
    with taps (a, b) bit k = the XOR of u's bits k, k - a, k - b (mod w)."""
    w = width
    c = [1 << k for k in range(w - 1)] + [-(1 << (w - 1))]
    if tap is None:
        return [(c[k], 1 << k) for k in range(w)]
    a, b = tap
    return [(c[k], (1 << k) | (1 << ((k - a) % w)) | (1 << ((k - b) % w))) for k in range(w)]


def _pair_sums(A, B) -> dict:
    d = {}
    for ca, ma in A:
        for cb, mb in B:
            d[ma ^ mb] = d.get(ma ^ mb, 0) + ca * cb
    return d


def _moment16(PA, PB) -> int:
    """16 E[A B C D] from the pair sums of (A, B) and (C, D)."""
    if len(PA) > len(PB):
        PA, PB = PB, PA
    return sum(v * PB.get(k, 0) for k, v in PA.items())


def _excess16(combo, pairs, ref) -> int:
    i, j, k, l = combo
    return _moment16(pairs(i, j), pairs(k, l)) - (ref if i == j and k == l and i != k else 0)


def fourth_moment_excess(width: int, taps) -> dict:
    """Exact fourth moments of the onthefly lanes fed by one uniform w-bit number u (group 0 =
    u, group q = L_q(u)), centred (u + 1/2), minus those of independent lanes, in units of
    E[u'^2]^2: {(i, j, k, l) lane groups, i <= j <= k <= l, at least two distinct: excess}. For
    example (0, 0, 1, 1) is E[u^2 v^2] / E[u^2]^2 - 1 and (0, 0, 0, 1) is E[u^3 v] / E[u^2]^2."""
    lanes = [lane_characters(width, t) for t in [None] + list(taps)]
    m2x4 = sum(c * c for c, _ in lanes[0])              # 4 E[u'^2]
    cache = {}

    def pairs(i, j):
        if (i, j) not in cache:
            cache[(i, j)] = _pair_sums(lanes[i], lanes[j])
        return cache[(i, j)]
    return {combo: _excess16(combo, pairs, m2x4 ** 2) / m2x4 ** 2
            for combo in itertools.combinations_with_replacement(range(len(lanes)), 4)
            if len(set(combo)) > 1}


def _translate_class(a, b, w):
    tri = {0, (-a) % w, (-b) % w}
    return min(tuple(sorted((t + d) % w for t in tri)) for d in range(w))


@functools.lru_cache(maxsize=64)
def _taps(width: int, groups: int) -> tuple:
    w = width
    cands = [(a, b) for a in range(1, w) for b in range(a + 1, w)
             if poly_gcd(1 | (1 << a) | (1 << b), (1 << w) | 1) == 1]
    lanes = [lane_characters(w, None)]
    ref = sum(c * c for c, _ in lanes[0]) ** 2
    cache = {(0, 0): _pair_sums(lanes[0], lanes[0])}
    taps, used = [], set()
    while len(taps) < groups - 1:
        n = len(lanes)
        scored = []
        for t in cands:
            cls = _translate_class(*t, w)
            if cls in used:
                continue
            new = lane_characters(w, t)
            local = {(n, n): _pair_sums(new, new)}

            def pairs(i, j, local=local, new=new):
                if (i, j) not in cache and (i, j) not in local:
                    local[(i, j)] = _pair_sums(lanes[i] if i < n else new, new)
                return cache.get((i, j)) or local[(i, j)]
            two = max(abs(_excess16(c, pairs, ref)) for x in range(n)
                      for c in ((x, x, x, n), (x, x, n, n), (x, n, n, n)))
            scored.append((two, t, cls, pairs))
        if not scored:
            raise ValueError(f"onthefly reuse with {w}-bit numbers supports at most "
                             f"{len(taps) + 1} lane groups (out_lanes / lanes), not {groups}")
        scored.sort(key=lambda s: (s[0], s[1]))
        if n <= TAPS_FULL_GROUPS:
            full = []
            for two, t, cls, pairs in scored[:TAPS_SHORTLIST]:
                worst = max(abs(_excess16(c, pairs, ref))
                            for c in itertools.combinations_with_replacement(range(n + 1), 4)
                            if n in c and len(set(c)) > 1)
                full.append((worst, t, cls, pairs))
            scored = sorted(full, key=lambda s: (s[0], s[1]))
        _, t, cls, pairs = scored[0]
        taps.append(t)
        used.add(cls)
        lanes.append(lane_characters(w, t))
        for i in range(n + 1):
            cache[(i, n)] = pairs(i, n)
    return tuple(taps)


def onthefly_taps(width: int, groups: int) -> list:
    """(a_q, b_q) for lane groups q = 1 .. groups-1 (group 0 takes the number as it is).

    Candidates are the pairs 1 <= a < b < w whose map is invertible (gcd(1 + x^a + x^b, x^w + 1)
    = 1 over GF(2)) and whose bit triples {j, j-a, j-b} (mod w) are not a translate of an
    earlier group's (so no output bit of one group equals, or is a fixed XOR of the same bits
    as, an output bit of another: :func:`pezo.sim.gf2.onthefly_taps` counts the same
    candidates, so the supported group counts are unchanged). Group q takes, greedily, the
    candidate whose lanes' fourth moments with the earlier groups are closest to those of
    independent lanes: the smallest maximum |excess| (exact integers,
    :func:`fourth_moment_excess`) over the multisets of four lanes that include the new one,
    among the :data:`TAPS_SHORTLIST` candidates best on the two-lane multisets (x, x, x, q),
    (x, x, q, q), (x, q, q, q); ties to the smaller (a, b). Groups beyond
    :data:`TAPS_FULL_GROUPS` are chosen on the two-lane multisets only (the full score costs
    O(q^3)). w = 16: (7, 12), (8, 10), (7, 8), ... Raises ValueError when w has too few
    candidates."""
    return list(_taps(int(width), int(groups)))


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
    ``bank`` = the sign stream's bank cycles floor(first_beat / r) .. (as returned by the bank).
    ``bank`` may have leading dimensions (many sign streams at once, (..., cycles, n)): the
    result then has them too, (..., beats, m)."""
    r, m, w = sign_rate(cfg), cfg.out_lanes, cfg.width
    b = first_beat + np.arange(beats)
    cyc = b // r - first_beat // r
    idx = (b % r)[:, None] * m + np.arange(m)[None, :]        # bit index in the cycle's n*w bits
    lane, bit = idx // w, idx % w
    vals = np.asarray(bank, dtype=np.int64)[..., cyc[:, None], lane]
    return (vals >> bit) & 1


def apply_signs(u, s):
    """u XOR -s: one's complement where the sign bit is set (a bijection on w-bit integers)."""
    return np.asarray(u, dtype=np.int64) ^ -np.asarray(s, dtype=np.int64)


def pregen_read(pool, offset: int, s):
    """pregen: the uniform numbers of ``len(s)`` beats read from pool word ``offset`` on
    (cyclically) with sign bits ``s`` (beats, m): out[b] = pool[(o + b) mod N/m] XOR -s[b]."""
    idx = (int(offset) + np.arange(len(s))) % pool.shape[0]
    return apply_signs(pool[idx], s)


def pool_mean_square(cfg, pool, digits) -> float:
    """The mean square of the z values a pregen pool delivers with scale ``digits``, averaged
    over the sign bits (each number comes out as P or its one's complement with probability
    1/2): the variance of every perturbation read from this pool, exactly (integer sums)."""
    pool = np.asarray(pool, dtype=np.int64).reshape(-1)
    return 0.5 * (scaler.mean_square(pool, digits, cfg)
                  + scaler.mean_square(apply_signs(pool, 1), digits, cfg))


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

    def load_seed(self, seed, bank=None):
        """Load ``seed``; ``bank``: a bank of this seed at cycle 0 (built elsewhere, e.g.
        :meth:`~pezo.sim.bank.BankModel.restarted`), else one is built."""
        cfg = self.cfg
        self.seed = int(seed)
        self.bank = BankModel(cfg, seed, rotate=cfg.reuse == "onthefly") if bank is None \
            else bank
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
        out = pregen_read(self.pool, self.offset, self.signs(beats))
        self.offset = int((self.offset + beats) % cfg.pool_words)
        return out
