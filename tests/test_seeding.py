"""The seeding rule (pezo.sim.seeding): an independent scalar model of the mixer and the rule
written from their definitions, the mixer's inverse, and the properties the stream contract needs
of it (no collisions, avalanche between counter seeds, unrelated domains)."""

import random

import numpy as np
import pytest

from pezo.sim.seeding import bank_states, block_count, domain_tweak, lane_states, mix, mix_blocks


def _spec_mix(block, sw):
    """The mixer from its definition, one block, Python ints: 32 rounds of
    (x, y) -> (y ^ f(x) ^ i, x) with SIMON's f on n = sw/2-bit halves."""
    n = sw // 2
    mask = (1 << n) - 1

    def rotl(v, r):
        return ((v << r) | (v >> (n - r))) & mask
    x, y = block >> n, block & mask
    for i in range(32):
        x, y = y ^ (rotl(x, 1) & rotl(x, 8)) ^ rotl(x, 2) ^ i, x
    return (x << n) | y


def _spec_unmix(block, sw):
    """The inverse permutation (rounds undone in reverse): a bijection check."""
    n = sw // 2
    mask = (1 << n) - 1

    def rotl(v, r):
        return ((v << r) | (v >> (n - r))) & mask
    x, y = block >> n, block & mask
    for i in reversed(range(32)):
        x, y = y, x ^ (rotl(y, 1) & rotl(y, 8)) ^ rotl(y, 2) ^ i
    return (x << n) | y


@pytest.mark.parametrize("sw", [32, 64])
def test_mixer_is_the_defined_permutation(sw):
    rng = random.Random(sw)
    blocks = [0, 1, (1 << sw) - 1] + [rng.randrange(1 << sw) for _ in range(200)]
    got = mix(np.array(blocks, dtype=np.uint64), sw)
    for b, g in zip(blocks, got):
        assert int(g) == _spec_mix(b, sw)
        assert _spec_unmix(int(g), sw) == b
    for b in blocks[:20]:       # the one-block path (Python ints) too
        assert int(mix(np.array([b], dtype=np.uint64), sw)[0]) == _spec_mix(b, sw)


def _spec_states(seed, k, gens, sw, tweak):
    """The rule of docs/streams.md, one seed, Python ints (OFB chain, concatenation, split)."""
    J = -(-gens * k // sw)
    y, v = seed ^ tweak, 0
    for j in range(J):
        y = _spec_mix(y, sw)
        v |= y << ((J - 1 - j) * sw)
    v &= (1 << (gens * k)) - 1
    return [((v >> (g * k)) & ((1 << k) - 1)) or 1 for g in range(gens)]


@pytest.mark.parametrize("k,gens,sw", [(32, 4, 32), (24, 3, 32), (40, 2, 64), (71, 1, 32),
                                       (127, 1, 64), (5, 7, 32), (64, 8, 64)])
def test_bank_states_follow_the_rule(k, gens, sw):
    rng = random.Random(k * gens + sw)
    seeds = [0, 1, (1 << sw) - 1] + [rng.randrange(1 << sw) for _ in range(20)]
    tweak = domain_tweak("rounding", sw)
    got = bank_states(seeds, k, gens, sw, tweak)
    for s, row in zip(seeds, got):
        assert [int(x) for x in row] == _spec_states(s, k, gens, sw, tweak)


def test_all_zero_slice_becomes_one():
    """k = 3, one generator: one seed in eight has an all-zero slice; its state is 1."""
    seeds = np.arange(64, dtype=np.uint64)
    raw = mix_blocks(seeds, 32, 1)[:, 0] & np.uint64(7)
    st = bank_states(seeds, 3, 1, 32)[:, 0]
    assert (raw == 0).any()
    assert (st[raw == 0] == 1).all() and (st[raw != 0] == raw[raw != 0]).all()


@pytest.mark.parametrize("sw", [32, 64])
def test_no_collisions_among_structured_seeds(sw):
    """Counter seeds, single-bit flips and the XOR pairs that collided under the old fold rule
    (s ^ 0x80000001) all give distinct first blocks (SIMON is a bijection)."""
    base = list(range(4096)) + [1 << i for i in range(sw)] + [(1 << i) | 1 for i in range(sw)]
    base += [s ^ 0x80000001 for s in range(256)]
    seeds = sorted(set(base))
    first = mix_blocks(np.array(seeds, dtype=np.uint64), sw, 1)[:, 0]
    assert len(set(first.tolist())) == len(seeds)


def test_counter_seeds_avalanche():
    """Adjacent seeds: each bit of the first block flips with probability 1/2 (within 5 sigma
    over 4096 pairs), for the +1 and the ^2^i neighbours alike."""
    s = np.arange(4096, dtype=np.uint64) * np.uint64(2654435761) & np.uint64(0xFFFFFFFF)
    a = mix_blocks(s, 32, 1)[:, 0]
    for nb in (s + np.uint64(1)) & np.uint64(0xFFFFFFFF), s ^ np.uint64(1), s ^ np.uint64(1 << 31):
        d = a ^ mix_blocks(nb, 32, 1)[:, 0]
        flips = np.array([((d >> np.uint64(i)) & np.uint64(1)).mean() for i in range(32)])
        assert np.abs(flips - 0.5).max() < 5 * 0.5 / np.sqrt(len(s))


def test_domains_give_unrelated_states():
    a = lane_states(12345, 32, 4, 32)
    b = lane_states(12345, 32, 4, 32, domain_tweak("rounding", 32))
    c = lane_states(12345, 32, 4, 32, domain_tweak("sign", 32))
    assert len(set(a) | set(b) | set(c)) == 12


def test_block_count():
    assert block_count(32, 4, 32) == 4 and block_count(71, 1, 32) == 3
    assert block_count(40, 2, 64) == 2


@pytest.mark.parametrize("seed,msg", [
    (-1, r"^Seed must be in 0\.\.2\^32-1, not -1$"),
    (1 << 32, r"^Seed must be in 0\.\.2\^32-1, not 4294967296$"),
])
def test_bad_seed_value(seed, msg):
    with pytest.raises(ValueError, match=msg):
        lane_states(seed, 16, 1, 32)


def test_bad_seed_type():
    with pytest.raises(TypeError, match=r"^Seed must be an integer, not '1'$"):
        lane_states("1", 16, 1, 32)


def test_bad_domain():
    with pytest.raises(ValueError, match=r"^Seed domain must be one of bank, rounding, sign, "
                                         r"sampler, not 'x'$"):
        domain_tweak("x", 32)
