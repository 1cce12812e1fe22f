"""ZO-SGD on real data in the MeZO form, through a perturbation source (float, golden engine, or the
simulated hardware): ``pezo train``.

One step t (learning rate eta_t from the schedule, a minibatch B_t, q queries):

    for i in 0..q-1:                     query seed s_{t,i} = derive_seed(run seed, 3, t, i)
        pass 1  theta += mu*z_i          L+ = L(theta; B_t)       (host forward pass)
        pass 2  theta -= 2*mu*z_i        L- = L(theta; B_t)
        pass 3  theta += mu*z_i          (restores theta; bit-exact in the engine unless saturated)
        g_i = (L+ - L-) / (2*mu)         (mu = the realised register value)
    for i in 0..q-1:
        pass 4  theta += c_i * z_i       c_i = -eta_t * g_i / q   (z_i regenerated, never stored)
    weight decay (if any): theta *= (1 - eta_t * lambda)

Passes 1-3 are one call, ``source.perturb_pair`` (it returns theta+ and theta-; the default
engine fuses the three passes). The update is theta -= eta_t * (1/q) * sum_i g_i z_i: the q
projected gradients are all taken at the same theta and averaged (MeZO's n > 1 form), then
applied as q update passes, each replaying its own z_i. Weight decay is not an engine command:
the host reads the weights, scales them and writes them back (for the engine, rounded
stochastically to the weight grid), once per step.

Minibatches are drawn without replacement from a per-epoch shuffle seeded by the run seed (the
same for every source, so sources differ only in z). ``batch=0`` uses the full training set. The
learning curve is evaluated every ``eval_every`` steps on the full train and validation splits;
early stopping stops after ``patience`` evaluations without a better validation loss, and the best
validation checkpoint is restored before the test evaluation (``restore_best``).

Defaults. A field left ``None`` is filled by :meth:`TrainConfig.resolve`, first from the board
(``board``: its engine's weight format, and nearest rounding if it has no stochastic rounding),
then from the method's own defaults (:func:`method_defaults`: what ``--algo NAME`` needs to work,
e.g. DeepZero's CGE learning rate), then from the data set (:data:`DEFAULTS`, chosen so the
``pezo`` source trains well on each data set with the default engine: Q4.12 weights, 16-bit
coefficients scaled by 2^-20, stochastic rounding). An explicit value always wins; ``TrainResult.defaults`` records every value that was filled in and
where it came from. Both are documented in ``docs/training.md`` and ``docs/algorithms.md``.

What a run reports beside its accuracy (``TrainResult``, the CLI summary, ``log.json``):

* ``saturation``: engine passes that raised the sticky saturation flag, weights clipped when
  the host wrote them (ElasticZO's last layer), coefficients clipped to the register; a run with
  any saturated pass or clipped write gets a warning;
* ``updates``: the fraction of coordinate updates that rounded to nothing (the weight did not
  move), watched on the engine in one step per ``eval_every``; above :data:`ZERO_UPDATE_WARN` in
  the first :data:`ZERO_UPDATE_EARLY` of the steps the run gets a warning (the update is below
  the weight grid: raise the learning rate);
* ``setup_time`` (data, model, source: a board's build and start, the initial weights) apart from
  ``train_time`` (the steps and evaluations), ``steps_per_s`` over the latter, and ``link``: the
  counters of a serial link (frames, bytes, retries, bad CRC, timeouts, lost replies).
"""

import dataclasses
from dataclasses import dataclass, field
import math
import time
import warnings

import numpy as np

from pezo.boards.targets import BOARDS, get_board
from pezo.config import RETIRED_STEPS, WEIGHT_MEMORIES
from pezo.host.algorithms import ALGOS, ESTIMATORS, make_algorithm
from pezo.host.data import TRAIN_DATASETS, is_table_spec, load_dataset
from pezo.host.models import ACTIVATIONS, MODELS, make_model
from pezo.host.perturb import (ENGINE_SOURCES, REUSES, ROUNDINGS, SOURCES, STEPS, EngineSource,
                               derive_seed, derive_seeds, make_source)
from pezo.host.serial_link import SerialTransport
from pezo.host.streamed import make_streamed_source

__all__ = ["SCHEDULES", "DEFAULTS", "ZERO_UPDATE_WARN", "ZERO_UPDATE_EARLY", "TrainConfig",
           "TrainResult", "TrainingWarning", "train", "lr_at", "auto_pool_size", "record_point",
           "method_defaults", "build_source", "link_stats"]

SCHEDULES = ("constant", "cosine", "step")

# Per (dataset, model): steps, lr (eta), mu, batch. Chosen from a sweep on this project's machine
# (gaussian and pezo sources, 3 seeds; docs/training.md): constant eta, the largest that does not
# saturate the coefficient register more than a handful of times per run. ``synthetic`` (issue
# 23's reproducer) takes wine's values.
DEFAULTS = {
    ("digits", "logreg"): dict(steps=8000, lr=5e-3, mu=5e-3, batch=64),
    ("digits", "mlp"): dict(steps=8000, lr=5e-3, mu=5e-3, batch=64),
    ("breast_cancer", "logreg"): dict(steps=2000, lr=5e-3, mu=5e-3, batch=32),
    ("breast_cancer", "mlp"): dict(steps=2000, lr=5e-3, mu=5e-3, batch=32),
    ("wine", "logreg"): dict(steps=2000, lr=1e-2, mu=5e-3, batch=32),
    ("wine", "mlp"): dict(steps=2000, lr=1e-2, mu=5e-3, batch=32),
    ("synthetic", "logreg"): dict(steps=2000, lr=1e-2, mu=5e-3, batch=32),
    ("synthetic", "mlp"): dict(steps=2000, lr=1e-2, mu=5e-3, batch=32),
}
#: Your own data (a file or sklearn:NAME): the smaller built-in sets' values.
OWN_DATA_DEFAULTS = dict(steps=2000, lr=5e-3, mu=5e-3, batch=32)

#: A run warns when more than this fraction of the coordinate updates watched in its first
#: ZERO_UPDATE_EARLY of the steps left the weight unchanged (docs/training.md, "Updates that round
#: to nothing", for the measurements behind both values).
ZERO_UPDATE_WARN = 0.25
ZERO_UPDATE_EARLY = 0.2


class TrainingWarning(UserWarning):
    """A training run that saturated its engine or whose updates mostly rounded to nothing (the
    same text is kept in ``TrainResult.warnings``)."""


def method_defaults(algo, estimator="cge") -> dict:
    """The defaults ``--algo NAME`` brings (fields of :class:`TrainConfig`; an explicit value
    wins). ``deepzero`` with the ``cge`` estimator: lr 1.0 (DeepZero's SGD 0.1 with momentum 0.9,
    the effective step; with the data sets' 5e-3, 71-77 % of its coordinate updates over a run
    rounded to 0 in Q4.12). ``elasticzo-int8``: the integer ReLU network in 8-bit engine weights
    (docs/algorithms.md, "ElasticZO-INT8", for the measurements behind each value)."""
    if algo == "deepzero" and estimator == "cge":
        return {"lr": 1.0}
    if algo == "elasticzo-int8":
        return dict(INT8_DEFAULTS)
    return {}


#: ElasticZO-INT8's defaults (docs/algorithms.md, "Saturation", has the measurements): the
#: integer ReLU network; Q2.6 weights (range +-2: Q1.7's +-1 clipped the last layer in every run
#: and saturated the first layer's passes on the synthetic set); mu of one weight LSB, so the
#: perturbation is round(z), -2..2 LSBs (at 0.01, Q2.6 got Q1.7's -1..1 and lost 2.6 points on
#: digits); a last-layer step of 0.02 (at 0.05 the last layer still reached +-2 on wine and the
#: synthetic set); nearest rounding in the update pass (stochastic lost 3.4 points on digits).
INT8_DEFAULTS = {"activation": "relu", "weight_format": "Q2.6", "mu": 2.0 ** -6, "bp_lr": 0.02,
                 "rounding": "nearest"}


@dataclass
class TrainConfig:
    """Everything that defines a training run (``None``: a default, see :meth:`resolve`)."""

    dataset: str = "digits"         # a built-in name, or a .csv/.parquet/.npz file, sklearn:NAME
    label: str | None = None        # your own CSV/Parquet data: the label column (None: the last)
    split: str | None = None        # your own data: a file naming each row's split
    model: str = "logreg"
    hidden: int = 16
    activation: str | None = None   # None: tanh (relu for elasticzo-int8)
    source: str = "pezo"
    reuse: str = "none"
    pool_size: int | None = None
    step: str = "leap"
    stepping: str | None = None     # renamed `step`: refused with that message
    lanes: int = 4
    generators: int | None = None
    shared: bool | None = None
    state_bits: int = 32
    weight_format: str | None = None     # None: Q4.12 (the method's or the board's if it has one)
    coef_bits: int = 16
    coef_frac: int = 20
    rounding: str | None = None     # None: stochastic (the method's or the board's if it has one)
    coef_rounding: str = "stochastic"
    engine: str | None = None
    weights: str = "bram"           # bram, spram (same golden model), stream (ZO2-style blocks)
    block_words: int | None = None  # weights="stream": words per STREAM block (None: all)
    port: str | None = None         # source "board": serial device, pyserial URL or "sim"
    board: str | None = None        # engine sources: use this board's default engine config
    steps: int | None = None
    seed: int = 0
    lr: float | None = None
    mu: float | None = None
    q: int = 1
    batch: int | None = None
    weight_decay: float = 0.0
    schedule: str = "constant"
    patience: int = 0
    eval_every: int | None = None
    restore_best: bool = True
    # the ZO method (pezo.host.algorithms, docs/algorithms.md) and its own settings
    algo: str = "mezo"
    top_k: int = 0                  # ranksgd: points the oracle ranks (0: all 2q)
    rank_noise: float = 0.0         # ranksgd: std of Gaussian noise on the losses it ranks
    sparsity: float = 0.0           # deepzero: fraction of the weight tensors left out
    estimator: str = "cge"          # deepzero: cge (coordinate-wise) or rge (masked MeZO)
    mask_every: int | None = None   # deepzero: steps between mask re-draws (None: steps // 10)
    bp_lr: float | None = None      # elasticzo: learning rate of the backpropagated last layer

    def resolved(self) -> "TrainConfig":
        """A copy with the defaults filled in and every choice checked."""
        return self.resolve()[0]

    def resolve(self) -> tuple:
        """(:meth:`resolved` config, the defaults applied): the second is a dict field ->
        {"value", "from"} of every field that was ``None`` and was filled in, ``from`` naming
        the rule ("board ice40", "algo deepzero", "data set wine/mlp", "trainer"), which are
        tried in that order."""
        c = dataclasses.replace(self)
        applied = {}

        def fill(name, value, origin):
            if getattr(c, name) is None:
                setattr(c, name, value)
                applied[name] = {"value": value, "from": origin}

        if c.stepping is not None:
            raise ValueError("TrainConfig field 'stepping' was renamed 'step' (as in the "
                             "generator configuration)")
        if c.step in RETIRED_STEPS:
            raise ValueError(f"Step mode {c.step!r} was removed: {RETIRED_STEPS[c.step]}")
        for name, value, choices in (("Algorithm (algo)", c.algo, ALGOS),
                                     ("Estimator", c.estimator, ESTIMATORS),
                                     ("Dataset", c.dataset, TRAIN_DATASETS),
                                     ("Model", c.model, MODELS)):
            if name == "Dataset" and is_table_spec(value):
                continue
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        if c.weights not in WEIGHT_MEMORIES:
            raise ValueError(f"Weight memory (weights) must be one of "
                             f"{', '.join(WEIGHT_MEMORIES)}, not {c.weights!r}")
        if c.board is not None:
            if c.board not in BOARDS:
                raise ValueError(f"Board must be one of {', '.join(BOARDS)}, not {c.board!r}")
            if c.source not in ENGINE_SOURCES:
                raise ValueError(f"A board gives the engine configuration of engine sources "
                                 f"({', '.join(ENGINE_SOURCES)}), not of source {c.source!r}")
            bcfg = get_board(c.board).default
            board_format = f"Q{bcfg.w_int}.{bcfg.w_frac}"
            if c.weight_format is not None and c.weight_format != board_format:
                raise ValueError(f"Board {c.board}'s engine has {board_format} weights, not "
                                 f"{c.weight_format}: leave the weight format out with a board")
            if c.weights != bcfg.weights:
                raise ValueError(f"Board {c.board}'s engine keeps its weights in "
                                 f"{bcfg.weights!r}, not {c.weights!r}: leave weights out with "
                                 f"a board")
            fill("weight_format", board_format, f"board {c.board}")
            if not bcfg.stochastic:
                fill("rounding", "nearest", f"board {c.board} (no stochastic rounding)")
        for k, v in method_defaults(c.algo, c.estimator).items():
            fill(k, v, f"algo {c.algo}")
        fill("weight_format", "Q4.12", "trainer")
        fill("rounding", "stochastic", "trainer")
        for name, value, used in (("activation", "tanh", c.model == "mlp"),
                                  ("bp_lr", 0.05, c.algo in ("elasticzo", "elasticzo-int8"))):
            if used:
                fill(name, value, "trainer")
            elif getattr(c, name) is None:      # unused by this run: not worth a log line
                setattr(c, name, value)
        for name, value, choices in (("Source", c.source, SOURCES), ("Reuse strategy", c.reuse,
                                                                     REUSES),
                                     ("Step mode", c.step, STEPS),
                                     ("Schedule", c.schedule, SCHEDULES),
                                     ("Activation", c.activation, ACTIVATIONS),
                                     ("Rounding", c.rounding, ROUNDINGS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        if c.port is not None and c.source != "board":
            raise ValueError(f"A port applies to source 'board' only, not {c.source!r}")
        if (c.label is not None or c.split is not None) and not is_table_spec(c.dataset):
            raise ValueError(f"A label column and a split file apply to your own data (a .csv, "
                             f".parquet or .npz file, or sklearn:NAME), not to the built-in set "
                             f"{c.dataset!r}")
        if is_table_spec(c.dataset):
            for k in ("steps", "lr", "mu", "batch"):
                fill(k, OWN_DATA_DEFAULTS[k], "own data")
        else:
            d = DEFAULTS[(c.dataset, c.model)]
            for k in ("steps", "lr", "mu", "batch"):
                fill(k, d[k], f"data set {c.dataset}/{c.model}")
        for name, v, lo in (("Step count (steps)", c.steps, 1), ("Query count (q)", c.q, 1),
                            ("Batch size (batch)", c.batch, 0), ("Patience", c.patience, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
        for name, v in (("Learning rate (lr)", c.lr), ("mu", c.mu)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, not {v!r}")
        if not (math.isfinite(c.weight_decay) and c.weight_decay >= 0):
            raise ValueError(f"Weight decay must be a non-negative number, not {c.weight_decay!r}")
        if isinstance(c.top_k, bool) or not isinstance(c.top_k, int) \
                or not 0 <= c.top_k <= 2 * c.q:
            raise ValueError(f"Ranked points (top_k) must be an integer in 0..2q = {2 * c.q} "
                             f"(0: all), not {c.top_k!r}")
        for name, v in (("Rank noise (rank_noise)", c.rank_noise),):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a non-negative number, not {v!r}")
        if not (isinstance(c.sparsity, (int, float)) and 0 <= c.sparsity < 1):
            raise ValueError(f"Sparsity must be a number in [0, 1), not {c.sparsity!r}")
        if not (isinstance(c.bp_lr, (int, float)) and math.isfinite(c.bp_lr) and c.bp_lr > 0):
            raise ValueError(f"Backpropagation learning rate (bp_lr) must be a positive "
                             f"number, not {c.bp_lr!r}")
        if c.algo == "deepzero":
            fill("mask_every", max(1, c.steps // 10), "trainer")
        elif c.mask_every is None:
            c.mask_every = max(1, c.steps // 10)        # unused by the other methods
        if isinstance(c.mask_every, bool) or not isinstance(c.mask_every, int) \
                or c.mask_every < 1:
            raise ValueError(f"Mask re-draw interval (mask_every) must be an integer >= 1, "
                             f"not {c.mask_every!r}")
        if c.algo in ("elasticzo", "elasticzo-int8") and c.model != "mlp":
            raise ValueError(f"Algorithm {c.algo} trains the last layer by backpropagation and "
                             f"the others by ZO: it needs model 'mlp', not {c.model!r}")
        if c.weights == "stream":
            if c.algo != "mezo" or c.q != 1:
                raise ValueError(f"Streamed weights defer one update per step: algo 'mezo' "
                                 f"with q = 1, not algo {c.algo!r} with q = {c.q}")
            if c.source not in ("pezo", "pezo-sim") or c.reuse == "pregen":
                raise ValueError(f"Streamed weights run on source pezo or pezo-sim with reuse "
                                 f"none or onthefly, not source {c.source!r} with reuse "
                                 f"{c.reuse!r}")
        elif c.block_words is not None:
            raise ValueError("A block size (block_words) applies to weights 'stream' only")
        fill("eval_every", max(1, c.steps // 50), "trainer")
        if c.reuse == "pregen" and c.pool_size is None:
            c.pool_size = auto_pool_size(c)
        if c.reuse != "pregen":
            c.pool_size = None
        if c.shared is None:
            # The hardware's default bank: one LFSR per lane (every bank layout meets the stream
            # contract, docs/streams.md).
            c.shared = False
        return c, applied

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    config: dict
    source: str
    model: str
    n_params: int
    depth: int | None
    mu: float
    curve: list = field(default_factory=list)      # {step, batch_loss, train_loss, val_loss, ...}
    test_loss: float = float("nan")
    test_acc: float = float("nan")
    val_loss: float = float("nan")
    val_acc: float = float("nan")
    train_loss: float = float("nan")
    train_acc: float = float("nan")
    initial_test_acc: float = float("nan")
    best_step: int = 0
    steps_run: int = 0
    stopped_early: bool = False
    forward_passes: int = 0          # training forward passes (2 per query per step, minibatch)
    eval_passes: int = 0             # forward passes of the learning-curve evaluations
    wall_time: float = 0.0           # setup_time + train_time + the final evaluation
    source_time: float = 0.0         # the perturbation path: step seeds, prefetch, passes, update
    forward_time: float = 0.0        # the training forward passes (L+ and L-)
    stats: dict = field(default_factory=dict)       # the source's own counters
    setup_time: float = 0.0          # data, model, source (a board's build and start), theta0
    train_time: float = 0.0          # the steps and the learning-curve evaluations
    saturation: dict = field(default_factory=dict)  # see the module docstring
    updates: dict = field(default_factory=dict)     # zero-rounded coordinate updates (measured)
    link: dict = field(default_factory=dict)        # serial link counters (source board)
    defaults: dict = field(default_factory=dict)    # TrainConfig.resolve's applied defaults
    data: dict = field(default_factory=dict)        # your own data: classes, features, sizes
    params: list = field(default_factory=list)      # the trained parameters (float), for export
    warnings: list = field(default_factory=list)

    @property
    def steps_per_s(self) -> float:
        """Steps per second of training (``train_time``: a board's build and start left out;
        the wall time for a result that has no training time of its own)."""
        t = self.train_time or self.wall_time
        return self.steps_run / t if t else float("nan")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["steps_per_s"] = self.steps_per_s
        return d


def auto_pool_size(cfg) -> int:
    """The default pregen pool: the hardware's default, 1024 numbers, rounded up to a multiple of
    the lane count m. Reused pool numbers come back with fresh signs (docs/streams.md), so the
    pool sets only the magnitudes' variety, not the number of distinct perturbations (the
    earlier rule, 8 d, worked around pools that repeated verbatim)."""
    return -(-1024 // cfg.lanes) * cfg.lanes       # a multiple of the lane count m


def lr_at(schedule: str, lr: float, t: int, steps: int) -> float:
    """eta_t: ``constant``; ``cosine`` from lr at t = 0 to 0 at t = steps; ``step`` multiplies by
    0.1 at 50 % and again at 75 % of the steps."""
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * t / steps))
    if schedule == "step":
        return lr * (0.1 ** ((t >= steps // 2) + (t >= (3 * steps) // 4)))
    raise ValueError(f"Schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")


class _Batches:
    """Minibatch indices: consecutive chunks of a per-epoch permutation (seeded)."""

    def __init__(self, n, batch, seed):
        self.n, self.batch = n, (batch if 0 < batch < n else n)
        self.rng = np.random.default_rng(seed)
        self.perm, self.at = None, n

    def next(self):
        if self.batch == self.n:
            return None
        if self.at + self.batch > self.n:
            self.perm, self.at = self.rng.permutation(self.n), 0
        idx = self.perm[self.at:self.at + self.batch]
        self.at += self.batch
        return idx


PREFETCH = 64       # steps of seeds announced to the source at a time


def train(config=None, *, progress=False, src=None, log=None, **overrides) -> TrainResult:
    """Run ZO-SGD; ``config`` is a :class:`TrainConfig` (or None), ``overrides`` its fields.

    ``src`` may be a ready :class:`~pezo.host.perturb.PerturbSource` (it must fit the model);
    ``progress`` shows a rich progress bar; ``log`` is called with each learning-curve point.
    The BLAS thread pool is limited to one thread while training: the forward passes are small
    matrix products, for which extra threads only add synchronisation (several times slower on a
    loaded 2-core machine). A run that saturates its engine, or whose updates mostly round to
    nothing, issues a :class:`TrainingWarning` (kept in ``TrainResult.warnings`` too).
    """
    cfg, applied = dataclasses.replace(config or TrainConfig(), **overrides).resolve()
    try:
        # lazy import: threadpoolctl is heavy and needed only here
        from threadpoolctl import threadpool_limits
    except ImportError:                 # scikit-learn brings it; without it, run as is
        return _train(cfg, applied, progress, src, log)
    with threadpool_limits(limits=1, user_api="blas"):
        return _train(cfg, applied, progress, src, log)


def build_source(cfg, n_params):
    """The perturbation source a resolved :class:`TrainConfig` describes, for ``n_params``
    weights: streamed weights, or a source of :func:`~pezo.host.perturb.make_source` with the
    algorithm's engine options; with ``cfg.board`` every engine source (the golden engine, the
    simulated hardware, a board) runs that board's default engine configuration."""
    if cfg.weights == "stream":
        return make_streamed_source(cfg.source, n_params, block_words=cfg.block_words,
                                    lanes=cfg.lanes, reuse=cfg.reuse, step=cfg.step,
                                    generators=cfg.generators, weight_format=cfg.weight_format,
                                    coef_bits=cfg.coef_bits, coef_frac=cfg.coef_frac,
                                    rounding=cfg.rounding, coef_rounding=cfg.coef_rounding,
                                    shared=cfg.shared, state_bits=cfg.state_bits)
    board = get_board(cfg.board).default if cfg.board else None
    if board is not None and cfg.source in ("pezo", "pezo-sim"):
        engine = "amaranth" if cfg.source == "pezo-sim" else (cfg.engine or "fused")
        if engine == "amaranth" and cfg.source == "pezo":
            raise ValueError("Source 'pezo' runs the golden model; use source 'pezo-sim' for "
                             "the Amaranth simulator")
        return EngineSource(n_params, board, engine, cfg.rounding, cfg.coef_rounding)
    return make_source(cfg.source, n_params, lanes=cfg.lanes, reuse=cfg.reuse,
                       pool_size=cfg.pool_size, step=cfg.step,
                       generators=cfg.generators, weight_format=cfg.weight_format,
                       coef_bits=cfg.coef_bits, coef_frac=cfg.coef_frac,
                       rounding=cfg.rounding, coef_rounding=cfg.coef_rounding,
                       engine=cfg.engine, shared=cfg.shared, state_bits=cfg.state_bits,
                       port=cfg.port, engine_cfg=board, weights=cfg.weights,
                       **ALGOS[cfg.algo].engine(cfg))


def record_point(res, step, recent, train, val, eta, log=None, bar=None):
    """One learning-curve point at ``step``: the mean of the ``recent`` batch losses, the
    (loss, accuracy) of the ``train`` and ``val`` evaluations and the learning rate, appended
    to ``res.curve`` (two evaluation passes counted), passed to ``log`` and shown on ``bar``
    (the trainers' shared bookkeeping: :func:`train` and :func:`pezo.host.dist.train_dist`)."""
    (tr_loss, tr_acc), (va_loss, va_acc) = train, val
    res.eval_passes += 2
    point = {"step": step, "batch_loss": float(np.mean(recent)), "train_loss": tr_loss,
             "train_acc": tr_acc, "val_loss": va_loss, "val_acc": va_acc, "lr": eta}
    res.curve.append(point)
    if log:
        log(point)
    if bar:
        bar[0].update(bar[1], completed=step, info=f"val loss {va_loss:.3f} acc {va_acc:.3f}")
    return point


def _train(cfg, applied, progress, src, log):
    t_start = time.perf_counter()
    ds = load_dataset(cfg.dataset, cfg.label, cfg.split)
    model = make_model(cfg.model, ds.n_features, ds.n_classes, cfg.hidden, cfg.activation)
    source = src
    own = source is None
    if own:
        source = build_source(cfg, model.n_params)
    try:
        theta0 = model.init(derive_seed(cfg.seed, 1))
        source.reset(theta0, cfg.seed)
        init_clipped = int(source.stats.get("write_clipped", 0))   # theta0 outside the format
        mu = source.set_mu(cfg.mu)
        res = TrainResult(cfg.to_dict(), source.describe(), model.describe(), model.n_params,
                          getattr(getattr(source, "cfg", None), "depth", None), mu,
                          defaults=applied)
        if ds.classes is not None:      # your own data: how its labels became 0..K-1
            res.data = {"source": ds.name, "classes": list(ds.classes),
                        "features": list(ds.features), "sizes": ds.sizes()}
        fwd = [0.0]

        def loss(theta, X, y):          # the training forward passes, timed
            c0 = time.perf_counter()
            out = model.loss(theta, X, y)
            fwd[0] += time.perf_counter() - c0
            return out

        algo = make_algorithm(cfg, model, source, loss)
        algo.setup(ds)
        snap = source.params()          # the weights before the next watched step
        res.initial_test_acc = algo.evaluate(snap, ds.X_test, ds.y_test)[1]
    except BaseException:
        if own:
            source.close()
        raise
    # zero-rounded updates: watched on engines every eval_every steps (the step after an
    # evaluation, whose read gives the weights before it); streamed weights are not read
    # mid-step (a read would flush their deferred update)
    watch = getattr(source, "kind", "") == "engine" and cfg.weights != "stream"
    upd = {"watched_steps": 0, "coordinates": 0, "zero": 0}
    early = {"steps": max(1, math.ceil(ZERO_UPDATE_EARLY * cfg.steps)), "watched_steps": 0,
             "coordinates": 0, "zero": 0}
    batches = _Batches(len(ds.y_train), cfg.batch, derive_seed(cfg.seed, 2))
    best = (math.inf, None, 0)
    bad = 0
    recent = []
    t_src = t_fwd = 0.0
    bar = _progress(progress, cfg)
    clock = time.perf_counter
    t_loop = clock()
    res.setup_time = t_loop - t_start
    try:
        for t in range(cfg.steps):
            if t % PREFETCH == 0:       # the step seeds of the next PREFETCH steps, announced
                c0 = clock()
                steps = np.arange(t, min(t + PREFETCH, cfg.steps))
                seeds = derive_seeds(cfg.seed, 3, steps[:, None],
                                     np.arange(cfg.q)[None, :]).reshape(-1).tolist()
                source.prefetch(seeds)
                t_src += clock() - c0
            eta = lr_at(cfg.schedule, cfg.lr, t, cfg.steps)
            idx = batches.next()
            Xb, yb = (ds.X_train, ds.y_train) if idx is None else (ds.X_train[idx],
                                                                   ds.y_train[idx])
            at = (t % PREFETCH) * cfg.q
            c0, f0 = clock(), fwd[0] + algo.fwd_time
            recent += algo.step(t, Xb, yb, eta, seeds[at:at + cfg.q])
            c1 = clock()
            if watch and snap is not None:          # untimed: not part of the step
                moved = _count_updates(upd, snap, source.params(), algo.updated())
                if t < early["steps"]:
                    _count_updates(early, moved=moved)
            snap = None
            c2 = clock()
            if cfg.weight_decay:
                source.decay(1.0 - eta * cfg.weight_decay, derive_seed(cfg.seed, 4, t))
            f1 = fwd[0] + algo.fwd_time - f0
            t_fwd += f1
            t_src += clock() - c0 - (c2 - c1) - f1
            res.forward_passes = algo.forward_passes
            res.steps_run = t + 1
            last = t + 1 == cfg.steps
            if (t + 1) % cfg.eval_every == 0 or last:
                theta = snap = source.params()
                tr_loss, tr_acc = algo.evaluate(theta, ds.X_train, ds.y_train)
                va_loss, va_acc = algo.evaluate(theta, ds.X_val, ds.y_val)
                record_point(res, t + 1, recent, (tr_loss, tr_acc), (va_loss, va_acc), eta,
                             log, bar)
                recent = []
                if va_loss < best[0] - 1e-9:
                    best, bad = (va_loss, theta, t + 1), 0
                else:
                    bad += 1
                if cfg.patience and bad >= cfg.patience:
                    res.stopped_early = not last
                    break
        res.train_time = clock() - t_loop
        if cfg.restore_best and best[1] is not None and best[2] != res.steps_run:
            source.set_params(best[1])
        res.best_step = best[2] if cfg.restore_best and best[1] is not None else res.steps_run
        theta = source.params()
        res.params = np.asarray(theta, dtype=np.float64).reshape(-1)[:model.n_params].tolist()
        res.train_loss, res.train_acc = algo.evaluate(theta, ds.X_train, ds.y_train)
        res.val_loss, res.val_acc = algo.evaluate(theta, ds.X_val, ds.y_val)
        res.test_loss, res.test_acc = algo.evaluate(theta, ds.X_test, ds.y_test)
        res.stats = {k: (float(v) if isinstance(v, float) else int(v))
                     for k, v in source.stats.items()}
        res.link = link_stats(source)
    finally:
        if bar:
            bar[0].stop()
        if own:
            source.close()
    res.saturation = _saturation(source, algo, init_clipped)
    if watch and upd["coordinates"]:
        upd["fraction"] = upd["zero"] / upd["coordinates"]
        upd["early_steps"] = early["steps"]
        upd["early_fraction"] = early["zero"] / early["coordinates"]
        res.updates = upd
    for msg in _warnings(cfg, source, res):
        res.warnings.append(msg)
        warnings.warn(msg, TrainingWarning, stacklevel=3)
    res.wall_time = time.perf_counter() - t_start
    res.source_time, res.forward_time = t_src, t_fwd
    return res


def _count_updates(upd, before=None, after=None, active=None, moved=None):
    """Count one step's coordinate updates into ``upd``: the coordinates the step's ZO update
    acts on (``active``, None: all), and those whose weight did not move (the net change of
    the step's updates rounded to nothing). Returns the moved flags (or counts ``moved``)."""
    if moved is None:
        moved = after != before
        if active is not None:
            moved = moved[active]
    upd["watched_steps"] += 1
    upd["coordinates"] += int(moved.size)
    upd["zero"] += int(moved.size - np.count_nonzero(moved))
    return moved


def link_stats(source) -> dict:
    """The counters of a source's serial link (``SerialTransport.stats``, whatever keys it
    keeps: frames, bytes, retries, duplicates, bad CRC, timeouts, lost replies); {} without a
    link."""
    t = getattr(getattr(source, "eng", None), "transport", None)
    if not isinstance(t, SerialTransport):
        return {}
    return {k: (float(v) if isinstance(v, float) else int(v))
            for k, v in t.stats.items() if isinstance(v, (int, float))}


def _saturation(source, algo, init_clipped) -> dict:
    """The run's saturation counts (module docstring); {} for a float source."""
    if getattr(source, "kind", "") != "engine":
        return {}
    st = source.stats
    return {"saturated_passes": int(st.get("saturated_passes", 0)),
            "clipped_writes": int(st.get("write_clipped", 0)) - init_clipped
            + int(algo.stats.get("head_clipped", 0)),
            "clipped_init": init_clipped,
            "clipped_coefs": int(st.get("coef_clipped", 0)),
            "clipped_coords": int(st.get("coord_clipped", 0))}


def _warnings(cfg, source, res):
    ecfg = getattr(source, "cfg", None)
    fmt = f"Q{ecfg.w_int}.{ecfg.w_frac}" if ecfg is not None else "?"
    sat = res.saturation
    if sat.get("saturated_passes") or sat.get("clipped_writes"):
        lim = 2.0 ** (ecfg.w_int - 1)
        yield (f"{cfg.algo} on {cfg.dataset}/{cfg.model}, seed {cfg.seed}: "
               f"{sat['saturated_passes']} engine passes saturated and "
               f"{sat['clipped_writes']} weight writes were clipped: weights reached the "
               f"limits of {fmt} (+-{lim:g}); see docs/algorithms.md, 'Saturation'")
    frac = res.updates.get("early_fraction", 0.0)
    if frac > ZERO_UPDATE_WARN:
        yield (f"{cfg.algo} on {cfg.dataset}/{cfg.model}, seed {cfg.seed}: {100 * frac:.0f} % "
               f"of the coordinate updates of the first {res.updates['early_steps']} steps "
               f"rounded to nothing in {fmt} (warning above {100 * ZERO_UPDATE_WARN:.0f} %): "
               f"the update is below the weight grid; raise the learning rate (lr {cfg.lr:g})")


def _progress(enabled, cfg):
    if not enabled:
        return None
    # lazy import: rich is heavy and needed only here
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeRemainingColumn)
    p = Progress(TextColumn(f"[bold]{cfg.source}[/] {cfg.dataset}/{cfg.model}"), BarColumn(),
                 MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
    p.start()
    return p, p.add_task("train", total=cfg.steps, info="")
