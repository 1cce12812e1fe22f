"""The primitive polynomial table, the seeding rule and the vectorised LFSR bit generator."""

import random

import numpy as np
import pytest

from pezo.sim.gf2 import is_primitive, prime_factors
from pezo.sim.lfsr import POLYNOMIALS, bit_masks, polynomial, sequence_bits, sequence_words


def naive_bits(k, state, n):
    """One bit at a time, straight from the recurrence x_{i+k} = XOR_e x_{i+e}."""
    x = [(state >> i) & 1 for i in range(k)]
    while len(x) < n:
        i = len(x) - k
        b = 0
        for e in POLYNOMIALS[k]:
            b ^= x[i + e]
        x.append(b)
    return x[:n]


def test_table_covers_3_to_64():
    assert set(range(3, 65)) <= set(POLYNOMIALS)


@pytest.mark.parametrize("k", sorted(POLYNOMIALS))
def test_table_polynomial_is_primitive(k):
    assert is_primitive(polynomial(k))


def test_primitivity_known_answers():
    assert is_primitive(0b10011)            # x^4 + x + 1
    assert not is_primitive(0b10101)        # x^4 + x^2 + 1 = (x^2 + x + 1)^2
    assert not is_primitive(0b11111)        # irreducible, order 5 only
    assert prime_factors((1 << 64) - 1) == (3, 5, 17, 257, 641, 65537, 6700417)


@pytest.mark.parametrize("k", range(3, 21))
def test_period_is_exhaustively_2k_minus_1(k):
    """All 2^k - 1 nonzero states are visited once before the sequence repeats."""
    period = (1 << k) - 1
    bits = sequence_bits(k, [1], period + k)[0].astype(np.int64)
    states = np.zeros(period + 1, dtype=np.int64)
    for j in range(k):
        states |= bits[j:j + period + 1] << j
    assert states[period] == states[0]
    assert len(np.unique(states[:period])) == period
    assert (states[:period] != 0).all()


@pytest.mark.parametrize("k", [3, 5, 8, 13, 16, 24, 31, 32, 48, 63, 64])
def test_vectorised_generator_matches_recurrence(k):
    rng = random.Random(k)
    starts = [rng.randrange(1, 1 << k) for _ in range(3)]
    n = 3000 + k * 70
    got = sequence_bits(k, starts, n)
    for lane, s in enumerate(starts):
        assert got[lane].tolist() == naive_bits(k, s, n)


def test_long_sequence_matches_recurrence_across_blocks():
    """Past the word-block bootstrap (block doubling up to 4096 words)."""
    k, n = 7, 600_000
    got = sequence_words(k, [0b1011001], n)
    bits = np.unpackbits(got.view(np.uint8), bitorder="little")[:n].astype(np.uint8)
    x = np.array(naive_bits(k, 0b1011001, 1 << k), dtype=np.uint8)  # one full period + 1
    period = (1 << k) - 1
    assert (bits == np.resize(x[:period], n)).all()


@pytest.mark.parametrize("k", [4, 17, 32, 64])
def test_bit_masks_give_sequence_bits(k):
    rng = random.Random(7)
    state = rng.randrange(1, 1 << k)
    x = naive_bits(k, state, 4 * k)
    for m, mask in enumerate(bit_masks(k, 4 * k)):
        assert bin(mask & state).count("1") % 2 == x[m]


def test_polynomial_out_of_table():
    with pytest.raises(ValueError, match=r"^LFSR state bits must be in 3\.\.64 or one of 71, 79, 81, 93, 95, 97, 127, "
                                         r"not 65$"):
        polynomial(65)
