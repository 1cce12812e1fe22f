"""The on-chip trainer's coefficient unit (pezo.hw.ontrain_coef) against exact rational
arithmetic written from the definition (docs/on_device.md, section 6) and against the golden
pezo.sim.ontrain.coefficient, on the operands most likely to break it: the extremes of the
sums, exact halves (ties), results at and just past the saturation limits, every shift of
the exact range, with random gaps and output stalls."""

from fractions import Fraction
import random

import pytest

from pezo.hw.ontrain_coef import SHIFT_MAX, SHIFT_MIN, CoefUnit
from pezo.sim.ontrain import coefficient
from tests.simutil import run

TOP = (1 << 32) - 1
LIM = (1 << 15) - 1


def exact(sp, sm, lr_m, shift):
    """round_half_even(-(sp - sm) lr_m / 2^shift) saturated to +-(2^15 - 1), in rationals."""
    c = round(Fraction(-(sp - sm) * lr_m) / Fraction(2) ** shift)   # round() on a Fraction: ties to even
    return max(-LIM, min(LIM, c)), abs(c) > LIM


def cases(seed=7, n=400):
    rng = random.Random(seed)
    out = []
    for shift in range(SHIFT_MIN, SHIFT_MAX + 1):           # every shift, extreme sums
        out += [(0, TOP, 255, shift), (TOP, 0, 255, shift), (TOP, TOP, 200, shift),
                (rng.randrange(TOP + 1), rng.randrange(TOP + 1), rng.randrange(256), shift)]
    for _ in range(n):
        shift = rng.choice([0, 1, 2, 5, 12, 20, 25, 31, rng.randrange(SHIFT_MIN, SHIFT_MAX + 1)])
        lr_m = rng.choice([0, 1, 128, 255, rng.randrange(256)])
        kind = rng.randrange(4)
        if kind == 0:                                        # anything
            sp, sm = rng.randrange(TOP + 1), rng.randrange(TOP + 1)
        elif kind == 1 and shift > 0 and lr_m:               # an exact half: a tie to round
            v = (lr_m & -lr_m).bit_length() - 1              # lr_m = odd 2^v
            if shift - 1 < v:
                continue
            d = rng.choice([-1, 1]) * ((2 * rng.randrange(1 << 12) + 1) << (shift - 1 - v))
            if not -TOP <= d <= TOP:                         # d lr_m = odd 2^(shift - 1)
                continue
            sp = rng.randrange(max(0, -d), min(TOP, TOP - d) + 1)
            sm = sp + d
        elif kind == 2 and lr_m:                             # |c| at 2^15 - 2 .. 2^15 + 1
            target = rng.choice([-1, 1]) * (LIM + rng.randrange(-1, 3))
            d = (target << shift) // lr_m if shift >= 0 else target // (lr_m << -shift)
            if not -TOP <= d <= TOP:
                continue
            sp = rng.randrange(max(0, -d), min(TOP, TOP - d) + 1)
            sm = sp + d
        else:                                                # small differences
            sp = rng.randrange(TOP + 1)
            sm = min(TOP, max(0, sp + rng.randrange(-5000, 5001)))
        out.append((sp, sm, lr_m, shift))
    return out


@pytest.mark.parametrize("held", [False, True], ids=["registered", "held"])
def test_bit_exact_with_exact_arithmetic_and_the_golden_model_under_stalls(held):
    """With ``held`` the testbench keeps each operand on ``i`` until its result is taken (the
    contract); without, it offers the next one as soon as the previous is accepted."""
    ops = cases()
    want = [exact(*op) for op in ops]
    # the operands hold the hard cases they claim to
    ties = sum(1 for sp, sm, lr, sh in ops if sh > 0 and ((sm - sp) * lr) % (1 << sh) == 1 << (sh - 1))
    assert ties > 30
    assert sum(c in (LIM, -LIM) for c, clip in want) > 60 and sum(not clip for c, clip in want) > 150
    assert sum(abs(c) in (LIM - 1, LIM) and not clip for c, clip in want) > 10
    assert [coefficient(*op) for op in ops] == want          # the golden model agrees
    dut = CoefUnit(held=held)
    got = []

    async def tb(ctx):
        rng = random.Random(3)
        k, offering = 0, False
        for _ in range(200_000):
            if len(got) == len(ops):
                break
            if not offering and k < len(ops) and rng.random() < 0.5 \
                    and (not held or len(got) == k):
                sp, sm, lr_m, shift = ops[k]
                ctx.set(dut.i.payload, {"diff": sm - sp, "lr_m": lr_m,
                                        "shift": shift})
                offering = True
            ctx.set(dut.i.valid, offering)
            ready = rng.random() < 0.5
            ctx.set(dut.o.ready, ready)
            took = offering and ctx.get(dut.i.ready)
            if ready and ctx.get(dut.o.valid):
                v = ctx.get(dut.o.payload)
                got.append((int(v.coef), bool(v.clipped)))
            await ctx.tick()
            if took:
                k, offering = k + 1, False

    run(dut, tb)
    assert len(got) == len(ops)
    bad = [(op, g, w) for op, g, w in zip(ops, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(ops)} wrong, first: {bad[0]}"


@pytest.mark.parametrize("shift", [SHIFT_MIN, 0, 3, SHIFT_MAX])
def test_latency(shift):
    dut = CoefUnit()
    seen = {}

    async def tb(ctx):
        ctx.set(dut.i.payload, {"diff": 1000 - 5, "lr_m": 200, "shift": shift})
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.o.ready, 1)
        for cycle in range(120):
            if "in" not in seen and ctx.get(dut.i.ready):
                seen["in"] = cycle
            if "out" not in seen and ctx.get(dut.o.valid):
                seen["out"] = cycle
            await ctx.tick()
            if "in" in seen:
                ctx.set(dut.i.valid, 0)

    run(dut, tb)
    assert seen["out"] - 1 - seen["in"] == dut.latency(shift) == 10 + abs(shift)
