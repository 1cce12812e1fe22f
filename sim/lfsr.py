"""LFSR sequences: the primitive polynomial table, seeding rule, and the vectorised bit generator.

Definitions (the hardware in :mod:`pezo.hw.lfsr` is generated from the same ones):

* For k state bits the table gives p(x) = x^k + sum_{e in E} x^e (E includes 0). The LFSR emits
  the bit sequence x_0, x_1, ... with x_{i+k} = XOR_{e in E} x_{i+e}. Because p is primitive the
  sequence has period exactly 2^k - 1 for every nonzero start.
* The state after t steps is the window (x_t, ..., x_{t+k-1}); state bit i is x_{t+i}. Seeding sets
  x_0..x_{k-1} directly.
* Every later bit x_m is a fixed XOR of state bits; :func:`bit_masks` gives those masks. The
  ``leap`` next-state function is the w-th power of the companion matrix, read off the masks of
  x_w..x_{w+k-1}.

Seeding (how a master seed becomes start states) is :mod:`pezo.sim.seeding`.
"""

import numpy as np


__all__ = ["POLYNOMIALS", "polynomial", "bit_masks", "sequence_bits", "sequence_words",
           "continue_words", "extract", "splitmix64"]

# k -> exponents E of p(x) = x^k + sum x^e, with the fewest terms (a trinomial where a primitive one
# exists, else a pentanomial) and the smallest middle exponents, so a leap of w <= k - max(E) needs
# only one XOR level. Each entry is checked primitive by tests/test_lfsr.py (is_primitive, and the
# exhaustive period for k <= 20). Found by a search with pezo.sim.gf2.is_primitive.
POLYNOMIALS = {
    3: (1, 0),
    4: (1, 0),
    5: (2, 0),
    6: (1, 0),
    7: (1, 0),
    8: (4, 3, 2, 0),
    9: (4, 0),
    10: (3, 0),
    11: (2, 0),
    12: (6, 4, 1, 0),
    13: (4, 3, 1, 0),
    14: (5, 3, 1, 0),
    15: (1, 0),
    16: (5, 3, 2, 0),
    17: (3, 0),
    18: (7, 0),
    19: (5, 2, 1, 0),
    20: (3, 0),
    21: (2, 0),
    22: (1, 0),
    23: (5, 0),
    24: (4, 3, 1, 0),
    25: (3, 0),
    26: (6, 2, 1, 0),
    27: (5, 2, 1, 0),
    28: (3, 0),
    29: (2, 0),
    30: (6, 4, 1, 0),
    31: (3, 0),
    32: (7, 6, 2, 0),
    33: (13, 0),
    34: (8, 4, 3, 0),
    35: (2, 0),
    36: (11, 0),
    37: (6, 4, 1, 0),
    38: (6, 5, 1, 0),
    39: (4, 0),
    40: (5, 4, 3, 0),
    41: (3, 0),
    42: (7, 4, 3, 0),
    43: (6, 4, 3, 0),
    44: (6, 5, 2, 0),
    45: (4, 3, 1, 0),
    46: (8, 7, 6, 0),
    47: (5, 0),
    48: (9, 7, 4, 0),
    49: (9, 0),
    50: (4, 3, 2, 0),
    51: (6, 3, 1, 0),
    52: (3, 0),
    53: (6, 2, 1, 0),
    54: (8, 6, 3, 0),
    55: (24, 0),
    56: (7, 4, 2, 0),
    57: (7, 0),
    58: (19, 0),
    59: (7, 4, 2, 0),
    60: (1, 0),
    61: (5, 2, 1, 0),
    62: (6, 5, 3, 0),
    63: (1, 0),
    64: (4, 3, 1, 0),
    # Wide trinomials x^k + x^a + 1 with k - a >= 64, for a shared bank of up to 64 bits per cycle:
    # every new state bit is then the XOR of two current ones (one LUT4 with the seed-load mux).
    71: (6, 0),
    79: (9, 0),
    81: (4, 0),
    93: (2, 0),
    95: (11, 0),
    97: (6, 0),
    127: (1, 0),
}

_MASK64 = (1 << 64) - 1
WORD_BLOCK = 4096       # largest block of words one recurrence step writes (_extend's bmax)


def splitmix64(x: int) -> int:
    """The splitmix64 output for counter ``x`` (Steele, Lea, Flood 2014)."""
    z = (x * 0x9E3779B97F4A7C15 + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def polynomial(k: int) -> int:
    """The table polynomial for k state bits as an int bit mask (bit e = coefficient of x^e)."""
    if k not in POLYNOMIALS:
        raise ValueError(f"LFSR state bits must be in 3..64 or one of "
                         f"{', '.join(str(k) for k in POLYNOMIALS if k > 64)}, not {k!r}")
    p = 1 << k
    for e in POLYNOMIALS[k]:
        p |= 1 << e
    return p


def bit_masks(k: int, count: int) -> list:
    """Masks of x_0..x_{count-1} over the state (x_0..x_{k-1}): bit i of mask m set iff x_m
    depends on state bit i."""
    exps = POLYNOMIALS[k]
    masks = [1 << i for i in range(min(k, count))]
    for m in range(k, count):
        r = 0
        for e in exps:
            r ^= masks[m - k + e]
        masks.append(r)
    return masks


def _extend(arr, filled, target, lags, k, bmax):
    """Fill arr[:, filled:target] (units: bits or 64-bit words) from the recurrence with lags
    multiplied by the block size b; b doubles while the history allows, up to bmax."""
    b = 1
    while filled < target:
        if b < bmax and filled >= 2 * b * k:
            b *= 2
            continue
        if filled < b * k:
            b //= 2
            continue
        dst = arr[:, filled:filled + b]
        s0, s1 = filled - b * lags[0], filled - b * lags[1]
        np.bitwise_xor(arr[:, s0:s0 + b], arr[:, s1:s1 + b], out=dst)
        for lag in lags[2:]:
            src = filled - b * lag
            dst ^= arr[:, src:src + b]
        filled += b
    return arr


def sequence_words(k: int, states, nbits: int) -> np.ndarray:
    """Bits x_0..x_{nbits-1} of each start state packed little-endian into uint64 words (bit j of
    word i is x_{64 i + j}); shape (len(states), ceil(nbits / 64)) (+ one spare word).

    Vectorised with the Frobenius identity p(x)^(2^s) = p(x^(2^s)): the sequence also obeys
    x_m = XOR_e x_{m - 2^s (k - e)}, so a block of 2^s bits is a few array XORs. Blocks of 64-bit
    words are used once 2^s >= 64, so bits never need handling one at a time.
    """
    states = [int(s) for s in states]
    lanes = len(states)
    nwords = -(-max(int(nbits), 1) // 64) + 1
    # The first 2k words: the XOR of the unit states' (linearity), then continue on words.
    st = np.array([[(s >> i) & 1 for i in range(k)] for s in states], dtype=np.uint64)
    words = np.empty((lanes, max(nwords, 2 * k) + WORD_BLOCK), dtype=np.uint64)
    words[:, :2 * k] = np.bitwise_xor.reduce(_boot_basis(k)[None] * st.reshape(lanes, k, 1),
                                             axis=1)
    return continue_words(k, words[:, :2 * k], nwords, out=words)[:, :nwords]


_BOOT = {}


def _boot_basis(k: int) -> np.ndarray:
    """Words 0..2k-1 of the packed sequences of the k unit start states (state bit i set),
    (k, 2k) uint64, by the recurrence on bits in blocks of up to 32 (the Frobenius identity),
    once per k: every state's first 2k words are the XOR of its set bits' rows."""
    basis = _BOOT.get(k)
    if basis is None:
        boot = 2 * k * 64
        bits = np.zeros((k, boot + 64), dtype=np.uint8)
        bits[np.arange(k), np.arange(k)] = 1
        _extend(bits, k, boot, [k - e for e in POLYNOMIALS[k]], k, 32)
        basis = _BOOT[k] = np.packbits(bits[:, :boot], axis=1, bitorder="little").view("<u8")
    return basis


def continue_words(k: int, history: np.ndarray, nwords: int, out=None) -> np.ndarray:
    """The packed sequences of :func:`sequence_words` continued from ``history`` (lanes, h), h
    consecutive words of each sequence (h >= k): returns (lanes, max(nwords, h)) whose first h
    words are ``history`` and the rest follow by the same recurrence, so no start state is
    extracted and no bit-level bootstrap is repeated. The block of words per step doubles while
    the history allows (2 * k * b words for a block of b), up to :data:`WORD_BLOCK`. ``out``, a
    uint64 buffer of at least that many words plus WORD_BLOCK per lane, is used when given
    (``history`` may be its first h words, in place)."""
    lanes, h = history.shape
    if h < k:
        raise ValueError(f"History must hold at least k = {k} words, not {h}")
    n = max(int(nwords), h)
    if out is None or out.shape[0] != lanes or out.shape[1] < n + WORD_BLOCK:
        out = np.empty((lanes, n + WORD_BLOCK), dtype=np.uint64)
    if not (history.ctypes.data == out.ctypes.data and history.strides == out.strides):
        out[:, :h] = history        # (unless the history is already in place)
    _extend(out, h, n, [k - e for e in POLYNOMIALS[k]], k, WORD_BLOCK)
    return out[:, :n]


def sequence_bits(k: int, states, nbits: int) -> np.ndarray:
    """Bits x_0..x_{nbits-1} for each start state: uint8 array of shape (len(states), nbits)."""
    words = sequence_words(k, states, nbits)
    bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")
    return bits[:, :int(nbits)]


def extract(words: np.ndarray, positions: np.ndarray, width: int) -> np.ndarray:
    """The ``width``-bit fields (LSB = lowest sequence index) starting at bit ``positions`` of the
    packed sequence ``words`` (1-D), as two's complement int64."""
    idx = positions >> 6
    sh = (positions & 63).astype(np.uint64)
    lo = words[idx] >> sh
    hi = (words[idx + 1] << np.uint64(1)) << (np.uint64(63) - sh)
    v = (lo | hi).astype(np.int64) if width == 64 else ((lo | hi) & np.uint64((1 << width) - 1))
    if width == 64:
        return v
    v = v.astype(np.int64)
    sign = np.int64(1 << (width - 1))
    return (v ^ sign) - sign
