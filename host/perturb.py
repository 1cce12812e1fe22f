"""Perturbation sources for host ZO training, all behind one interface.

=============  =====================================================================================
source         what produces z and holds the weights
=============  =====================================================================================
``gaussian``   float64 weights on the host, z ~ N(0, 1) from ``numpy.random.default_rng(step seed)``
               (the MeZO baseline)
``uniform``    the same with z ~ U(-sqrt 3, sqrt 3) (unit variance, float)
``pezo``       the bit-exact golden engine model (:class:`pezo.sim.engine.EngineModel`): weights in
               fixed point in the engine, z from the PeZO generator (reuse ``none`` / ``pregen`` /
               ``onthefly``, step ``leap``), driven through
               :class:`pezo.host.engine.EngineClient` (passes 1-3 and the update fused, below)
``pezo-sim``   the same commands to the generated hardware (:class:`pezo.hw.engine.PerturbEngine`)
               in the Amaranth simulator (``EngineClient(transport="amaranth")``)
=============  =====================================================================================

The interface is the MeZO pass sequence (one *query* = one z):

>>> q = src.begin(seed)          # remember how to replay z: the seed, or the pregen pool offset
>>> src.perturb(q, +1); Lp = loss(src.params())
>>> src.perturb(q, -2); Lm = loss(src.params())
>>> src.perturb(q, +1)           # restores theta (bit-exactly in the engine unless saturated)
>>> src.update(q, -eta * (Lp - Lm) / (2 * src.mu))    # z regenerated, never stored

``src.perturb_pair(q)`` runs passes 1-3 in one call and returns theta+ and theta- stacked (what
the trainer uses: one forward pass over both).

How the engine replays z (see the engine's command map in :mod:`pezo.sim.engine`):

* ``none`` / ``onthefly``: every pass is preceded by ``SEED s`` (the step seed), which restarts the
  generator (and the stochastic-rounding bank) so the pass sees the same z;
* ``pregen``: the pool is filled once, from a pool seed derived from the run seed, when training
  starts; :meth:`begin` picks the query's pool word o, and every pass of that query is preceded by
  ``OFFSET (o, key)`` with the step seed's low 32 bits as the key of its sign stream
  (docs/streams.md). The next query starts :func:`pezo.sim.reuse.query_stride` words later: d/m
  ("leftover numbers shift to the start of the next perturbation"), rounded up to a stride
  coprime with the pool's N/m words so the starts visit every word.

Coefficients. mu and c = -eta*g are signed ``coef_bits`` registers scaled by 2^-coef_frac. The
realised mu (``src.mu``) is what the trainer divides by. c is quantised on the host: clipped to the
register's range (which acts as clipping of g at c_max/eta; counted in ``stats["coef_clipped"]``)
and rounded to the register's grid, unbiased-stochastically by default (an RNG seeded by the query
seed, so runs are reproducible): a c below one register step is then applied with the right
probability instead of vanishing. A c that rounds to 0 skips the UPDATE pass, which would change no
weight (``stats["coef_zero"]``). The update pass itself rounds c*z to weight LSBs stochastically by
default (the engine's ``ROUNDING 1``), so updates smaller than one weight LSB still move the
weights in expectation.

Speed. The plain golden model rebuilds its LFSR bank on every ``SEED`` (a few ms each, four per
MeZO step). :class:`BatchedGoldenTransport` runs the same :class:`~pezo.sim.engine.EngineModel`
(MAC, scaler, commands, status unchanged) with a generator front end that computes the first pass
of many step seeds at once (one vectorised LFSR run over all their lanes: by linearity, from byte
tables of the basis sequences) and caches them; the trainer announces upcoming seeds with
:meth:`PerturbSource.prefetch`. :class:`pezo.host.fused.FusedGoldenTransport` (``engine="fused"``,
the default for ``pezo``) adds fused calls for passes 1-3 and for the update, so a MeZO step costs
a few array operations instead of eleven commands. Both are bit-exact with the plain model
(tested after every command, and over training runs); ``engine="batched"`` and
``engine="golden"`` select the command-level ones.
"""

import collections
import math

import numpy as np

from pezo.config import EngineConfig, GeneratorConfig, REUSES, STEPS
from pezo.fixed import Q, parse_q
from pezo.host.batched import BatchedGoldenTransport, query_key
from pezo.host.engine import EngineClient
from pezo.host.fused import FusedGoldenTransport
from pezo.host.models import engine_depth
from pezo.host.serial_link import SerialTransport
from pezo.sim import scaler as smodel
from pezo.sim.banks import bank_first_cycles, bank_first_fields
from pezo.sim.lfsr import splitmix64
from pezo.sim.cosim.board import SimBoard
from pezo.sim.reuse import onthefly_lanes, pool_mean_square, query_stride

__all__ = ["SOURCES", "FLOAT_SOURCES", "ENGINE_SOURCES", "REUSES", "STEPS", "ROUNDINGS",
           "ENGINES", "Query", "PerturbSource", "FloatSource", "EngineSource",
           "BatchedGoldenTransport", "make_source", "engine_config", "derive_seed", "derive_seeds",
           "bank_first_cycles", "bank_first_fields", "pool_of", "query_key", "onthefly_lanes"]

SOURCES = ("gaussian", "uniform", "pezo", "pezo-sim", "board")
FLOAT_SOURCES = ("gaussian", "uniform")
ENGINE_SOURCES = ("pezo", "pezo-sim", "board")
ROUNDINGS = ("stochastic", "nearest")
ENGINES = ("fused", "batched", "golden", "amaranth")


def derive_seed(run_seed: int, *tags, bits: int = 32) -> int:
    """A ``bits``-bit seed from the run seed and integer tags (step, query, ...): splitmix64
    chained over the tags. Distinct tags give unrelated seeds; the same inputs the same seed."""
    x = splitmix64(int(run_seed) & ((1 << 64) - 1))
    for t in tags:
        x = splitmix64(x ^ (int(t) & ((1 << 64) - 1)))
    return x & ((1 << bits) - 1)


def _splitmix64_array(x):
    """:func:`pezo.sim.lfsr.splitmix64` of every element of a uint64 array (arithmetic mod
    2^64: the wrap-around is the definition, so NumPy's overflow warning is off)."""
    with np.errstate(over="ignore"):
        z = x * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def derive_seeds(run_seed: int, *tags, bits: int = 32) -> np.ndarray:
    """:func:`derive_seed` for arrays of tags at once (non-negative integers; the tags broadcast
    against each other): e.g. ``derive_seeds(s, 3, t[:, None], q[None, :])`` is the array of
    ``derive_seed(s, 3, t, i)``. Returns uint64."""
    x = np.uint64(splitmix64(int(run_seed) & ((1 << 64) - 1)))
    for t in tags:
        t = np.asarray(t)
        if t.dtype.kind not in "iu" or (t.dtype.kind == "i" and t.size and t.min() < 0):
            raise ValueError(f"Seed tags must be non-negative integers, not {t!r}")
        x = _splitmix64_array(np.bitwise_xor(x, t.astype(np.uint64)))
    return x & np.uint64((1 << bits) - 1)


class Query:
    """One perturbation z: how to replay it (``seed``, or ``offset`` for a pregen pool)."""

    __slots__ = ("seed", "offset")

    def __init__(self, seed, offset=None):
        self.seed, self.offset = seed, offset

    def __repr__(self):
        return f"Query(seed={self.seed:#x}, offset={self.offset})"


class PerturbSource:
    """Interface of a perturbation source (see the module docstring for the pass sequence)."""

    name = "?"
    kind = "?"

    def __init__(self, n_params):
        self.n_params = int(n_params)
        self.mu = 0.0
        self.stats = collections.Counter()

    def reset(self, theta0, run_seed=0):
        """Load the initial weights (and, for pregen, fill the pool from the run seed); every
        weight is active again (no mask)."""
        raise NotImplementedError

    def set_mu(self, mu: float) -> float:
        """Set mu; returns the realised mu (the trainer divides by it)."""
        raise NotImplementedError

    def begin(self, seed: int) -> Query:
        raise NotImplementedError

    def perturb(self, query: Query, sign: int):
        raise NotImplementedError

    def perturb_pair(self, query: Query) -> np.ndarray:
        """Passes 1-3 of a query: returns theta+ (read after pass 1) and theta- (after pass 2)
        as one (2, n_params) float64 array, and leaves theta restored by pass 3. A source may
        fuse the three passes; the result must equal this sequence."""
        self.perturb(query, +1)
        tp = self.params()
        self.perturb(query, -2)
        tm = self.params()
        self.perturb(query, +1)
        return np.stack([tp, tm])

    def update(self, query: Query, coef: float) -> float:
        """theta += coef * z(query); returns the coefficient actually applied."""
        raise NotImplementedError

    def params(self) -> np.ndarray:
        """The current weights as float64 (n_params,)."""
        raise NotImplementedError

    def set_params(self, theta):
        raise NotImplementedError

    def decay(self, factor: float, seed=0):
        """theta *= factor (weight decay; host-side: read, scale, write back)."""
        raise NotImplementedError

    def prefetch(self, seeds):
        """Hint: these step seeds come next (a source may prepare their perturbations)."""

    # The ZO methods beside MeZO (pezo.host.algorithms) ------------------------------------------
    def set_active(self, active):
        """The perturbation mask: ``active`` (bool, n_params) selects the weights that PERTURB
        and UPDATE move (the others get z = 0); None makes every weight active again."""
        raise NotImplementedError

    def coord_add(self, index: int, value: float, seed=None) -> float:
        """theta[index] += value, returns the change actually made (an engine rounds it to the
        weight grid: to nearest, or stochastically with an RNG seeded by ``seed``)."""
        raise NotImplementedError

    def coord_value(self, index: int) -> float:
        """theta[index] as the source holds it now (an engine reads its word back)."""
        raise NotImplementedError

    def write_block(self, start: int, values, seed=0):
        """theta[start:start + len(values)] = values (an engine rounds them to its grid
        stochastically, with an RNG seeded by ``seed``, and writes the words they cover)."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def close(self):
        pass


def _sround_scalar(x: float, seed, tag: int) -> int:
    """x rounded down or up to an integer, up with probability frac(x): the uniform number is
    splitmix64 of (seed, tag), so a run is reproducible."""
    lo = math.floor(x)
    u = splitmix64((int(seed) << 8) ^ tag) / 2.0 ** 64     # uniform in [0, 1)
    return int(lo + (u < x - lo))


def _sround_array(x, seed, tag: int) -> np.ndarray:
    """:func:`_sround_scalar` of every element (int64), uniform numbers from
    ``numpy.random.default_rng([seed, tag])``."""
    lo = np.floor(x)
    r = np.random.default_rng([int(seed), tag]).random(np.shape(x))
    return (lo + (r < x - lo)).astype(np.int64)


def _check_active(active, n):
    a = np.asarray(active)
    if a.dtype != bool or a.shape != (n,):
        raise ValueError(f"Active mask must be a bool array of shape ({n},), not "
                         f"{a.dtype} {a.shape}")
    return a


def _check_index(index, n):
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
        raise ValueError(f"Coordinate index must be an integer in 0..{n - 1}, not {index!r}")
    return int(index)


def _check_block(start, count, n):
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) \
            or not 0 <= start <= start + count <= n:
        raise ValueError(f"Block [{start!r}, {start!r} + {count}) is outside the {n} parameters")


def _check_sign(sign):
    if sign not in (1, -2):
        raise ValueError(f"Perturbation sign must be +1 or -2, not {sign!r}")


class FloatSource(PerturbSource):
    """Float64 weights, z ~ N(0, 1) (``gaussian``) or U(-sqrt 3, sqrt 3) (``uniform``) from
    ``numpy.random.default_rng(seed)``: z is regenerated from the seed for the update, as MeZO
    does (it is kept only between the passes of one query)."""

    kind = "float"

    def __init__(self, n_params, dist="gaussian"):
        if dist not in FLOAT_SOURCES:
            raise ValueError(f"Float distribution must be one of {', '.join(FLOAT_SOURCES)}, "
                             f"not {dist!r}")
        super().__init__(n_params)
        self.name = dist
        self.theta = np.zeros(self.n_params)
        self._z_seed, self._z = None, None
        self.active = None

    def z(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(int(seed))
        if self.name == "gaussian":
            z = rng.standard_normal(self.n_params)
        else:
            r3 = math.sqrt(3.0)
            z = rng.uniform(-r3, r3, self.n_params)
        return z if self.active is None else z * self.active

    def set_active(self, active):
        self._z_seed = self._z = None
        self.active = None if active is None else _check_active(active, self.n_params)

    def coord_add(self, index, value, seed=None):
        self.theta[_check_index(index, self.n_params)] += float(value)
        return float(value)

    def coord_value(self, index):
        return float(self.theta[_check_index(index, self.n_params)])

    def write_block(self, start, values, seed=0):
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        _check_block(start, values.size, self.n_params)
        self.theta[start:start + values.size] = values

    def reset(self, theta0, run_seed=0):
        self.theta = np.array(theta0, dtype=np.float64)[:self.n_params].copy()
        self.set_active(None)

    def set_mu(self, mu):
        if not mu > 0:
            raise ValueError(f"mu must be positive, not {mu!r}")
        self.mu = float(mu)
        return self.mu

    def begin(self, seed):
        self._z_seed, self._z = seed, self.z(seed)
        return Query(seed)

    def perturb(self, query, sign):
        _check_sign(sign)
        if self._z_seed != query.seed:
            self._z_seed, self._z = query.seed, self.z(query.seed)
        self.theta += (sign * self.mu) * self._z

    def update(self, query, coef):
        self._z_seed = self._z = None
        self.theta += float(coef) * self.z(query.seed)   # regenerated from the seed
        return float(coef)

    def params(self):
        return self.theta.copy()

    def set_params(self, theta):
        self.theta = np.array(theta, dtype=np.float64)[:self.n_params].copy()

    def decay(self, factor, seed=0):
        self.theta *= factor


# Engine sources -----------------------------------------------------------------------------------

def engine_config(n_params, lanes=4, reuse="none", pool_size=None, step="leap",
                  generators=None, weight_format="Q4.12", coef_bits=16, coef_frac=20,
                  stochastic=True, shared=False, state_bits=32, coord=False,
                  mask="none", weights="bram") -> EngineConfig:
    """The engine configuration for a model of ``n_params`` weights.

    ``lanes`` is m (weights per cycle, the MAC's lane count); ``generators`` is n, the uniform
    generators: m for ``none`` and ``pregen``, m/2 by default for ``onthefly`` (n generators
    rotated over m lanes). The depth is ``n_params`` rounded up to a multiple of m.
    """
    if reuse not in REUSES:
        raise ValueError(f"Reuse strategy must be one of {', '.join(REUSES)}, not {reuse!r}")
    q = weight_format if isinstance(weight_format, Q) else parse_q(weight_format)
    m = int(lanes)
    if generators is None:
        generators = max(1, m // 2) if reuse == "onthefly" else m
    gen = GeneratorConfig(lanes=int(generators), out_lanes=m, step=step, reuse=reuse,
                          pool_size=pool_size if reuse == "pregen" else None, shared=shared,
                          state_bits=state_bits)
    return EngineConfig(generator=gen, depth=engine_depth(n_params, m), w_int=q.int_bits,
                        w_frac=q.frac_bits, coef_bits=coef_bits, coef_frac=coef_frac,
                        stochastic=stochastic, coord=coord, mask=mask, weights=weights)


class EngineSource(PerturbSource):
    """Weights in a perturbation engine (fixed point); every pass is an engine command.

    Parameters
    ----------
    n_params : int
    cfg : EngineConfig
        Its depth must hold ``n_params`` weights.
    engine : str
        ``"fused"`` (default: the golden model with fused MeZO passes,
        :class:`pezo.host.fused.FusedGoldenTransport`), ``"batched"`` (the golden model with
        the batched generator front end, one command per pass), ``"golden"`` (the plain golden
        model) or ``"amaranth"`` (the hardware in the Amaranth simulator).
    rounding : str
        Update-pass rounding of c*z: ``"stochastic"`` (default; needs ``cfg.stochastic``) or
        ``"nearest"``.
    coef_rounding : str
        Host rounding of c to the register grid: ``"stochastic"`` (default) or ``"nearest"``.
    pool_correct : bool
        ``pregen``: give every run's perturbations unit variance, whatever its pool. With a
        runtime scale, first load the scale digits that give the pool unit mean square (alpha =
        sqrt(N / sum u^2), the adaptive scaler's pool correction, exact up to the digits'
        quantisation). Then, for every scale mode (a ``fixed`` scale has no register to load),
        the host computes the exact mean square sigma^2 of the z values the pool delivers
        (:func:`pezo.sim.reuse.pool_mean_square`, averaged over the sign bits) and divides the
        mu and c registers by sigma: the engine applies mu_reg z = mu (z / sigma), so the
        trainer's z is z / sigma, of variance 1 for every run (``src.mu`` is the realised mu in
        those units, ``stats["z_sigma"]`` the run's sigma). Without it a fixed-scale pool of
        N = 1024 gives each run a variance between about 0.93 and 1.09 (docs/streams.md).
    """

    kind = "engine"

    def __init__(self, n_params, cfg, engine="fused", rounding="stochastic",
                 coef_rounding="stochastic", pool_correct=True):
        super().__init__(n_params)
        if not isinstance(cfg, EngineConfig):
            raise TypeError(f"Configuration must be an EngineConfig, not {cfg!r}")
        if cfg.depth < self.n_params:
            raise ValueError(f"Engine depth {cfg.depth} cannot hold {self.n_params} parameters")
        if isinstance(engine, str) and engine not in ENGINES:
            raise ValueError(f"Engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if rounding not in ROUNDINGS:
            raise ValueError(f"Rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
        if rounding == "stochastic" and not cfg.stochastic:
            raise ValueError("Stochastic rounding needs an engine built with stochastic=True")
        if coef_rounding not in ROUNDINGS:
            raise ValueError(f"Coefficient rounding must be one of {', '.join(ROUNDINGS)}, "
                             f"not {coef_rounding!r}")
        self.cfg = cfg
        self.engine = engine
        self.name = {"amaranth": "pezo-sim", "serial": "board"}.get(
            engine if isinstance(engine, str) else getattr(engine, "name", ""), "pezo")
        self.rounding, self.coef_rounding = rounding, coef_rounding
        self.pool_correct = pool_correct
        if engine == "fused":
            transport = FusedGoldenTransport(cfg)
        elif engine == "batched":
            transport = BatchedGoldenTransport(cfg)
        else:
            transport = engine
        self.eng = EngineClient(cfg, transport)
        self._fused = transport if engine == "fused" else None
        self.reuse = cfg.generator.reuse
        self._c_scale = 2.0 ** cfg.coef_frac
        self._c_max = (1 << (cfg.coef_bits - 1)) - 1
        fmt = self.eng.w_format
        self._w_lo = fmt.min_int / 2.0 ** fmt.frac_bits
        self._w_hi = fmt.max_int / 2.0 ** fmt.frac_bits
        self.pool_seed = None
        self._next_offset = None
        self.z_sigma = 1.0           # the run's z scale: the registers take mu / sigma, c / sigma
        self._mu_request = None

    def describe(self):
        g = self.cfg.generator
        s = f"{self.name} {g.reuse}"
        if g.reuse == "pregen":
            s += f" N={g.pool_size}"
        if g.reuse == "onthefly":
            s += f" n={g.lanes}"
        bank = "shared bank" if g.shared else "independent lanes"
        return f"{s} {g.step} {bank} m={self.cfg.lanes} Q{self.cfg.w_int}.{self.cfg.w_frac}"

    def reset(self, theta0, run_seed=0):
        self.set_params(theta0)
        self.set_active(None)           # a mask left by an earlier run
        self.eng.set_rounding(self.rounding)
        self._next_offset = None
        if self.reuse == "pregen":
            self.pool_seed = derive_seed(run_seed, 0x9001, bits=self.cfg.generator.seed_width)
            self.eng.load_seed(self.pool_seed)
            if self.pool_correct:
                self._correct_pool()
        self.eng.clear()
        if self._mu_request is not None:        # mu set before this run: same mu, new sigma
            self.set_mu(self._mu_request)

    def _correct_pool(self):
        g = self.cfg.generator
        pool = pool_of(g, self.pool_seed)
        digits = smodel.default_digits(g)
        if g.scale == "runtime":
            try:
                digits = smodel.csd_digits(smodel.pool_alpha(int(np.sum(pool * pool)),
                                                          g.pool_size), g)
            except ValueError:       # the pool's alpha is outside the runtime window
                digits = smodel.default_digits(g)
            self.eng.set_scale_digits(digits)
            self.stats["pool_alpha"] = smodel.realised_alpha(digits) / g.alpha0
        self.z_sigma = math.sqrt(pool_mean_square(g, pool, digits))
        self.stats["z_sigma"] = self.z_sigma

    def set_mu(self, mu):
        """The mu register gets mu / sigma (sigma = 1 unless a pregen pool is corrected); the
        realised mu in the trainer's units is returned and kept in ``self.mu``."""
        self._mu_request = mu
        v = self.eng.set_mu(mu / self.z_sigma)
        if v <= 0:
            raise ValueError(f"mu {mu!r} rounds to {v} in the coefficient register (resolution "
                             f"2^-{self.cfg.coef_frac}); use a larger mu")
        self.mu = v / self._c_scale * self.z_sigma
        return self.mu

    def prefetch(self, seeds):
        t = self.eng.transport
        if hasattr(t, "prefetch") and (self.reuse != "pregen" or self._fused is not None):
            t.prefetch(seeds)       # (pregen: the fused engine reads the sign streams ahead)

    def begin(self, seed):
        if self.reuse == "pregen":
            # Query k+1 starts query_stride words after query k (d/m rounded up to a stride
            # coprime with the pool's N/m words, so the starts visit every word), whatever
            # updates were skipped; its sign stream is keyed by the step seed (query_key).
            o = self.eng.offset if self._next_offset is None else self._next_offset
            g = self.cfg.generator
            self._next_offset = (o + query_stride(g, self.cfg.words)) % g.pool_words
            return Query(seed, o)
        return Query(seed)

    def perturb_pair(self, query):
        if self._fused is not None:
            out = self._fused.pair(query.seed, query.offset, self.n_params)
            if out is not None:
                return out
        return super().perturb_pair(query)

    def _replay(self, query):
        if query.offset is not None:
            self.eng.set_offset(query.offset, query_key(query.seed))
        else:
            self.eng.load_seed(query.seed)

    def perturb(self, query, sign):
        _check_sign(sign)
        self._replay(query)
        self.eng.perturb(sign)
        self._check_saturation()

    def quantise_coef(self, coef: float, seed=0) -> int:
        """c as the register integer: clipped to the range, rounded to the grid (stochastically
        with an RNG seeded by ``seed`` unless ``coef_rounding="nearest"``)."""
        x = float(coef) * self._c_scale
        if not math.isfinite(x):
            raise ValueError(f"Update coefficient must be finite, not {coef!r}")
        if abs(x) > self._c_max:
            self.stats["coef_clipped"] += 1
            x = math.copysign(self._c_max, x)
        if self.coef_rounding == "nearest":
            return int(np.rint(x))
        return _sround_scalar(x, seed, 0xC0EF)

    def update(self, query, coef):
        """theta += coef * z / sigma: the c register gets coef / sigma (rounded by
        :meth:`quantise_coef`); returns the coefficient applied, in the trainer's units."""
        v = self.quantise_coef(coef / self.z_sigma, query.seed)
        if v == 0:
            self.stats["coef_zero"] += 1
            return 0.0
        if self._fused is not None:
            sat = self._fused.update(query.seed, query.offset, v)
            if sat is not None:
                if sat:
                    self.stats["saturated_passes"] += 1
                    self.eng.clear()
                return v / self._c_scale * self.z_sigma
        self._replay(query)
        self.eng.update_int(v)
        self._check_saturation()
        return v / self._c_scale * self.z_sigma

    def _check_saturation(self):
        if self.eng.status()["saturated"]:
            self.stats["saturated_passes"] += 1
            self.eng.clear()

    def params(self):
        return self.eng.read_weights()[:self.n_params]

    def set_params(self, theta):
        theta = np.asarray(theta, dtype=np.float64)[:self.n_params]
        full = np.zeros(self.cfg.depth)
        clipped = np.clip(theta, self._w_lo, self._w_hi)
        n_clipped = int(np.count_nonzero(clipped != theta))
        if n_clipped:
            self.stats["write_clipped"] += n_clipped
        full[:self.n_params] = clipped
        if self.n_params < self.cfg.depth:      # keep the padding words as they are
            full[self.n_params:] = self.eng.read_weights()[self.n_params:]
        self.eng.write_weights(full)

    def decay(self, factor, seed=0):
        """Read the weights, scale by ``factor``, round stochastically to the weight grid (an RNG
        seeded by ``seed``; nearest rounding would erase a decay below half an LSB) and write
        them back: one READ and one WRITE of d/m words."""
        w = self.eng.read_weights(raw=True).astype(np.float64)
        self.eng.write_weights(_sround_array(w * float(factor), seed, 0xDECA), raw=True)

    def set_active(self, active):
        """RANGE when ``active`` is one word-aligned run of weights (``mask="range"`` engines),
        else the MASK bitmap (``mask="bitmap"``); the bitmap leaves the padding weights beyond
        n_params inactive."""
        cfg, m, d = self.cfg, self.cfg.lanes, self.cfg.depth
        if active is None:
            if cfg.mask != "none":
                self.eng.set_range(0, d)
            if cfg.mask == "bitmap":
                self.eng.set_mask(np.ones(d, dtype=bool))
            return
        full = np.zeros(d, dtype=bool)
        full[:self.n_params] = _check_active(active, self.n_params)
        idx = np.flatnonzero(full)
        if idx.size == 0:
            raise ValueError("Active mask selects no weight")
        first, end = int(idx[0]), int(idx[-1]) + 1
        run = idx.size == end - first
        aligned = first % m == 0 and (end % m == 0 or end == self.n_params)
        if run and aligned and cfg.mask != "none":
            end = -(-end // m) * m      # (the last word's padding weights are never read)
            self.eng.set_range(first, end)
            if cfg.mask == "bitmap":
                self.eng.set_mask(np.ones(d, dtype=bool))
            return
        if cfg.mask != "bitmap":
            raise ValueError(f"This mask needs an engine built with mask='bitmap' (this one has "
                             f"mask={cfg.mask!r}; RANGE takes one run of weights whose first "
                             f"and end are multiples of the lane count {m})")
        self.eng.set_range(0, d)
        self.eng.set_mask(full)

    def coord_add(self, index, value, seed=None):
        """COORD: value rounded to weight LSBs (to nearest, or stochastically when ``seed`` is
        given); 0 sends nothing. Needs an engine built with ``coord=True``."""
        index = _check_index(index, self.n_params)
        x = float(value) * 2.0 ** self.cfg.w_frac
        if not math.isfinite(x):
            raise ValueError(f"Coordinate change must be finite, not {value!r}")
        delta = int(np.rint(x)) if seed is None else _sround_scalar(x, seed, 0xC00D)
        lim = 1 << (self.cfg.w_bits - 1)
        if not -lim <= delta < lim:
            self.stats["coord_clipped"] += 1
            delta = max(-lim, min(lim - 1, delta))
        if delta == 0:
            self.stats["coord_zero"] += 1
            return 0.0
        self.eng.coord(index, delta)
        self._check_saturation()
        return delta / 2.0 ** self.cfg.w_frac

    def coord_value(self, index):
        index = _check_index(index, self.n_params)
        m = self.cfg.lanes
        word = self.eng.read_weights(start=index // m, count=1)
        return float(word[index % m])

    def write_block(self, start, values, seed=0):
        """Stochastic rounding to the weight grid (clipped to its range, counted in
        ``stats["write_clipped"]``); the words covering the block are read, changed and
        written back."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        _check_block(start, values.size, self.n_params)
        m, f = self.cfg.lanes, self.cfg.w_frac
        w0, w1 = start // m, -(-(start + values.size) // m)
        raw = self.eng.read_weights(start=w0, count=w1 - w0, raw=True).astype(np.int64)
        ints = _sround_array(values * 2.0 ** f, seed, 0xB10C)
        fmt = self.eng.w_format
        clipped = np.clip(ints, fmt.min_int, fmt.max_int)
        self.stats["write_clipped"] += int(np.count_nonzero(clipped != ints))
        raw[start - w0 * m:start - w0 * m + values.size] = clipped
        self.eng.write_weights(raw, start=w0, raw=True)

    def close(self):
        self.eng.transport.close()


def make_source(name, n_params, *, lanes=4, reuse="none", pool_size=None, step="leap",
                generators=None, weight_format="Q4.12", coef_bits=16, coef_frac=20,
                rounding="stochastic", coef_rounding="stochastic", engine=None,
                pool_correct=True, shared=False, state_bits=32, port=None,
                engine_cfg=None, coord=False, mask="none", weights="bram") -> PerturbSource:
    """A perturbation source by name (one of :data:`SOURCES`); engine options apply to the
    engine sources only. ``engine`` overrides the transport of ``pezo`` (``"fused"`` by
    default, ``"batched"`` or ``"golden"``). ``board`` runs the engine on a board through
    ``port`` (a serial device or pyserial URL; ``"sim"`` starts the Verilator-built board of the
    configuration); ``engine_cfg`` (an EngineConfig) replaces the configuration the options
    describe (a real board's is the one its bitstream was built with)."""
    if name not in SOURCES:
        raise ValueError(f"Source must be one of {', '.join(SOURCES)}, not {name!r}")
    if name in FLOAT_SOURCES:
        return FloatSource(n_params, name)
    if reuse == "pregen" and pool_size is None:
        pool_size = 1024
    cfg = engine_config(n_params, lanes, reuse, pool_size, step, generators, weight_format,
                        coef_bits, coef_frac, stochastic=rounding == "stochastic", shared=shared,
                        state_bits=state_bits, coord=coord, mask=mask, weights=weights)
    if name == "board":
        if port is None:
            raise ValueError("Source 'board' needs a serial port (--port DEVICE, "
                             "socket://HOST:N, or 'sim' for the Verilator-built board)")
        if engine_cfg is not None:
            cfg = engine_cfg
        board = SimBoard(cfg) if port == "sim" else None
        try:
            engine = SerialTransport(cfg, board.port if board else port, closing=board)
        except BaseException:
            if board:
                board.close()
            raise
    elif name == "pezo-sim":
        engine = "amaranth"
    elif engine is None:
        engine = "fused"
    elif engine == "amaranth":
        raise ValueError("Source 'pezo' runs the golden model; use source 'pezo-sim' for the "
                         "Amaranth simulator")
    return EngineSource(n_params, cfg, engine, rounding, coef_rounding, pool_correct)


# Pools ------------------------------------------------------------------------------------------

_POOLS = collections.OrderedDict()


def pool_of(cfg, seed) -> np.ndarray:
    """The pregen pool after ``SEED seed``: (N/m, m) uniform integers, equal to
    ``ReuseModel(cfg, seed).pool`` (pool[c*n + l] = bank number g[c, l])."""
    key = (cfg, int(seed))
    pool = _POOLS.get(key)
    if pool is None:
        bank = bank_first_cycles(cfg, [int(seed)], cfg.pool_size // cfg.lanes)[0]
        pool = bank.reshape(cfg.pool_words, cfg.out_lanes)
        pool.setflags(write=False)
        _POOLS[key] = pool
        while len(_POOLS) > 4:
            _POOLS.popitem(last=False)
    return pool
