"""Golden model of the whole perturbation generator: bank -> reuse -> scaler.

``generate(cfg, seed, count)`` returns the exact stream the hardware
(:class:`pezo.hw.generator.PerturbationGenerator`) delivers after loading ``seed``: beat-major,
value index = beat * m + lane, truncated to ``count``.
"""

import numpy as np

from pezo.sim import scaler
from pezo.sim.bank import bank_stream, lanes_to_beats
from pezo.sim.reuse import ReuseModel

__all__ = ["GeneratorModel", "generate", "STAGES"]

STAGES = ("bank", "uniform", "z")


class GeneratorModel:
    """Resumable, stateful model mirroring the hardware's controls (seed, scale, pool offset)."""

    def __init__(self, cfg, seed=0, digits=None):
        self.cfg = cfg
        self.digits = list(scaler.default_digits(cfg) if digits is None else digits)
        self.saturated = False
        self.reuse = ReuseModel(cfg, seed)

    def load_seed(self, seed, bank=None):
        """Load ``seed``; ``bank``: its bank at cycle 0 if already built (ReuseModel.load_seed)."""
        self.reuse.load_seed(seed, bank)

    def set_digits(self, digits):
        self.digits = list(digits)

    @property
    def offset(self):
        return self.reuse.offset

    def set_offset(self, word, key=0):
        self.reuse.set_offset(word, key)

    @property
    def pool_sumsq(self):
        return self.reuse.sumsq

    def next_uniform(self, beats: int) -> np.ndarray:
        return self.reuse.next(beats)

    def next(self, beats: int) -> np.ndarray:
        """The next ``beats`` output beats: (beats, m) int32 z integers."""
        beats = int(beats)
        out = np.empty((beats, self.cfg.out_lanes), dtype=np.int32)   # z is at most 32 bits
        step = max(1, (1 << 16) // self.cfg.out_lanes)
        lane_major = self.cfg.reuse == "none"   # the bank's numbers as they are: scaled lane by
        for b in range(0, beats, step):         # lane, in chunks that stay in cache
            n = min(step, beats - b)
            if lane_major:
                z, sat = scaler.scale_values(self.reuse.bank.next_lanes(n), self.digits, self.cfg)
                lanes_to_beats(z, out[b:b + n])
            else:
                z, sat = scaler.scale_values(self.reuse.next(n), self.digits, self.cfg)
                out[b:b + n] = z
            self.saturated |= sat
        return out


def generate(cfg, seed: int, count: int, stage: str = "z", digits=None) -> np.ndarray:
    """The first ``count`` values (flat, beat-major) of the generator after loading ``seed``.

    ``stage`` taps the pipeline: ``"bank"`` (raw uniform numbers of the bank, n per cycle),
    ``"uniform"`` (after reuse, m per beat) or ``"z"`` (scaled output, the default)."""
    if stage not in STAGES:
        raise ValueError(f"Stage must be one of {', '.join(STAGES)}, not {stage!r}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"Count must be a non-negative integer, not {count!r}")
    width = cfg.lanes if stage == "bank" else cfg.out_lanes
    beats = -(-int(count) // width)
    if stage == "bank":
        return bank_stream(cfg, seed, beats).reshape(-1)[:count]
    model = GeneratorModel(cfg, seed, digits)
    vals = model.next_uniform(beats) if stage == "uniform" else model.next(beats)
    return vals.reshape(-1)[:count]
