"""The golden models' fast paths against independent references (issue #24, golden speed): the
bank's block-to-block continuation against one uninterrupted sequence from the start states,
the lane-major generator path against scaling the bank's beat-major stream."""

import random

import numpy as np
import pytest

from pezo.config import GeneratorConfig as G
from pezo.sim import scaler
from pezo.sim.bank import BankModel, bank_geometry
from pezo.sim.generator import GeneratorModel, generate
from pezo.sim.lfsr import continue_words, extract, sequence_words
from pezo.sim.seeding import lane_states


@pytest.mark.parametrize("k", [5, 32, 64, 127])
def test_continue_words_equals_one_sequence(k):
    rng = random.Random(k)
    states = [rng.randrange(1, 1 << k) for _ in range(3)]
    full = sequence_words(k, states, 64 * 9000)
    for start, h in ((0, k), (17, 2 * k + 5), (300, 4000)):
        got = continue_words(k, full[:, start:start + h].copy(), 9000 - start)
        assert (got == full[:, start:9000]).all(), (start, h)
    buf = np.zeros((3, 20000), dtype=np.uint64)          # in place, history at the front
    buf[:, :2 * k] = full[:, 100:100 + 2 * k]
    got = continue_words(k, buf[:, :2 * k], 8000, out=buf)
    assert got.base is buf or got.base is buf.base
    assert (got == full[:, 100:8100]).all()


def _reference_bank(cfg, seed, cycles, rotate=False):
    """The bank stream from its definition (pezo.sim.bank): one uninterrupted sequence per
    generator from the seeding rule's start states, fields read at their bit positions."""
    gens, step, offsets = bank_geometry(cfg)
    k, w, n = cfg.state_bits, cfg.width, cfg.lanes
    words = sequence_words(k, lane_states(seed, k, gens, cfg.seed_width),
                           cycles * step + max(offsets) + w + 64)
    pos = np.arange(cycles, dtype=np.int64) * step
    out = np.empty((cycles, n), dtype=np.int64)
    for lane in range(n):
        out[:, lane] = extract(words[0 if cfg.shared else lane], pos + offsets[lane], w)
    if rotate and n > 1:
        c = np.arange(cycles)[:, None]
        out = np.take_along_axis(out, (np.arange(n)[None, :] + c) % n, axis=1)
    return out


@pytest.mark.parametrize("cfg", [G(), G(lanes=3, width=12), G(lanes=2, width=8, state_bits=9),
                                 G(lanes=4, shared=True, state_bits=71),
                                 G(lanes=5, width=32, state_bits=64, seed_width=64)],
                         ids=lambda c: c.name())
@pytest.mark.parametrize("rotate", [False, True])
def test_bank_model_blocks_equal_one_sequence(cfg, rotate):
    """Small blocks, read-ahead and history (class attributes, shrunk on the instance), so a few
    thousand cycles cross many block boundaries, buffer moves and growths; chunks of random
    sizes from next and next_lanes."""
    cycles = 6000
    ref = _reference_bank(cfg, 0xC0FFEE, cycles, rotate)
    rng = random.Random(1)
    bank = BankModel(cfg, 0xC0FFEE, rotate=rotate)
    bank.BLOCK_BITS, bank.FIRST_BITS, bank.HISTORY_WORDS = 1 << 12, 1 << 7, 1 << 8
    bank._ahead = bank.FIRST_BITS
    got, at = [], 0
    while at < cycles:
        n = min(rng.choice([0, 1, 3, 17, 64, 250, 700]), cycles - at)
        got.append(bank.next(n) if rng.random() < 0.5 else bank.next_lanes(n).T)
        at += n
    assert (np.concatenate(got) == ref).all()


@pytest.mark.parametrize("cfg", [G(), G(lanes=8, scale="fixed"), G(lanes=4, width=12),
                                 G(lanes=16, width=8, z_int=2, z_frac=6)],
                         ids=lambda c: c.name())
def test_lane_major_generator_equals_scaled_bank_stream(cfg):
    """generate's lane-major path (reuse none) against the scaler applied to the bank's
    beat-major stream, beat by beat as the definition reads."""
    beats = 70_001
    digits = scaler.default_digits(cfg)
    bank = _reference_bank(cfg, 99, beats)
    assert (BankModel(cfg, 99).next(beats) == bank).all()      # one call: chunked copies
    ref, sat = scaler.scale_values(bank, digits, cfg)
    assert (generate(cfg, 99, beats * cfg.lanes).reshape(beats, cfg.lanes) == ref).all()
    model = GeneratorModel(cfg, 99)
    assert (np.concatenate([model.next(n) for n in (1, 5000, 60_000, 5000)]) == ref).all()
    assert model.saturated == sat


# The seed mixer and the fused engine's pregen path --------------------------------------------

@pytest.mark.parametrize("sw", [32, 64])
def test_vectorised_mixer_equals_plain_reference(sw):
    """mix (f's table for 32-bit seeds, NumPy or Python ints by batch size; NumPy rounds for
    64-bit) against _mix_int, block by block, on thousands of random blocks."""
    from pezo.sim.seeding import _mix_int, mix
    rng = np.random.default_rng(sw)
    blocks = rng.integers(0, 1 << (sw - 1), 4000, dtype=np.uint64) << np.uint64(1)
    blocks ^= rng.integers(0, 2, 4000, dtype=np.uint64)
    blocks[:3] = [0, 1, (1 << sw) - 1]
    ref = [_mix_int(int(b), sw // 2) for b in blocks]
    for size in (1, 5, 8, 9, 32, 33, 4000):
        assert mix(blocks[:size], sw).tolist() == ref[:size], size
    assert mix(blocks.reshape(40, 100), sw).reshape(-1).tolist() == ref


def test_fused_pregen_queries_equal_the_commands():
    """Many MeZO queries through the fused pregen path (sign bits read ahead, the pool's z and p
    laid out, the generator's state left pending) with no status read between them, against
    the plain golden model running OFFSET, PERTURB and UPDATE: every theta+- and, at the end,
    the weights and the status; then the same after a scale change and a new pool."""
    from pezo.config import EngineConfig as E
    from pezo.host.engine import GoldenTransport
    from pezo.host.fused import FusedGoldenTransport
    from pezo.sim.engine import Op, encode_signed
    from pezo.sim.reuse import query_stride
    g = G(lanes=4, reuse="pregen", pool_size=64)
    cfg = E(generator=g, depth=4 * 37)
    a, b = GoldenTransport(cfg), FusedGoldenTransport(cfg)
    rng = np.random.default_rng(3)
    w = rng.integers(-2000, 2000, cfg.depth).reshape(cfg.words, cfg.lanes)
    for t in (a, b):
        for op, arg, wd in ((Op.WRITE, cfg.words << 32, w), (Op.MU, 900, None),
                            (Op.ROUNDING, 1, None), (Op.SEED, 77, None)):
            t.command(op, arg, wd)
    seeds = [int(s) for s in rng.integers(0, 2**32, 30)]
    b.prefetch(seeds[:20])              # the last ten are not announced
    o, fused = 0, 0
    for k, s in enumerate(seeds):
        if k == 25:                     # a scale change and a new pool mid-run
            for t in (a, b):
                t.command(Op.SCALE, scaler.encode_scale([(1, scaler.t_min(g) + 1)], g))
                t.command(Op.SEED, 78)
        replay = (Op.OFFSET, o | (s & 0xFFFFFFFF) << 32)
        got = b.pair(s, o, cfg.depth)
        want = []
        for sign in (0, 1, 0):
            a.command(*replay)
            a.command(Op.PERTURB, sign)
            if len(want) < 2:
                want.append(a.command(Op.READ, cfg.words << 32).reshape(-1) * 2.0 ** -cfg.w_frac)
        c = int(rng.integers(-30000, 30000))
        sat = b.update(s, o, c)
        a.command(*replay)
        a.command(Op.UPDATE, encode_signed(c))
        assert got is not None and sat is not None, k
        fused += 1
        assert (got[0] == want[0]).all() and (got[1] == want[1]).all(), k
        o = (o + query_stride(g, cfg.words)) % g.pool_words
    assert b.status() == a.status()
    assert (b.command(Op.READ, cfg.words << 32) == a.command(Op.READ, cfg.words << 32)).all()
