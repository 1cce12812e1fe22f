"""The fixed-point library against exact rational arithmetic."""

from fractions import Fraction

import numpy as np
import pytest

from pezo.fixed import (Q, from_fixed, rshift_round_even, rshift_round_stochastic, saturate,
                        to_fixed)


def exact_round_even(num, shift):
    return round(Fraction(num, 2 ** shift))   # Fraction rounding: ties to even


@pytest.mark.parametrize("shift", [1, 2, 3, 7, 16, 30])
def test_round_half_even_random_ties_and_extremes(shift):
    rng = np.random.default_rng(shift)
    x = np.concatenate([
        rng.integers(-(1 << 40), 1 << 40, 2000),
        np.arange(-8, 9) * (1 << (shift - 1)),                 # every tie around zero
        [-(1 << 61), (1 << 61) - 1, -(1 << 61) + 1],           # near the int64 ends we use
    ]).astype(np.int64)
    got = rshift_round_even(x.copy(), shift)
    assert [int(v) for v in got] == [exact_round_even(int(v), shift) for v in x]
    assert [rshift_round_even(int(v), shift) for v in x[:200]] == \
        [exact_round_even(int(v), shift) for v in x[:200]]


def test_round_left_shift_is_exact():
    assert rshift_round_even(np.array([3, -5]), -2).tolist() == [12, -20]
    assert rshift_round_even(-5, 0) == -5


def test_saturate_flags_and_clamps():
    bits = 8
    x = np.array([-129, -128, 0, 127, 128, 1000])
    got, flag = saturate(x, bits)
    assert got.tolist() == [-128, -128, 0, 127, 127, 127] and flag
    got, flag = saturate(np.array([-128, 127]), bits)
    assert not flag
    assert saturate(200, 8) == (127, True) and saturate(-3, 8) == (-3, False)


def test_stochastic_rounding_is_floor_plus_random_and_unbiased():
    shift = 4
    x = np.full(160_000, 37)                 # 37/16 = 2.3125
    r = np.tile(np.arange(16), 10_000)       # every random value equally often
    got = rshift_round_stochastic(x, shift, r)
    assert set(got.tolist()) == {2, 3}
    assert Fraction(int(got.sum()), len(got)) == Fraction(37, 16)
    for xi, ri in [(37, 10), (37, 11), (-37, 0), (-37, 5), (-37, 6)]:
        assert rshift_round_stochastic(xi, shift, ri) == (Fraction(xi + ri, 16).__floor__())


@pytest.mark.parametrize("q", [Q(4, 12), Q(1, 7), Q(8, 0), Q(2, 30)], ids=str)
def test_float_conversion_round_trip_and_ties(q):
    rng = np.random.default_rng(1)
    ints = rng.integers(q.min_int, q.max_int + 1, 1000)
    back, sat = to_fixed(from_fixed(ints, q), q)
    assert (back == ints).all() and not sat
    lsb = 2.0 ** -q.frac_bits
    ties = np.array([0.5, 1.5, 2.5, -0.5, -1.5]) * lsb
    got, _ = to_fixed(ties, q)
    assert got.tolist() == [0, 2, 2, 0, -2]
    got, sat = to_fixed([1e9, -1e9], q)
    assert got.tolist() == [q.max_int, q.min_int] and sat
    with pytest.raises(ValueError, match=r"^Cannot convert non-finite values to Q"):
        to_fixed([np.nan], q)
