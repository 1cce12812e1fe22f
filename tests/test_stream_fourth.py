"""onthefly lanes fed by one generator: their fourth moments, computed exactly by enumerating
all 2^16 numbers u (integer sums, the map written bit by bit from its definition), are those of
independent lanes for the taps the generator uses; the first taps were not (docs/streams.md)."""

import numpy as np
import pytest

import pezo.sim.reuse as R


def _xor3(u, a, b, w):
    """u ^ rotl(u, a) ^ rotl(u, b) on w bits, bit by bit from the definition (unsigned)."""
    bits = [(u >> i) & 1 for i in range(w)]
    out = [bits[j] ^ bits[(j - a) % w] ^ bits[(j - b) % w] for j in range(w)]
    return sum(bit << j for j, bit in enumerate(out))


def _lanes(taps, w=16):
    """Centred lanes 2u + 1 (u as w-bit two's complement) of group 0 and the groups' maps, as
    Python-int-safe int64 arrays (|2u + 1| < 2^16)."""
    us = np.arange(1 << w)
    signed = lambda v: np.where(v >= 1 << (w - 1), v - (1 << w), v)      # noqa: E731
    lanes = [signed(us)]
    for a, b in taps:
        lanes.append(signed(np.array([_xor3(int(u), a, b, w) for u in us])))
    return [2 * x.astype(object) + 1 for x in lanes]


def _pair_excess(taps):
    """{(p, q): (E[x^2 y^2] / m2^2 - 1, E[x^3 y] / m2^2)} for every ordered pair of lanes,
    exact rationals rounded to float."""
    lanes = _lanes(taps)
    n = len(lanes[0])
    m2 = sum(lanes[0] * lanes[0]) / n
    out = {}
    for p, x in enumerate(lanes):
        for q, y in enumerate(lanes):
            if p != q:
                out[(p, q)] = (float(sum(x * x * y * y) / n / m2 ** 2 - 1),
                               float(sum(x ** 3 * y) / n / m2 ** 2))
    return out


def test_first_taps_known_answer():
    """Taps (1, 2): E[z^2 z'^2] = 1.15 and E[z^3 z'] = 0.45 (the review's 1.15 for lanes j and
    j+n), and the character sums of :func:`pezo.sim.reuse.fourth_moment_excess` agree."""
    e22, e31 = _pair_excess([(1, 2)])[(0, 1)]
    assert e22 == pytest.approx(0.15, abs=1e-6) and e31 == pytest.approx(0.45, abs=1e-6)
    ex = R.fourth_moment_excess(16, [(1, 2)])
    assert ex[(0, 0, 1, 1)] == pytest.approx(e22, abs=1e-12)
    assert ex[(0, 0, 0, 1)] == pytest.approx(e31, abs=1e-12)


@pytest.mark.parametrize("groups", [2, 4])
def test_onthefly_taps_have_independent_fourth_moments(groups):
    """Every pair of the lanes one generator feeds (n -> 2n and n -> 4n): E[x^2 y^2] within
    1e-4 of E[x^2] E[y^2] and E[x^3 y] within 1e-3 of 0 (independent lanes: exactly 1 and 0).
    For two groups the square moment is exact."""
    taps = R.onthefly_taps(16, groups)
    ex = _pair_excess(taps)
    assert max(abs(e22) for e22, _ in ex.values()) < 1e-4, ex
    assert max(abs(e31) for _, e31 in ex.values()) < 1e-3, ex
    if groups == 2:
        assert ex[(0, 1)][0] == 0.0


def test_golden_group_map_is_the_bitwise_definition():
    rng = np.random.default_rng(1)
    u = rng.integers(-(1 << 15), 1 << 15, 500)
    for a, b in R.onthefly_taps(16, 4):
        v = R.group_map(u, a, b, 16) & 0xFFFF
        assert list(v) == [_xor3(int(x) & 0xFFFF, a, b, 16) for x in u]
