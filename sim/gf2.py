"""Polynomials over GF(2), held as Python ints (bit i = coefficient of x^i), and the primitivity
test that checks the LFSR table: p of degree k is primitive iff x^(2^k-1) = 1 mod p and
x^((2^k-1)/q) != 1 mod p for every prime q dividing 2^k-1 (then the LFSR period is 2^k-1)."""

import math
import random
from functools import lru_cache

__all__ = ["polymulmod", "polypowmod", "is_primitive", "prime_factors", "poly_gcd",
           "onthefly_taps"]


def polymulmod(a: int, b: int, p: int) -> int:
    """a*b mod p over GF(2)."""
    k = p.bit_length() - 1
    r = 0
    while b:
        if b & 1:
            r ^= a
        b >>= 1
        a <<= 1
        if (a >> k) & 1:
            a ^= p
    return r


def polypowmod(a: int, e: int, p: int) -> int:
    r = 1
    while e:
        if e & 1:
            r = polymulmod(r, a, p)
        a = polymulmod(a, a, p)
        e >>= 1
    return r


def _is_probable_prime(n: int) -> bool:
    if n < 2:
        return False
    for sp in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % sp == 0:
            return n == sp
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    # Deterministic for n < 3.3e24 with these bases.
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41):
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _pollard_rho(n: int) -> int:
    if n % 2 == 0:
        return 2
    rng = random.Random(n)
    while True:
        c = rng.randrange(1, n)
        x = y = rng.randrange(2, n)
        d = 1
        while d == 1:
            x = (x * x + c) % n
            y = (y * y + c) % n
            y = (y * y + c) % n
            d = math.gcd(abs(x - y), n)
        if d != n:
            return d


@lru_cache(maxsize=None)
def prime_factors(n: int) -> tuple:
    """Distinct prime factors of n, ascending (trial division, then Pollard's rho)."""
    found = set()
    for sp in range(2, 1 << 12):
        if n % sp == 0:
            found.add(sp)
            while n % sp == 0:
                n //= sp
    stack = [n] if n > 1 else []
    while stack:
        m = stack.pop()
        if _is_probable_prime(m):
            found.add(m)
            continue
        d = _pollard_rho(m)
        stack += [d, m // d]
    return tuple(sorted(found))


def is_primitive(p: int) -> bool:
    """True if the GF(2) polynomial ``p`` (int bit mask, degree k >= 1) is primitive."""
    k = p.bit_length() - 1
    if k < 1 or not (p & 1):
        return False
    order = (1 << k) - 1
    x = 0b10 % p if k > 1 else 0b10 ^ p
    if polypowmod(x, order, p) != 1:
        return False
    return all(polypowmod(x, order // q, p) != 1 for q in prime_factors(order))


def poly_gcd(a: int, b: int) -> int:
    """gcd of two GF(2) polynomials."""
    while b:
        while a and a.bit_length() >= b.bit_length():
            a ^= b << (a.bit_length() - b.bit_length())
        a, b = b, a
    return a


def onthefly_taps(width: int, groups: int) -> list:
    """(a_q, b_q) for lane groups q = 1 .. groups-1 (group 0 takes the number as it is).

    The first pairs 1 <= a < b < w, in order, whose map is invertible (gcd(1 + x^a + x^b, x^w + 1)
    = 1 over GF(2)) and whose bit triples {j, j-a, j-b} (mod w) are not a translate of an earlier
    group's: so no output bit of one group equals, or is a fixed XOR of the same bits as, an
    output bit of another. Raises ValueError when w has too few such pairs."""
    taps, seen = [], set()
    for a in range(1, width):
        for b in range(a + 1, width):
            if len(taps) == groups - 1:
                return taps
            if poly_gcd(1 | (1 << a) | (1 << b), (1 << width) | 1) != 1:
                continue
            tri = {0, (-a) % width, (-b) % width}
            cls = min(tuple(sorted((t + d) % width for t in tri)) for d in range(width))
            if cls in seen:
                continue
            seen.add(cls)
            taps.append((a, b))
    if len(taps) < groups - 1:
        raise ValueError(f"onthefly reuse with {width}-bit numbers supports at most "
                         f"{len(taps) + 1} lane groups (out_lanes / lanes), not {groups}")
    return taps
