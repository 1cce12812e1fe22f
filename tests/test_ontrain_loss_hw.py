# amaranth: UnusedElaboratable=no
# (the parameter tests build components only to check constructor errors)
"""The on-chip trainer's loss unit in hardware (pezo.hw.ontrain_loss) against the golden
loss_table (pezo.sim.ontrain) and NumPy's argmax, whole streams under random gaps and stalls."""

import random

import numpy as np
import pytest

from pezo.hw.ontrain_loss import LossUnit
from pezo.sim.ontrain import Arith, loss_table
from tests.simutil import run

LO, HI = -(1 << 15), (1 << 15) - 1
TOP = (1 << Arith.LOSS_BITS) - 1


def hard_samples(K, n, seed):
    """``n`` samples (logits (n, K) int64, labels (n,)) cycling through the hard cases: typical
    logits (+-3000), the whole int16 range, ties for the maximum, all logits equal (at -32768,
    32767 or anywhere), the two extremes side by side (d = 65535), differences that are exact
    multiples of 256 (d mod 256 = 0, shifts past 16), and near-equal logits (S close to
    K 2^15). Labels are random, at the (first) maximum or at the minimum."""
    rng = np.random.default_rng(seed)
    s = np.zeros((n, K), dtype=np.int64)
    for r in range(n):
        kind = r % 7
        if kind == 0:
            row = rng.integers(-3000, 3001, K)
        elif kind == 1:
            row = rng.integers(LO, HI + 1, K)
        elif kind == 2:
            row = rng.integers(-3000, 3001, K)
            row[rng.choice(K, rng.integers(2, K + 1), replace=False)] = row.max()
        elif kind == 3:
            row = np.full(K, rng.choice([LO, HI, int(rng.integers(LO, HI + 1))]))
        elif kind == 4:
            row = rng.choice([LO, HI, int(rng.integers(LO, HI + 1))], K)
            row[rng.choice(K, 2, replace=False)] = [LO, HI]
        elif kind == 5:
            top = int(rng.integers(0, HI + 1))
            row = top - 256 * rng.integers(0, (top - LO) // 256 + 1, K)
            row[rng.integers(K)] = top
        else:
            row = int(rng.integers(LO, HI - 3)) + rng.integers(0, 4, K)
        s[r] = row
    pick = rng.integers(3, size=n)
    y = np.where(pick == 0, rng.integers(K, size=n),
                 np.where(pick == 1, s.argmax(axis=1), s.argmin(axis=1)))
    return s, y


async def stream(ctx, dut, s, y, rng, p_valid, p_ready, max_cycles=100_000):
    """Offer the samples on ``i`` one logit per beat, each sample's K logits twice (the load,
    then pass 2), after a random gap each, then held until taken, and take ``o`` with ready high with probability ``p_ready``; returns
    [(loss, pred, y)] in arrival order. Checks that an output not taken stays on ``o``
    unchanged, and that nothing follows the last one."""
    K = s.shape[1]
    beats = [(int(s[r, k]), int(y[r])) for r in range(len(y)) for _ in range(2) for k in range(K)]
    outs, k, offering, held = [], 0, False, None
    for _ in range(max_cycles):
        if len(outs) == len(y):
            break
        if not offering and k < len(beats) and rng.random() < p_valid:
            offering = True
            ctx.set(dut.i.payload, {"s": beats[k][0], "y": beats[k][1]})
        ctx.set(dut.i.valid, offering)
        ready = rng.random() < p_ready
        ctx.set(dut.o.ready, ready)
        took = offering and ctx.get(dut.i.ready)
        if ctx.get(dut.o.valid):
            v = ctx.get(dut.o.payload)
            out = (int(v.loss), int(v.pred), int(v.y))
            assert held is None or held == out, "o.payload changed while waiting for ready"
            held = None if ready else out
            if ready:
                outs.append(out)
        else:
            assert held is None, "o.valid dropped before the output was taken"
        await ctx.tick()
        if took:
            k, offering = k + 1, False
    else:
        raise AssertionError(f"{len(outs)} of {len(y)} outputs in {max_cycles} cycles")
    ctx.set(dut.i.valid, 0)
    ctx.set(dut.o.ready, 1)
    for _ in range(3 * dut.latency):
        assert not ctx.get(dut.o.valid), "an output beyond the samples sent"
        await ctx.tick()
    return outs


def check_stream(K, arith, s, y, seed, p_valid=0.6, p_ready=0.6):
    dut = LossUnit(K, arith)
    got = []

    async def tb(ctx):
        got.extend(await stream(ctx, dut, s, y, random.Random(seed), p_valid, p_ready))

    run(dut, tb, vcd_name=f"ontrain_loss_{K}")
    want_loss = loss_table(s, y, arith)
    want_pred = s.argmax(axis=1)                  # the first index among equal maxima
    assert len(got) == len(y)
    got = np.array(got, dtype=np.int64)
    bad = np.flatnonzero((got[:, 0] != want_loss) | (got[:, 1] != want_pred)
                         | (got[:, 2] != y))
    assert bad.size == 0, (f"{bad.size} of {len(y)} wrong, first: sample {bad[0]} "
                           f"s={s[bad[0]].tolist()} y={y[bad[0]]}: hardware {got[bad[0]].tolist()}, "
                           f"golden {[int(want_loss[bad[0]]), int(want_pred[bad[0]])]}")
    return want_loss


# Bit-exact streams ----------------------------------------------------------------------------

def test_k10_bit_exact_with_the_golden_model_under_gaps_and_stalls():
    K = 10
    s, y = hard_samples(K, 350, seed=10)
    d = s.max(axis=1, keepdims=True) - s
    # the stream holds every hard case it claims to
    assert ((s == s.max(axis=1, keepdims=True)).sum(axis=1) > 1).sum() > 50      # ties
    assert (s.min(axis=1) == s.max(axis=1)).sum() > 20                           # all equal
    assert {LO, HI} <= set(s[:, 0].tolist()) | set(s.ravel().tolist())
    assert (d == (1 << 16) - 1).any(axis=1).sum() > 40                          # d = 65535
    assert ((d % 256 == 0) & (d > 0)).sum() > 200 and ((d >> 8) >= 16).sum() > 500
    assert (y == s.argmax(axis=1)).sum() > 100 and (y == s.argmin(axis=1)).sum() > 100
    loss = check_stream(K, Arith(), s, y, seed=1)
    assert (loss == TOP).sum() > 10 and (loss < TOP).sum() > 200                 # saturation


@pytest.mark.parametrize("K, arith, saturates", [
    (2, Arith(), False),            # at most 65535 * 16 + LOG[0] = 2^20 - 4
    (16, Arith(), True),
    (10, Arith(log_bits=6), True),
    (7, Arith(logit_frac=6, loss_frac=8, log_bits=12), False),  # LOG[j] reaches 2^loss_frac
    (5, Arith(logit_frac=2, loss_frac=14, log_bits=3), True),   # d_y << 12 overflows 20 bits
], ids=["k2", "k16", "k10-log6", "k7-lf6-Lf8-lb12", "k5-lf2-Lf14-lb3"])
def test_other_class_counts_and_formats_bit_exact(K, arith, saturates):
    s, y = hard_samples(K, 140, seed=K)
    loss = check_stream(K, arith, s, y, seed=K, p_valid=0.8, p_ready=0.5)
    assert (loss == TOP).any() == saturates and (loss < TOP).sum() > 50
    if K == 16:                      # S = 16 * 2^15 = 2^19 exactly: p = 19, one bit past 18
        assert (s.min(axis=1) == s.max(axis=1)).any()
        assert ((s.max(axis=1) - s.min(axis=1) <= 3) & (s.min(axis=1) < s.max(axis=1))).any()


# Cycles ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("K", [2, 10, 16])
def test_cycles_per_sample_and_latency(K):
    """Back to back with ``i.valid`` and ``o.ready`` always high: a sample every
    max(2 K, K + 5) cycles (at most 3 K + 12), its K logits on K consecutive cycles in each
    round, and the first result :attr:`latency` cycles after the edge that takes its last
    pass-2 logit."""
    dut = LossUnit(K)
    s, y = hard_samples(K, 8, seed=3)
    beats = [(int(s[r, k]), int(y[r])) for r in range(len(y)) for _ in range(2) for k in range(K)]
    accepted, shown = [], []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        k = 0
        for cycle in range(60 * K):
            if k < len(beats):
                ctx.set(dut.i.payload, {"s": beats[k][0], "y": beats[k][1]})
            ctx.set(dut.i.valid, k < len(beats))
            if k < len(beats) and ctx.get(dut.i.ready):
                accepted.append(cycle)
                k += 1
            if ctx.get(dut.o.valid):
                shown.append(cycle)
            await ctx.tick()

    run(dut, tb)
    assert len(accepted) == 2 * K * len(y) and len(shown) == len(y)
    first, last = accepted[::K], accepted[K - 1::K]                 # of each round
    assert [b - a for a, b in zip(first, last)] == [K - 1] * 2 * len(y)     # no gap in a round
    # a sample's load follows the previous pass 2 at once; its pass 2 follows its load, or
    # for K < 5 waits for the previous tail, which sets the pace
    gaps = set(np.diff(first[::2])[1:].tolist()) | set(np.diff(shown).tolist())
    assert gaps == {dut.cycles_per_sample} == {max(2 * K, K + 5)}
    assert dut.cycles_per_sample <= 3 * K + 12
    assert shown[0] - 1 - last[1] == dut.latency == 4


# Parameters -----------------------------------------------------------------------------------

def test_parameters_read_back():
    a = Arith(log_bits=6)
    dut = LossUnit(12, a)
    assert dut.n_classes == 12 and dut.arith is a
    assert (dut.cycles_per_sample, dut.latency) == (24, 4)


@pytest.mark.parametrize("K", [1, 17, 0, -3])
def test_class_count_out_of_range(K):
    with pytest.raises(ValueError, match=rf"^Class count \(n_classes\) must be in 2\.\.16, "
                                         rf"not {K}$"):
        LossUnit(K)


@pytest.mark.parametrize("K", [10.0, True, "10"])
def test_class_count_not_an_integer(K):
    with pytest.raises(TypeError, match=rf"^Class count \(n_classes\) must be an integer, "
                                        rf"not {K!r}$"):
        LossUnit(K)


def test_arith_of_the_wrong_kind():
    with pytest.raises(TypeError, match=r"^Arithmetic formats \(arith\) must be an Arith, "
                                        r"not 'x'$"):
        LossUnit(10, "x")
