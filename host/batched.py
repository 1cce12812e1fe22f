"""The batched golden engine transport (``engine="batched"``, and the base of the fused one).

:class:`BatchedGoldenTransport` runs the same :class:`~pezo.sim.engine.EngineModel` (MAC, scaler,
commands, status unchanged) with a generator front end that computes the first pass of many step
seeds at once (one vectorised LFSR run over all their lanes, :func:`pezo.sim.banks.
bank_first_cycles`) and caches them; :meth:`BatchedGoldenTransport.prefetch` announces upcoming
seeds. Bit-exact with :class:`~pezo.host.engine.GoldenTransport` after every command.
"""

import collections

import numpy as np

from pezo.host.engine import GoldenTransport
from pezo.sim import scaler as smodel
from pezo.sim.bank import BankModel, bank_geometry
from pezo.sim.banks import FirstCyclesBank, bank_first_cycles
from pezo.sim.engine import EngineModel, Op
from pezo.sim.mac import rounding_config
from pezo.sim.reuse import KEY_BITS, ReuseModel, onthefly_lanes, onthefly_taps, sign_rate
from pezo.sim.seeding import domain_tweak

__all__ = ["BatchedGoldenTransport", "query_key"]


def query_key(seed: int) -> int:
    """The pregen query key of a step seed (the OFFSET command's bits 32-63): its low 32 bits."""
    return int(seed) & ((1 << KEY_BITS) - 1)


class _SeedStreams:
    """The first ``beats`` beats of (bank or reuse) output after each seed, computed for many
    seeds per LFSR run and kept in an LRU cache."""

    ROWS = 256          # generators per vectorised run (cost grows past this)
    CACHE = 1024

    def __init__(self, cfg, beats, onthefly=False, tweak=0):
        self.cfg, self.beats, self.onthefly, self.tweak = cfg, int(beats), onthefly, tweak
        self.taps = onthefly_taps(cfg.width, onthefly) if onthefly else []
        gens = bank_geometry(cfg)[0]
        self.batch = max(1, self.ROWS // gens)
        self.cache = collections.OrderedDict()
        self.pending = collections.deque()

    def hint(self, seeds):
        self.pending.extend(int(s) for s in seeds)

    def first(self, seed):
        seed = int(seed)
        hit = self.cache.get(seed)
        if hit is not None:
            self.cache.move_to_end(seed)
            return hit
        batch = [seed]
        while self.pending and len(batch) < self.batch:
            s = self.pending.popleft()
            if s not in self.cache and s not in batch:
                batch.append(s)
        out = bank_first_cycles(self.cfg, batch, self.beats, rotate=bool(self.onthefly),
                                tweak=self.tweak)
        if self.onthefly:
            out = onthefly_lanes(out, self.taps, self.cfg.width)
        for s, block in zip(batch, out):
            self.cache[s] = block
        while len(self.cache) > self.CACHE:
            self.cache.popitem(last=False)
        return self.cache[seed]


class _FastGenerator:
    """Stands in for :class:`pezo.sim.generator.GeneratorModel` inside the engine model: the same
    controls and stream, with the first pass after a seed served from :class:`_SeedStreams` and
    anything else (and all of ``pregen``) from a real :class:`~pezo.sim.reuse.ReuseModel` (exact
    in every case)."""

    def __init__(self, cfg, streams, seed=0):
        self.cfg = cfg
        self.streams = streams
        self.digits = list(smodel.default_digits(cfg))
        self.saturated = False
        self._zcache = collections.OrderedDict()
        self.load_seed(seed)

    def load_seed(self, seed):
        self.seed, self.pos, self._fallback = int(seed), 0, None
        if self.cfg.reuse == "pregen":
            # sign streams of a query: its first cycles by the many-seeds bank (fast), exact
            first = -(-self.streams.beats // sign_rate(self.cfg)) + 1
            self._fallback = ReuseModel(
                self.cfg, self.seed,
                bank_factory=lambda cfg, seed: FirstCyclesBank(cfg, seed, first=first))

    def set_digits(self, digits):
        self.digits = list(digits)

    @property
    def offset(self):
        return self._fallback.offset if self.cfg.reuse == "pregen" else 0

    def set_offset(self, word, key=0):
        self._fallback.set_offset(word, key)

    @property
    def pool_sumsq(self):
        return self._fallback.sumsq

    @property
    def pool(self):
        """pregen: the pool the last SEED filled ((N/m, m) uniform integers)."""
        return self._fallback.pool

    def next_uniform(self, beats):
        cfg = self.cfg
        if cfg.reuse != "pregen" and self._fallback is None \
                and self.pos + beats <= self.streams.beats:
            u = self.streams.first(self.seed)[self.pos:self.pos + beats]
        else:
            if self._fallback is None:
                self._fallback = ReuseModel(cfg, self.seed)
                if self.pos:
                    self._fallback.next(self.pos)
            u = self._fallback.next(beats)
        self.pos += beats
        return u

    def next(self, beats):
        beats = int(beats)
        key = None
        if self.cfg.reuse != "pregen" and self._fallback is None and self.pos == 0 \
                and beats == self.streams.beats:
            # The first pass after a seed: its z is what every pass of a MeZO query uses.
            key = (self.seed, tuple(self.digits))
            hit = self._zcache.get(key)
            if hit is not None:
                self.pos = beats
                self.saturated |= hit[1]
                return hit[0]
        z, sat = smodel.scale_values(self.next_uniform(beats), self.digits, self.cfg)
        self.saturated |= sat
        if key is not None:
            self._zcache[key] = (z, sat)
            while len(self._zcache) > 8:
                self._zcache.popitem(last=False)
        return z


class _FastBank:
    """Stands in for the stochastic-rounding :class:`~pezo.sim.bank.BankModel` after a SEED."""

    AHEAD = 64          # passes read ahead from the real bank at a time (one call, sliced)

    def __init__(self, streams, seed):
        self.streams, self.seed, self.pos, self._fallback = streams, int(seed), 0, None
        self._buf = None

    def next(self, cycles):
        if self._fallback is None and self.pos + cycles <= self.streams.beats:
            out = self.streams.first(self.seed)[self.pos:self.pos + cycles]
        else:
            if self._fallback is None:
                self._fallback = BankModel(self.streams.cfg, self.seed, tweak=self.streams.tweak)
                if self.pos:
                    self._fallback.next(self.pos)
                self._buf = self._fallback.next(0)
            if len(self._buf) < cycles:
                more = self._fallback.next(max(cycles, self.AHEAD * self.streams.beats))
                self._buf = np.concatenate([self._buf, more])
            out, self._buf = self._buf[:cycles], self._buf[cycles:]
        self.pos += cycles
        return out


class _FastEngineModel(EngineModel):
    """:class:`~pezo.sim.engine.EngineModel` with the batched generator front end; commands,
    MAC, scaler and status are the golden model's own code."""

    def __init__(self, cfg, gen_streams, round_streams):
        super().__init__(cfg)
        self._round_streams = round_streams
        self.gen = _FastGenerator(cfg.generator, gen_streams, 0)

    def execute(self, op, arg=0, wdata=None):
        g = self.cfg.generator
        a = int(arg) & ((1 << 64) - 1)
        if op == Op.SEED and not a >> g.seed_width:
            self.gen.load_seed(a)
            self.rbank = _FastBank(self._round_streams, a)
            return None
        return super().execute(op, arg, wdata)

    def resume(self, seed, gen_beats, rbank_cycles):
        """The stream state after ``SEED seed`` and passes that read ``gen_beats`` beats of the
        generator and ``rbank_cycles`` cycles of the rounding bank (what a fused query leaves)."""
        self.execute(Op.SEED, seed)
        self.gen.pos = int(gen_beats)
        self.rbank.pos = int(rbank_cycles)

    def use_rounding_stream(self, stream):
        """Serve the rounding bank from ``stream`` (same numbers from the same position)."""
        if stream.pos != self.rbank.pos:
            raise ValueError(f"Rounding stream at cycle {stream.pos}, the bank at {self.rbank.pos}")
        self.rbank = stream


class BatchedGoldenTransport(GoldenTransport):
    """The golden engine model with a batched, cached generator front end (bit-exact with
    :class:`~pezo.host.engine.GoldenTransport`, much faster when every pass follows a SEED).
    :meth:`prefetch` announces upcoming seeds so their first passes are computed together."""

    name = "golden-batched"

    def __init__(self, cfg):
        self.cfg = cfg
        g = cfg.generator
        onthefly = g.out_lanes // g.lanes if g.reuse == "onthefly" else False
        self.gen_streams = _SeedStreams(g, cfg.words, onthefly)
        self.round_streams = _SeedStreams(rounding_config(cfg), cfg.words,
                                          tweak=domain_tweak("rounding", g.seed_width))
        self.model = _FastEngineModel(cfg, self.gen_streams, self.round_streams)
        self.cycles = 0

    def prefetch(self, seeds):
        seeds = [int(s) for s in seeds]
        self.gen_streams.hint(seeds)
        if self.cfg.stochastic and self.model.stochastic:
            self.round_streams.hint(seeds)
