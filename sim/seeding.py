"""Seeding: how a master seed becomes the LFSR start states of a bank (one definition, used by the
golden models, the hardware generator and the host's fast paths).

The rule (see docs/streams.md for the contract it serves):

1. **Mix.** The master seed s (``seed_width`` = 32 or 64 bits) XOR a *domain tweak* t starts an
   output-feedback chain of a fixed permutation E: y_0 = E(s ^ t), y_{j+1} = E(y_j). E is a
   32-round Feistel network on the two halves (x high, y low; n = seed_width / 2 bits each) with
   the round function of SIMON (Beaulieu et al., "The SIMON and SPECK families of lightweight
   block ciphers", 2013): round i maps (x, y) to (y ^ f(x) ^ i, x), with
   f(x) = (rotl(x, 1) & rotl(x, 8)) ^ rotl(x, 2) and the round index i as the round constant
   (where SIMON has key-schedule words: a seed mixer needs a fixed bijection, not a cipher, and
   the index breaks f's rotational symmetry for the price of a few LUT inputs). A Feistel network
   is a bijection whatever f, so no two seeds share y_0; 32 rounds make counter seeds (s, s+1,
   s ^ 2^i) give unrelated blocks (measured: each output bit flips with probability 1/2).
2. **Concatenate.** With G generators of k state bits, J = ceil(G*k / seed_width) blocks are made
   and V = sum_j y_j << ((J-1-j) * seed_width), truncated to G*k bits (the hardware shifts each
   block into the chain of all lane states from the bottom, so the first block's top bits fall
   off the end).
3. **Split.** Generator g starts from bits [g*k, (g+1)*k) of V (state bit i = sequence bit x_i);
   a generator whose slice is all zero starts from 1 instead (an LFSR must not be all-zero).

Domain tweaks separate the independent streams one seed drives: the perturbation bank (t = 0),
the stochastic-rounding bank, the ``pregen`` sign stream (for which the query key is XORed in
as well) and the on-chip trainer's minibatch sampler. Everything is vectorised over many seeds at once (NumPy uint64).
"""

import numpy as np

__all__ = ["ROUNDS", "round_constants", "mix", "mix_blocks", "bank_states", "lane_states",
           "domain_tweak", "DOMAINS", "load_cycles", "block_count", "half_bits"]

ROUNDS = 32         # Feistel rounds of the seed mixer (one per cycle in hardware)

# Domain tweaks (XORed into the seed before mixing; each used as its low seed_width bits): fixed
# constants. "rounding" and "sign" are the first two outputs of splitmix64 started from state 1
# (0x910a2dec89025cc1, 0xbeeb8da1658eec67); "sampler" (the on-chip trainer's minibatch sampler,
# pezo.sim.ontrain.SAMPLER_TWEAK) is pezo.sim.lfsr.splitmix64(3), the output for counter 3 from
# state 0 (0xf88bb8a8724c81ec). tests/test_ontrain_sampler_hw.py checks all three.
DOMAINS = {"bank": 0, "rounding": 0x910A2DEC89025CC1, "sign": 0xBEEB8DA1658EEC67,
           "sampler": 0xF88BB8A8724C81EC}

def domain_tweak(domain: str, seed_width: int) -> int:
    if domain not in DOMAINS:
        raise ValueError(f"Seed domain must be one of {', '.join(DOMAINS)}, not {domain!r}")
    return DOMAINS[domain] & ((1 << seed_width) - 1)


def _check_width(seed_width):
    if seed_width not in (32, 64):
        raise ValueError(f"Seed width must be 32 or 64, not {seed_width!r}")


def half_bits(seed_width: int) -> int:
    _check_width(seed_width)
    return seed_width // 2


def round_constants(seed_width: int) -> tuple:
    """The round constants: round i XORs i into the new x word."""
    return tuple(range(ROUNDS))


def round_f(x, n):
    """SIMON's f(x) = (rotl(x, 1) & rotl(x, 8)) ^ rotl(x, 2) on n-bit words (uint64 arrays)."""
    sh = [np.uint64(r) for r in (1, 8, 2, n - 1, n - 8, n - 2)]
    mask = np.uint64((1 << n) - 1)

    def rotl(v, a, b):
        return ((v << a) | (v >> b)) & mask
    return (rotl(x, sh[0], sh[3]) & rotl(x, sh[1], sh[4])) ^ rotl(x, sh[2], sh[5])


def simon_round(x, y, rk, n):
    """One round on word arrays (uint64): (x, y) -> (y ^ f(x) ^ rk, x)."""
    return y ^ round_f(x, n) ^ np.uint64(rk), x


def _mix_int(block: int, n: int) -> int:
    """The permutation on one block (Python ints): the plain reference of :func:`mix`."""
    mask = (1 << n) - 1
    x, y = block >> n, block & mask
    for i in range(ROUNDS):
        f = ((((x << 1) | (x >> (n - 1))) & ((x << 8) | (x >> (n - 8))))
             ^ ((x << 2) | (x >> (n - 2)))) & mask
        x, y = y ^ f ^ i, x
    return (x << n) | y


_F16 = {}


def _f_table16():
    """f of every 16-bit word (32-bit seeds: n = 16), computed by :func:`round_f` once: a
    round is then one table look-up and two XORs, as an array (uint16) and as a list."""
    if not _F16:
        f = round_f(np.arange(1 << 16, dtype=np.uint64), 16).astype(np.uint16)
        _F16["array"], _F16["list"] = f, f.tolist()
    return _F16["array"], _F16["list"]


def mix(blocks, seed_width: int) -> np.ndarray:
    """E(block) for an array of ``seed_width``-bit blocks (high word x, low word y).

    32-bit seeds (n = 16) go through f's table (:func:`_f_table16`): Python ints for a few
    blocks, NumPy look-ups for many; 64-bit seeds through :func:`simon_round` (NumPy) or
    :func:`_mix_int` (a few blocks)."""
    n = half_bits(seed_width)
    b = np.asarray(blocks, dtype=np.uint64)
    if n == 16:
        table, flat = _f_table16()
        if b.size <= 32:
            out = []
            for v in b.reshape(-1).tolist():
                x, y = v >> 16, v & 0xFFFF
                for i in range(ROUNDS):
                    x, y = y ^ flat[x] ^ i, x
                out.append((x << 16) | y)
            return np.array(out, dtype=np.uint64).reshape(b.shape)
        x, y = (b >> np.uint64(16)).astype(np.uint16), b.astype(np.uint16)
        for i in range(ROUNDS):
            t = table[x]
            t ^= y
            t ^= np.uint16(i)
            x, y = t, x
        return (x.astype(np.uint64) << np.uint64(16)) | y
    if b.size <= 8:
        return np.array([_mix_int(int(v), n) for v in b.reshape(-1)],
                        dtype=np.uint64).reshape(b.shape)
    mask = np.uint64((1 << n) - 1)
    x, y = (b >> np.uint64(n)) & mask, b & mask
    for rk in round_constants(seed_width):
        x, y = simon_round(x, y, rk, n)
    return (x << np.uint64(n)) | y


def block_count(k: int, gens: int, seed_width: int) -> int:
    """J, the mixer blocks a bank of ``gens`` generators of ``k`` bits needs."""
    return -(-gens * k // seed_width)


def load_cycles(k: int, gens: int, seed_width: int) -> int:
    """Cycles the hardware spends mixing after a seed load (one round per cycle), plus one for
    the all-zero check: the bank's output is valid again after ``load_cycles + 1``."""
    return block_count(k, gens, seed_width) * ROUNDS + 1


def mix_blocks(seeds, seed_width: int, count: int, tweak: int = 0) -> np.ndarray:
    """y_0 .. y_{count-1} for every seed: (len(seeds), count) uint64 (OFB chain, IV s ^ tweak)."""
    _check_width(seed_width)
    s = np.asarray(seeds, dtype=np.uint64).reshape(-1)
    if seed_width < 64 and len(s) and int(s.max()) >> seed_width:
        raise ValueError(f"Seed must be in 0..2^{seed_width}-1, not {int(s.max())!r}")
    out = np.empty((len(s), count), dtype=np.uint64)
    y = s ^ np.uint64(tweak & ((1 << seed_width) - 1))
    for j in range(count):
        y = mix(y, seed_width)
        out[:, j] = y
    return out


def _check_seed(seed, seed_width):
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"Seed must be an integer, not {seed!r}")
    if not 0 <= int(seed) < (1 << seed_width):
        raise ValueError(f"Seed must be in 0..2^{seed_width}-1, not {seed!r}")
    return int(seed)


def bank_states(seeds, k: int, gens: int, seed_width: int, tweak: int = 0):
    """Start states of ``gens`` generators of ``k`` bits for each seed.

    Returns (len(seeds), gens) uint64 for k <= 64, else a list (per seed) of lists of Python ints.
    """
    seeds = [_check_seed(s, seed_width) for s in seeds] if not isinstance(seeds, np.ndarray) \
        else seeds
    J = block_count(k, gens, seed_width)
    blocks = mix_blocks(seeds, seed_width, J, tweak)
    if k > 64:
        out = []
        for row in blocks:
            v = 0
            for j, yj in enumerate(row):
                v |= int(yj) << ((J - 1 - j) * seed_width)
            sts = [(v >> (g * k)) & ((1 << k) - 1) for g in range(gens)]
            out.append([st or 1 for st in sts])
        return out
    sw = seed_width
    states = np.zeros((blocks.shape[0], gens), dtype=np.uint64)
    for g in range(gens):
        lo, hi = g * k, (g + 1) * k
        for j in range(J):
            blo = (J - 1 - j) * sw            # block j occupies bits [blo, blo + sw) of V
            a, b = max(lo, blo), min(hi, blo + sw)
            if a >= b:
                continue
            part = (blocks[:, j] >> np.uint64(a - blo)) & np.uint64((1 << (b - a)) - 1)
            states[:, g] |= part << np.uint64(a - lo)
    states[states == 0] = 1
    return states


def lane_states(seed: int, k: int, gens: int, seed_width: int, tweak: int = 0) -> list:
    """Start states (Python ints) of the ``gens`` generators for one master seed."""
    seed = _check_seed(seed, seed_width)
    st = bank_states(np.array([seed], dtype=np.uint64), k, gens, seed_width, tweak)
    return [int(x) for x in st[0]]
