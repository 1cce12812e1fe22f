# amaranth: UnusedElaboratable=no
# (the parameter tests build components only to check constructor errors)
"""The on-chip trainer's minibatch sampler in hardware (pezo.hw.ontrain_sampler) against the
golden Sampler (pezo.sim.ontrain) and against the sampler bank's bit stream read directly."""

import random

import numpy as np
import pytest

from pezo.hw.ontrain_sampler import SamplerUnit, sampler_config
from pezo.sim.bank import BankModel
from pezo.sim.lfsr import splitmix64
from pezo.sim.ontrain import SAMPLER_TWEAK, Sampler
from pezo.sim.seeding import DOMAINS, domain_tweak
from tests.simutil import run

SEED, INDEX = 1, 0


def step_kinds(batch, steps):
    """The golden model's request order: per step one seed, then ``batch`` indices."""
    return ([SEED] + [INDEX] * batch) * steps


async def load(ctx, dut, seed):
    """Pulse ``seed_load`` and wait until the unit is no longer busy; returns the busy cycles."""
    ctx.set(dut.seed, seed)
    ctx.set(dut.seed_load, 1)
    await ctx.tick()
    ctx.set(dut.seed_load, 0)
    busy = 0
    while ctx.get(dut.busy):
        busy += 1
        await ctx.tick()
    return busy


async def serve(ctx, dut, kinds, rng, p_valid=0.7, p_ready=0.7, max_cycles=20000):
    """Offer the requests ``kinds`` on ``req`` (valid with probability ``p_valid``) and take the
    answers from ``o`` (ready with probability ``p_ready``); returns the answers. Checks that an
    answer not taken stays on ``o`` unchanged."""
    outs, k, held = [], 0, None
    for _ in range(max_cycles):
        if len(outs) == len(kinds):
            break
        send = k < len(kinds) and rng.random() < p_valid
        ctx.set(dut.req.valid, send)
        if k < len(kinds):
            ctx.set(dut.req.payload, kinds[k])
        ready = rng.random() < p_ready
        ctx.set(dut.o.ready, ready)
        took = send and ctx.get(dut.req.ready)
        if ctx.get(dut.o.valid):
            value = ctx.get(dut.o.payload)
            assert held is None or held == value, "o.payload changed while waiting for ready"
            held = None if ready else value
            if ready:
                outs.append(value)
        await ctx.tick()
        k += bool(took)
    else:
        raise AssertionError(f"{len(outs)} of {len(kinds)} answers in {max_cycles} cycles")
    ctx.set(dut.req.valid, 0)
    ctx.set(dut.o.ready, 0)
    return outs


def golden_answers(seed, n, batch, steps):
    """The golden Sampler's step seeds and indices, in request order."""
    seeds, idx, _ = Sampler(seed, n, batch).next(steps)
    return np.column_stack([seeds, idx]).reshape(-1).tolist()


# The seeding domain ---------------------------------------------------------------------------

def test_sampler_domain_is_splitmix64_3():
    assert DOMAINS["sampler"] == splitmix64(3)
    assert SAMPLER_TWEAK == domain_tweak("sampler", 32) == 0x724C81EC
    # The older tweaks are splitmix64's first two outputs from state 1 (sim/seeding.py's
    # comment): fin(1 + i * gamma) is pezo's splitmix64(x) = fin((x + 1) * gamma) at
    # x = i - 1 + gamma^-1 (mod 2^64).
    ginv = pow(0x9E3779B97F4A7C15, -1, 1 << 64)
    assert DOMAINS["rounding"] == splitmix64(ginv)
    assert DOMAINS["sign"] == splitmix64(ginv + 1)


# Bit-exact with the golden Sampler --------------------------------------------------------------

@pytest.mark.parametrize("seed, n, batch", [
    (0x0BADF00D, 1077, 4), (12345, 1077, 1), (0, 1, 4),
    (0xFFFFFFFF, 1, 1), (0x9E3779B9, 65535, 4), (7, 65535, 1),
])
def test_matches_golden_sampler(seed, n, batch):
    dut, steps = SamplerUnit(), 16 if batch == 4 else 32
    rng = random.Random(seed ^ n ^ batch)

    async def tb(ctx):
        ctx.set(dut.n, n)
        await load(ctx, dut, seed)
        out = await serve(ctx, dut, step_kinds(batch, steps), rng)
        assert out == golden_answers(seed, n, batch, steps)
    run(dut, tb)


def test_reset_is_seed_0():
    dut = SamplerUnit()

    async def tb(ctx):
        ctx.set(dut.n, 1077)
        out = await serve(ctx, dut, step_kinds(2, 2), random.Random(3))
        assert out == golden_answers(0, 1077, 2, 2)
    run(dut, tb)


def test_seed_load_restarts_the_stream():
    """A seed load with a request in flight (fetching, multiplying, or its answer waiting) or
    idle drops it and restarts at x_0 of the new seed; busy lasts ``load_cycles``."""
    dut, n, batch = SamplerUnit(), 1077, 2
    rng = random.Random(11)

    async def tb(ctx):
        ctx.set(dut.n, n)
        assert await load(ctx, dut, 0xA5A5A5A5) == dut.load_cycles
        for i, delay in enumerate([None, 2, 8, 40]):   # None: idle; 40: the answer waits
            await serve(ctx, dut, [SEED, INDEX, INDEX], rng)
            if delay is not None:
                ctx.set(dut.req.payload, INDEX)
                ctx.set(dut.req.valid, 1)
                assert ctx.get(dut.req.ready)
                await ctx.tick()
                ctx.set(dut.req.valid, 0)
                for _ in range(delay):
                    await ctx.tick()
                assert ctx.get(dut.o.valid) == (delay == 40)
            seed = 1000 + i
            ctx.set(dut.req.valid, 1)                   # not accepted in the seed_load cycle
            ctx.set(dut.seed, seed)
            ctx.set(dut.seed_load, 1)
            assert not ctx.get(dut.req.ready)
            await ctx.tick()
            ctx.set(dut.req.valid, 0)
            ctx.set(dut.seed_load, 0)
            assert not ctx.get(dut.o.valid)
            busy = 0
            while ctx.get(dut.busy):
                assert not ctx.get(dut.req.ready)
                busy += 1
                await ctx.tick()
            assert busy == dut.load_cycles
            out = await serve(ctx, dut, step_kinds(batch, 2), rng)
            assert out == golden_answers(seed, n, batch, 2), delay
    run(dut, tb)


# Field slicing against the bank's bit stream ----------------------------------------------------

def stream_fields(seed, kinds, n):
    """Answers from the definition: the sampler bank's bytes as bits x_0, x_1, ... (bit j of
    byte c is x_{8c + j}), cut into 32-bit (seed) and 24-bit (index) fields, LSB = lowest."""
    widths = [32 if k == SEED else 24 for k in kinds]
    nbytes = sum(widths) // 8
    b = BankModel(sampler_config(), seed, tweak=SAMPLER_TWEAK).next(nbytes)[:, 0] & 255
    x = [(int(v) >> j) & 1 for v in b for j in range(8)]
    out, at = [], 0
    for k, w in zip(kinds, widths):
        f = sum(x[at + j] << j for j in range(w))
        out.append(f if k == SEED else (f * n) >> 24)
        at += w
    return out


def test_irregular_requests_match_the_bit_stream():
    rng = random.Random(5)
    kinds = [SEED, INDEX, INDEX, INDEX, SEED, SEED, INDEX]
    kinds += [rng.randrange(2) for _ in range(25)]
    dut, n, seed = SamplerUnit(11), 1077, 0x600DCAFE

    async def tb(ctx):
        ctx.set(dut.n, n)
        await load(ctx, dut, seed)
        out = await serve(ctx, dut, kinds, rng, p_valid=0.5, p_ready=0.5)
        assert out == stream_fields(seed, kinds, n)
    run(dut, tb)


# Parameters and throughput --------------------------------------------------------------------

@pytest.mark.parametrize("n_bits", [0, 17, -1])
def test_n_bits_out_of_range(n_bits):
    with pytest.raises(ValueError, match=rf"^Split size width \(n_bits\) must be in 1\.\.16, "
                                         rf"not {n_bits}$"):
        SamplerUnit(n_bits)


@pytest.mark.parametrize("n_bits", ["16", 16.0, True])
def test_n_bits_not_an_integer(n_bits):
    with pytest.raises(TypeError, match=rf"^Split size width \(n_bits\) must be an integer, "
                                        rf"not {n_bits!r}$"):
        SamplerUnit(n_bits)


@pytest.mark.parametrize("n_bits", [16, 11, 1])
def test_cycles_per_request(n_bits):
    """With req.valid and o.ready always high: a request accepted every ``index_cycles`` (n_bits
    + 5, at most 21) or ``seed_cycles`` (6) cycles, its answer ``*_latency`` cycles after."""
    dut = SamplerUnit(n_bits)
    assert dut.n_bits == n_bits
    assert dut.index_cycles == n_bits + 5 <= 32 and dut.seed_cycles == 6
    kinds = [INDEX, INDEX, INDEX, SEED, SEED, INDEX, SEED, INDEX]

    async def tb(ctx):
        ctx.set(dut.n, (1 << n_bits) - 1)
        await load(ctx, dut, 99)
        ctx.set(dut.req.valid, 1)
        ctx.set(dut.o.ready, 1)
        accepted, answered, k = [], [], 0
        for cycle in range(400):
            if k == len(kinds) and len(answered) == len(kinds):
                break
            ctx.set(dut.req.valid, k < len(kinds))
            if k < len(kinds):
                ctx.set(dut.req.payload, kinds[k])
                if ctx.get(dut.req.ready):
                    accepted.append(cycle)
                    k += 1
            if ctx.get(dut.o.valid):
                answered.append(cycle)
            await ctx.tick()
        period = {SEED: dut.seed_cycles, INDEX: dut.index_cycles}
        latency = {SEED: dut.seed_latency, INDEX: dut.index_latency}
        assert len(answered) == len(kinds)
        for i, kind in enumerate(kinds):
            assert answered[i] - accepted[i] == latency[kind]
            if i + 1 < len(kinds):
                assert accepted[i + 1] - accepted[i] == period[kind]
    run(dut, tb)
