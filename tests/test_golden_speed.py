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
