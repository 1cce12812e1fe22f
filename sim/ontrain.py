"""Integer golden model of on-chip MeZO training (issue 25): the chip trains by itself.

Everything the step controller, the forward datapath and the loss unit of the training design
compute is defined here in integers, with every width, shift, rounding and saturation stated;
the weights live in the perturbation engine and change only through its golden model (engine
commands, :mod:`pezo.sim.engine`). docs/on_device.md is the reference; in brief:

Data (:func:`onchip_data`). Raw features are small non-negative integers (digits: 0..16).
``feature_bits`` b = 4 or 5: the stored code is x = min(raw, 2^b - 1) (4 bits clip 16 to 15;
5 bits hold digits exactly). A sample is ceil(F / floor(16 / b)) 16-bit SPRAM words of packed
codes plus a label word (b = 4) or the label in the last word's spare bits (b = 5).
The standardisation table T[f][x] (F x 2^b entries, int16, Q6.10, address {f, x}) is built from
the integer sums of the *quantised* training codes (N, S1 = sum x, S2 = sum x^2 per feature):
T = sat16(round_half_even((N x - S1) 2^10 / sqrt(N S2 - S1^2))), i.e. (x - mean) / std with
the population std, computed exactly (integer square roots); a feature constant in training
keeps scale 1: T = (x - mean) 2^10. ``standardise=False`` gives T = x 2^(10 - b) (x / 2^b).

Sampler (:class:`Sampler`). A one-lane uniform bank of the engine's kind (:mod:`pezo.sim.bank`:
k = 64 LFSR, polynomial x^64 + x^4 + x^3 + x + 1, leap stepping, 8 bits per cycle) seeded with
the run seed through the engine's seeding rule with its own domain tweak (:data:`SAMPLER_TWEAK`).
Its bit stream x_0, x_1, ... is read in fields, LSB first: step t takes 32 bits for the engine's
step seed, then B fields of 24 bits r_j, and idx_j = (r_j * N) >> 24 (with replacement).

Forward pass (:func:`logits`). Exact integer accumulation (SB_MAC16 products of int16 x int16;
the sum of 64 products needs 38 bits in the worst case, see docs), the bias enters as the
accumulator's start value b << t_frac, together with the rounding constant 2^(r-1); the logit is
s = sat16((acc + 2^(r-1)) >> r) in Q8.8 (round half up), r = t_frac + w_frac - logit_frac = 14.
MLP: the hidden pre-activation a = (acc1 + 2^13) >> 14 in Q.8, h = sign(a) TANH[min(|a|, 1023)]
with TANH[j] = round(2^14 tanh(j / 256)) (Q2.14), then logits from h as above (r = 18).

Loss (:func:`loss_table`). Base-2 cross-entropy of the logits read as log2 units:
m = max s_k, d_k = m - s_k, e_k = EXP[d_k & 255] >> min(d_k >> 8, 16) with
EXP[f] = round(2^15 2^(-f/256)); S = sum e_k (<= K 2^15: 20 bits for K = 16); p = floor(log2 S);
L = ((p - 15) << 12) + LOG[(S >> (p - 8)) & 255] + (d_y << 4), saturated to 20 bits, with
LOG[j] = round(2^12 log2(1 + (j + 1/2) / 256)). L is in Q8.12 bits; the batch sums of the two
passes are 30-bit unsigned.

Coefficient (:func:`coefficient`). lr = lr_m 2^-lr_e (8-bit mantissa, 128 <= lr_m <= 255),
mu = 2^-mu_e, B = 2^b: c = sat(round_half_even(-(L+ - L-) lr_m / 2^R), +-32767) in the engine's
c register (signed 16 bits scaled by 2^-20), R = lr_e + b + 1 + loss_frac - coef_frac - mu_e
(+ step_shift at steps // 2 and again at 3 steps // 4 with the ``step`` schedule). That is
c = -lr (L+ - L-) / (2 mu B) exactly up to the rounding of c.

The step (:func:`train_on_chip`): SEED s_t, PERTURB 0 (+p), forward -> L+, SEED s_t, PERTURB 1
(-2p), forward -> L-, SEED s_t, PERTURB 0 (+p, restores every weight bit), and if c != 0,
SEED s_t, UPDATE c. Every eval_every steps the validation split is evaluated (loss sum and
correct count); a strictly lower loss sum copies the weights to the checkpoint. At the end the
checkpoint is written back and the test split evaluated.

The engine is reached through a *port* (:class:`CommandPort`): the engine's commands on any
transport with ``command(op, arg, wdata, rcount)`` and ``status()``. :class:`ModelTransport`
runs the plain :class:`~pezo.sim.engine.EngineModel` (the reference); the host's fused golden
transport (:mod:`pezo.host.ontrain`) gives the same weights bit for bit in a fraction of the
time.
"""

import dataclasses
from dataclasses import dataclass, field
import math
from pathlib import Path
import time
import tomllib

import numpy as np

from pezo.config import EngineConfig, GeneratorConfig
from pezo.fixed import rshift_round_even
from pezo.sim.bank import BankModel
from pezo.sim.engine import EngineModel, Op, encode_signed
from pezo.sim.seeding import domain_tweak

__all__ = ["DEFAULTS", "MODELS", "SCHEDULES", "LOSSES", "FEATURE_BITS", "SPRAM_BANK_WORDS", "SPRAM_BANKS",
           "DATA_BANKS", "DATA_CAPACITY_WORDS", "SAMPLER_K", "SAMPLER_R", "SAMPLER_TWEAK",
           "MAX_BATCH", "MAX_STEPS", "Arith", "OnChipConfig", "OnChipData", "Split",
           "OnChipResult", "Sampler", "ModelTransport", "CommandPort", "onchip_data",
           "standardisation_table", "exp_table", "log_table", "tanh_table", "logits",
           "loss_table", "loss_exact", "loss_bound", "coefficient", "quantise_lr",
           "mu_shift", "coef_shift", "engine_config", "init_weights", "param_count",
           "words_per_sample", "evaluate", "train_on_chip", "pack_samples", "SplitPlace",
           "data_image", "split_places", "TrainRegisters", "train_registers", "TrainerConfig",
           "load_trainer_config"]

MODELS = ("logreg", "mlp")
SCHEDULES = ("constant", "step")
LOSSES = ("table", "exact")         # "exact": float log2-sum-exp, an ablation (not hardware)
FEATURE_BITS = (4, 5)

#: UP5K SPRAM: 4 banks of 16,384 16-bit words (256 kbit each); the data set lives in banks 0-2,
#: bank 3 holds the best-weights checkpoint and the loss log.
SPRAM_BANK_WORDS = 16384
SPRAM_BANKS = 4
DATA_BANKS = 3
DATA_CAPACITY_WORDS = DATA_BANKS * SPRAM_BANK_WORDS

#: The sampler's LFSR (state bits; polynomial from the project's table) and its index field.
SAMPLER_K = 64
SAMPLER_R = 24
SEED_BITS = 32
#: The sampler's seeding domain tweak: the seeding rule's "sampler" domain (pezo.sim.seeding.DOMAINS:
#: the low 32 bits of splitmix64(3), 0x724C81EC), distinct from the engine's perturbation (0),
#: rounding and sign tweaks.
SAMPLER_TWEAK = domain_tweak("sampler", SEED_BITS)

MAX_BATCH = 1024                    # batch counter: 10 bits + 1, a power of two
MAX_STEPS = (1 << 24) - 1           # step counter: 24 bits
MAX_CLASSES = 16                    # exp-sum S <= 16 * 2^15 = 2^19 (20 bits); a 4-bit label
MAX_FEATURES = 256
MAX_HIDDEN = 64
LR_RANGE = (-20, -4)                # lr in [2^-20, 2^-4]
SCHEDULE_STEP_SHIFT = (1, 7)


def _check_int(name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {v!r}")
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {v!r}")
    return int(v)


def _check_choice(name, v, choices):
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {v!r}")
    return v


# Arithmetic parameters and tables ---------------------------------------------------------------

@dataclass(frozen=True)
class Arith:
    """The formats of the forward pass and the loss unit (docs/on_device.md). The defaults are
    the design; other values exist for ablations.

    Parameters
    ----------
    t_frac : int
        Fraction bits of the standardisation table (int16, Q(16 - t_frac).t_frac; 10: Q6.10).
    logit_frac : int
        Fraction bits of the int16 logits (8: Q8.8). The exp table has 2^logit_frac entries
        (the whole fraction of a logit difference indexes it).
    log_bits : int
        Index bits of the log2(1 + m) table (2^log_bits entries).
    loss_frac : int
        Fraction bits of the per-sample loss (12: Q8.12 in ``LOSS_BITS`` = 20 bits unsigned).
    tanh_frac : int
        Fraction bits of the MLP's hidden pre-activation, the tanh table's index; the table
        covers [0, 4): 4 * 2^tanh_frac entries.
    """

    t_frac: int = 10
    logit_frac: int = 8
    log_bits: int = 8
    loss_frac: int = 12
    tanh_frac: int = 8

    EXP_FRAC = 15           # EXP entries Q1.15, unsigned 16 bits (2^15 = 1.0 at index 0)
    LOSS_BITS = 20          # per-sample loss, unsigned
    HIDDEN_FRAC = 14        # tanh output Q2.14
    TANH_RANGE = 4          # the tanh table covers |a| < 4
    LOGIT_BITS = 16

    def __post_init__(self):
        _check_int("Table fraction bits (t_frac)", self.t_frac, 4, 14)
        _check_int("Logit fraction bits (logit_frac)", self.logit_frac, 2, 10)
        _check_int("Log table index bits (log_bits)", self.log_bits, 2, 12)
        _check_int("Loss fraction bits (loss_frac)", self.loss_frac, self.logit_frac, 14)
        _check_int("Tanh index fraction bits (tanh_frac)", self.tanh_frac, 4, 10)


def exp_table(a: Arith = Arith()) -> np.ndarray:
    """EXP[f] = round_half_even(2^15 * 2^(-f / 2^logit_frac)), f = 0 .. 2^logit_frac - 1:
    2^-f on the fraction of a logit difference, Q1.15 unsigned (EXP[0] = 32768)."""
    f = np.arange(1 << a.logit_frac, dtype=np.float64)
    return np.rint(2.0 ** (a.EXP_FRAC - f / (1 << a.logit_frac))).astype(np.int64)


def log_table(a: Arith = Arith()) -> np.ndarray:
    """LOG[j] = round_half_even(2^loss_frac * log2(1 + (j + 1/2) / 2^log_bits)): log2 of the
    mantissa at the middle of the interval its top ``log_bits`` bits select, Q0.loss_frac."""
    j = np.arange(1 << a.log_bits, dtype=np.float64)
    return np.rint(2.0 ** a.loss_frac * np.log2(1.0 + (j + 0.5) / (1 << a.log_bits))).astype(
        np.int64)


def tanh_table(a: Arith = Arith()) -> np.ndarray:
    """TANH[j] = round_half_even(2^14 * tanh(j / 2^tanh_frac)), j = 0 .. 4 * 2^tanh_frac - 1
    (Q2.14; the sign is applied outside: tanh is odd)."""
    j = np.arange(a.TANH_RANGE << a.tanh_frac, dtype=np.float64)
    return np.rint(2.0 ** a.HIDDEN_FRAC * np.tanh(j / (1 << a.tanh_frac))).astype(np.int64)


def loss_bound(n_classes: int, a: Arith = Arith()) -> float:
    """The largest |L_table / 2^loss_frac - L_exact| (bits) of :func:`loss_table` for
    ``n_classes`` logits whose loss does not saturate, L_exact = log2 sum_k 2^(s_k / 2^lf) -
    s_y / 2^lf: the log table's half interval, its rounding, and the exp terms' rounding (each
    e_k within (-1.5, 0.5] LSB of 2^-15 of the exact term; the largest term is exact)."""
    half_interval = math.log2(1.0 + 0.5 / (1 << a.log_bits))
    table_round = 0.5 / (1 << a.loss_frac)
    exp_round = -math.log2(1.0 - 1.5 * (n_classes - 1) / (1 << a.EXP_FRAC))
    return half_interval + table_round + exp_round


# Data ------------------------------------------------------------------------------------------

def words_per_sample(n_features: int, feature_bits: int) -> int:
    """SPRAM words of one sample: floor(16 / b) codes per 16-bit word, then the label in its own
    word unless the last word has at least 4 spare bits (b = 5: 64 features take 22 words, the
    last holds one code, the label goes beside it; b = 4: 16 words + a label word)."""
    per = 16 // feature_bits
    words = -(-n_features // per)
    spare = 16 - feature_bits * (n_features - (words - 1) * per)
    return words if spare >= 4 else words + 1


@dataclass(frozen=True)
class Split:
    """One split on chip: the stored codes, labels and the standardised features T[f][x_f]."""

    codes: np.ndarray       # (n, F) uint8, 0 .. 2^b - 1
    labels: np.ndarray      # (n,) int64
    feats: np.ndarray       # (n, F) float64 holding the int16 table values (exact)

    def __len__(self):
        return len(self.labels)


@dataclass(frozen=True)
class OnChipData:
    """A data set as the chip holds it (:func:`onchip_data`)."""

    name: str
    feature_bits: int
    standardise: bool
    t_frac: int
    table: np.ndarray       # (F, 2^b) int64, the int16 standardisation table
    train: Split
    val: Split
    test: Split
    n_classes: int
    table_saturated: int    # table entries clamped to int16 (codes seen in training or not)

    @property
    def n_features(self) -> int:
        return self.table.shape[0]

    @property
    def words(self) -> int:
        """SPRAM words of all three splits."""
        n = len(self.train) + len(self.val) + len(self.test)
        return n * words_per_sample(self.n_features, self.feature_bits)

    def split(self, which) -> Split:
        _check_choice("Split", which, ("train", "val", "test"))
        return getattr(self, which)


def _div_sqrt_round(a: int, D: int) -> int:
    """round_half_even(a / sqrt(D)) for integers a and D > 0, exactly."""
    s = -1 if a < 0 else 1
    a = abs(a)
    q = math.isqrt(a * a // D)              # floor(a / sqrt(D))
    lhs, rhs = 4 * a * a, (2 * q + 1) ** 2 * D   # compare a / sqrt(D) with q + 1/2
    if lhs > rhs or (lhs == rhs and q & 1):
        q += 1
    return s * q


def standardisation_table(codes, feature_bits=4, t_frac=10, standardise=True):
    """T (F, 2^b) int64 from the training codes (n, F): see the module docstring. Returns
    (T, number of entries clamped to int16)."""
    codes = np.asarray(codes, dtype=np.int64)
    n, F = codes.shape
    size = 1 << feature_bits
    T = np.zeros((F, size), dtype=np.int64)
    xs = np.arange(size, dtype=np.int64)
    if not standardise:
        T[:] = xs << (t_frac - feature_bits) if t_frac >= feature_bits else \
            xs >> (feature_bits - t_frac)
        return T, 0
    S1 = codes.sum(axis=0)
    S2 = (codes * codes).sum(axis=0)
    for f in range(F):
        s1, s2 = int(S1[f]), int(S2[f])
        D = n * s2 - s1 * s1
        for x in range(size):
            a = (n * x - s1) << t_frac
            if D == 0:      # constant in training: scale 1, (x - mean) exactly (mean = s1 / n)
                T[f, x] = _div_round_even(a, n)
            else:
                T[f, x] = _div_sqrt_round(a, D)
    lo, hi = -(1 << 15), (1 << 15) - 1
    clamped = int(np.count_nonzero((T < lo) | (T > hi)))
    return np.clip(T, lo, hi), clamped


def _div_round_even(a: int, n: int) -> int:
    q, r = divmod(a, n)
    if 2 * r > n or (2 * r == n and q & 1):
        q += 1
    return q


def _codes(X, feature_bits, what):
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{what} features must be a non-empty (samples, features) array, "
                         f"not shape {X.shape}")
    if X.dtype.kind not in "iuf" or not np.all(np.isfinite(X)) or np.any(X != np.rint(X)) \
            or X.min() < 0 or X.max() > 255:
        raise ValueError(f"{what} features must be raw integers in 0..255 (the quantiser "
                         f"keeps min(x, 2^b - 1)), not values in [{float(X.min())!r}, {float(X.max())!r}]")
    return np.minimum(X.astype(np.int64), (1 << feature_bits) - 1).astype(np.uint8)


def onchip_data(X_train, y_train, X_val, y_val, X_test, y_test, *, feature_bits=4,
                standardise=True, t_frac=10, name="data", n_classes=None) -> OnChipData:
    """The data set as the chip stores it: codes, labels and the standardisation table.

    Parameters
    ----------
    X_train, X_val, X_test : array (n, F)
        Raw features, integers in 0..255 (digits: 0..16).
    y_train, y_val, y_test : array (n,)
        Labels 0..K-1, K <= 16.
    feature_bits : int
        4 or 5 bits per stored feature (codes min(x, 2^b - 1)).
    standardise : bool
        Standardisation table (default) or x / 2^b.
    t_frac : int
        Fraction bits of the table (Q6.10 by default).
    n_classes : int or None
        K, the model's class count: the largest label + 1 (None), or more (a design computes
        classes two at a time: an odd count takes one class no sample has).

    Raises
    ------
    ValueError
        For a bad value, or a data set larger than :data:`DATA_CAPACITY_WORDS` SPRAM words.
    """
    if feature_bits not in FEATURE_BITS or isinstance(feature_bits, bool):
        raise ValueError(f"Feature width (feature_bits) must be one of 4, 5, not "
                         f"{feature_bits!r}")
    if not isinstance(standardise, bool):
        raise TypeError(f"standardise must be a bool, not {standardise!r}")
    _check_int("Table fraction bits (t_frac)", t_frac, 4, 14)
    parts = {}
    F = None
    for which, X, y in (("train", X_train, y_train), ("val", X_val, y_val),
                        ("test", X_test, y_test)):
        c = _codes(X, feature_bits, f"The {which} split's")
        y = np.asarray(y)
        if y.shape != (c.shape[0],) or y.dtype.kind not in "iu" or y.min() < 0 \
                or y.max() >= MAX_CLASSES:
            raise ValueError(f"The {which} split's labels must be {c.shape[0]} integers in "
                             f"0..{MAX_CLASSES - 1}, not an array of shape {y.shape} "
                             f"({y.dtype})")
        if F is not None and c.shape[1] != F:
            raise ValueError(f"Every split must have {F} features, not {c.shape[1]} "
                             f"({which})")
        F = c.shape[1]
        parts[which] = (c, y.astype(np.int64))
    if not 1 <= F <= MAX_FEATURES:
        raise ValueError(f"Feature count must be 1..{MAX_FEATURES}, not {F}")
    seen = int(max(p[1].max() for p in parts.values())) + 1
    if n_classes is None:
        n_classes = seen
    elif isinstance(n_classes, bool) or not isinstance(n_classes, int) \
            or not seen <= n_classes <= MAX_CLASSES:
        raise ValueError(f"Class count (n_classes) must be an integer in {seen}..{MAX_CLASSES} "
                         f"(the labels reach {seen - 1}), not {n_classes!r}")
    if n_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes, not {n_classes}")
    n = sum(len(p[1]) for p in parts.values())
    wps = words_per_sample(F, feature_bits)
    if n * wps > DATA_CAPACITY_WORDS:
        raise ValueError(f"Data set of {n} samples x {F} features at {feature_bits} bits needs "
                         f"{n * wps:,} SPRAM words ({wps} per sample), more than the "
                         f"{DATA_CAPACITY_WORDS:,} of SPRAM banks 0-{DATA_BANKS - 1} "
                         f"({DATA_BANKS} x 256 kbit; bank 3 holds the checkpoint and the log)")
    T, clamped = standardisation_table(parts["train"][0], feature_bits, t_frac, standardise)
    cols = np.arange(F)
    splits = {}
    for which, (c, y) in parts.items():
        feats = T[cols[None, :], c.astype(np.int64)].astype(np.float64)
        for arr in (c, y, feats):
            arr.setflags(write=False)
        splits[which] = Split(c, y, feats)
    T.setflags(write=False)
    return OnChipData(name, feature_bits, standardise, t_frac, T, splits["train"],
                      splits["val"], splits["test"], n_classes, clamped)


# Sampler ---------------------------------------------------------------------------------------

class Sampler:
    """Minibatch indices and step seeds from the controller's own LFSR (module docstring).

    Promise: with r uniform on 0..2^24-1, P(idx = i) = c_i / 2^24 with c_i the number of r
    with floor(r N / 2^24) = i, i.e. floor(2^24 / N) or that + 1, so |N P(i) - 1| <= N / 2^24
    (6.4e-5 for N = 1,077). The LFSR is maximal (period 2^64 - 1 bits, about 7.7e17 draws): any
    64 consecutive stream bits take every nonzero value once per period, so r and the pair of
    a step seed and the first index, or two consecutive indices, are uniform up to the missing
    all-zero state. Sampling is with replacement (B (B-1) / 2N repeated pairs per batch on
    average: 1.9 for B = 64, N = 1,077).
    """

    def __init__(self, seed: int, n: int, batch: int):
        self.seed = _check_int("Seed", seed, 0, (1 << SEED_BITS) - 1)
        self.n = _check_int("Split size", n, 1, 1 << 16)
        self.batch = _check_int("Batch size (batch)", batch, 1, MAX_BATCH)
        cfg = GeneratorConfig(lanes=1, width=8, state_bits=SAMPLER_K, seed_width=SEED_BITS)
        self.bank = BankModel(cfg, self.seed, tweak=SAMPLER_TWEAK)
        self.step_bytes = SEED_BITS // 8 + SAMPLER_R // 8 * self.batch
        self.steps = 0

    def next(self, steps: int):
        """The next ``steps`` steps: (step seeds (steps,) int64, indices (steps, B) int64,
        the 24-bit fields r (steps, B) int64)."""
        b = self.bank.next(int(steps) * self.step_bytes)[:, 0] & 255
        b = b.reshape(int(steps), self.step_bytes)
        seeds = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)
        rb = b[:, 4:].reshape(int(steps), self.batch, 3)
        r = rb[..., 0] | (rb[..., 1] << 8) | (rb[..., 2] << 16)
        idx = (r * self.n) >> SAMPLER_R
        self.steps += int(steps)
        return seeds, idx, r


# Forward pass and loss -------------------------------------------------------------------------

def param_count(model: str, n_in: int, n_out: int, hidden: int = 16) -> int:
    """Weights of the model (the host's layout, pezo.host.models: logreg W (F x K) then b;
    mlp W1 (F x H), b1, W2 (H x K), b2, each row-major)."""
    if model == "logreg":
        return n_in * n_out + n_out
    return n_in * hidden + hidden + hidden * n_out + n_out


def _blocks(model, w, n_in, n_out, hidden):
    w = np.asarray(w)
    lead = w.shape[:-1]
    if model == "logreg":
        W = w[..., :n_in * n_out].reshape(lead + (n_in, n_out))
        return W, w[..., n_in * n_out:n_in * n_out + n_out]
    at = 0
    out = []
    for shape in ((n_in, hidden), (hidden,), (hidden, n_out), (n_out,)):
        size = math.prod(shape)
        out.append(w[..., at:at + size].reshape(lead + shape))
        at += size
    return out


def _layer(feats, W, b, in_frac, w_frac, out_frac, stats=None):
    """sum_f feats[f] W[f, k] + b_k << in_frac, then (acc + 2^(r-1)) >> r with r = in_frac +
    w_frac - out_frac (the rounding constant is the accumulator's start value). Products and
    sums are integers below 2^53, so the float64 matrix product is exact."""
    r = in_frac + w_frac - out_frac
    acc = np.matmul(feats, W.astype(np.float64)).astype(np.int64)
    acc += (b.astype(np.int64) << in_frac)[..., None, :] + (1 << (r - 1))
    if stats is not None:
        stats["acc_max"] = max(stats.get("acc_max", 0), int(np.abs(acc).max()))
    return acc >> r


def logits(model, w, feats, n_out, hidden=16, a: Arith = Arith(), w_frac=12, tanh=None,
           stats=None):
    """Integer logits (..., n, K) int64 (Q8.8 int16 values) of weight vectors ``w`` (..., d)
    (engine integers, Q4.12) on standardised features ``feats`` (n, F) (the table's integers,
    any dtype holding them exactly)."""
    feats = np.asarray(feats, dtype=np.float64)
    n_in = feats.shape[-1]
    lo, hi = -(1 << (a.LOGIT_BITS - 1)), (1 << (a.LOGIT_BITS - 1)) - 1
    if model == "logreg":
        W, b = _blocks(model, w, n_in, n_out, hidden)
        s = _layer(feats, W, b, a.t_frac, w_frac, a.logit_frac, stats)
    else:
        W1, b1, W2, b2 = _blocks(model, w, n_in, n_out, hidden)
        pre = _layer(feats, W1, b1, a.t_frac, w_frac, a.tanh_frac, stats)
        tanh = tanh_table(a) if tanh is None else tanh
        mag = np.minimum(np.abs(pre), len(tanh) - 1)
        h = np.where(pre < 0, -tanh[mag], tanh[mag])
        s = _layer(h.astype(np.float64), W2, b2, a.HIDDEN_FRAC, w_frac, a.logit_frac, stats)
    if s.min() >= lo and s.max() <= hi:
        return s
    if stats is not None:
        stats["logit_saturated"] = stats.get("logit_saturated", 0) + int(
            np.count_nonzero((s < lo) | (s > hi)))
    return np.clip(s, lo, hi)


def _pick(v, y):
    """v[..., i, y_i] for v (..., n, K) and labels y (n,)."""
    y = np.asarray(y, dtype=np.int64)
    return v[..., np.arange(len(y)), y]


def loss_table(s, y, a: Arith = Arith(), exp=None, log=None, stats=None):
    """The loss unit: per-sample base-2 cross-entropy (..., n) int64 in Q8.12 (unsigned 20
    bits, saturated) of integer logits ``s`` (..., n, K) and labels ``y`` (n,); see the module
    docstring."""
    exp = exp_table(a) if exp is None else exp
    log = log_table(a) if log is None else log
    s = np.asarray(s, dtype=np.int64)
    lf = a.logit_frac
    m = s.max(axis=-1)
    d = m[..., None] - s
    e = exp[d & ((1 << lf) - 1)] >> np.minimum(d >> lf, 16)
    S = e.sum(axis=-1)                                  # 2^15 <= S <= K 2^15
    p = np.frexp(S.astype(np.float64))[1] - 1           # floor(log2 S), exact
    j = (S >> (p - a.log_bits)) & ((1 << a.log_bits) - 1)
    lse = ((p - a.EXP_FRAC) << a.loss_frac) + log[j]
    dy = _pick(d, y)
    L = lse + (dy << (a.loss_frac - lf))
    top = (1 << a.LOSS_BITS) - 1
    if stats is not None:
        stats["loss_saturated"] = stats.get("loss_saturated", 0) + int(np.count_nonzero(L > top))
    return np.minimum(L, top)


def loss_exact(s, y, a: Arith = Arith(), stats=None):
    """The ablation: exact base-2 cross-entropy of the same integer logits (float64
    log2-sum-exp), rounded half to even to Q8.12 and saturated like :func:`loss_table`. Not a
    hardware definition."""
    s = np.asarray(s, dtype=np.float64) / (1 << a.logit_frac)
    m = s.max(axis=-1, keepdims=True)
    lse = np.log2(np.exp2(s - m).sum(axis=-1)) + m[..., 0]
    sy = _pick(s, y)
    L = np.rint((lse - sy) * (1 << a.loss_frac)).astype(np.int64)
    top = (1 << a.LOSS_BITS) - 1
    if stats is not None:
        stats["loss_saturated"] = stats.get("loss_saturated", 0) + int(np.count_nonzero(L > top))
    return np.minimum(L, top)


# Coefficient -----------------------------------------------------------------------------------

def quantise_lr(lr) -> tuple:
    """lr as (lr_m, lr_e): lr ~= lr_m 2^-lr_e with 128 <= lr_m <= 255 (8 significant bits,
    round half to even). Raises for lr outside [2^-20, 2^-4]."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)) \
            or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"Learning rate (lr) must be a positive number, not {lr!r}")
    lo, hi = LR_RANGE
    if lr < 2.0 ** lo:
        raise ValueError(f"Learning rate (lr) {lr!r} underflows the coefficient register: "
                         f"below 2^{lo} a projected gradient of 1 moves c by less than one "
                         f"step of 2^-20; accepted: 2^{lo}..2^{hi}")
    if lr > 2.0 ** hi:
        raise ValueError(f"Learning rate (lr) {lr!r} is above 2^{hi}: the coefficient "
                         f"register (|c| < 2^-5) would clip every projected gradient above "
                         f"{2.0 ** -5 / lr:.3g}; accepted: 2^{lo}..2^{hi}")
    e = 7 - math.floor(math.log2(lr))
    m = int(np.rint(lr * 2.0 ** e))
    if m >= 256:
        m, e = m // 2, e - 1
    if m < 128:                          # float log2 just below a power of two
        m, e = int(np.rint(lr * 2.0 ** (e + 1))), e + 1
    return m, e


def mu_shift(mu, w_frac=12, coef_frac=20, coef_bits=16) -> int:
    """mu_e with mu = 2^-mu_e. mu must be a power of two whose register value
    2^(coef_frac - mu_e) fits the signed coefficient register (mu_e >= coef_frac - coef_bits +
    2: 6) and whose perturbation is at least one weight LSB per unit of z (mu_e <= w_frac: 12).
    """
    lo_e = coef_frac - (coef_bits - 2)          # largest register value 2^(coef_bits - 2)
    if isinstance(mu, bool) or not isinstance(mu, (int, float, np.floating, np.integer)) \
            or not math.isfinite(mu) or mu <= 0:
        raise ValueError(f"mu must be a positive number, not {mu!r}")
    m, e = math.frexp(mu)
    if m != 0.5:
        raise ValueError(f"mu must be a power of two (the coefficient is a shift, no divider), "
                         f"2^-{w_frac}..2^-{lo_e}, not {mu!r}")
    mu_e = 1 - e
    if mu_e > w_frac:
        raise ValueError(f"mu {mu!r} underflows the Q.{w_frac} weights: mu z must be at least "
                         f"one weight LSB (2^-{w_frac}) per unit of z; accepted: "
                         f"2^-{w_frac}..2^-{lo_e}")
    if mu_e < lo_e:
        raise ValueError(f"mu {mu!r} does not fit the coefficient register (signed "
                         f"{coef_bits} bits scaled by 2^-{coef_frac}); accepted: "
                         f"2^-{w_frac}..2^-{lo_e}")
    return mu_e


def coef_shift(lr_e, batch, mu_e, a: Arith = Arith(), coef_frac=20) -> int:
    """R of :func:`coefficient`: lr_e + log2 B + 1 + loss_frac - coef_frac - mu_e."""
    return lr_e + int(batch).bit_length() - 1 + 1 + a.loss_frac - coef_frac - mu_e


def coefficient(sum_plus, sum_minus, lr_m, shift, coef_bits=16):
    """c = sat(round_half_even(-(sum_plus - sum_minus) * lr_m / 2^shift)) to +-(2^(coef_bits-1)
    - 1) (a left shift when ``shift`` < 0). Scalars or arrays; returns (c, clipped)."""
    lim = (1 << (coef_bits - 1)) - 1
    shift = int(shift)
    if np.ndim(sum_plus) == 0 and np.ndim(sum_minus) == 0:       # scalars: Python integers
        x = -(int(sum_plus) - int(sum_minus)) * int(lr_m)
        c = rshift_round_even(x, shift) if shift > 0 else x << -shift
        return max(-lim, min(lim, c)), abs(c) > lim
    x = -(np.asarray(sum_plus, dtype=np.int64) - np.asarray(sum_minus, dtype=np.int64)) \
        * int(lr_m)
    c = rshift_round_even(x, shift) if shift > 0 else x << -shift
    clipped = np.abs(c) > lim
    return np.clip(c, -lim, lim), clipped


# Engine ----------------------------------------------------------------------------------------

def engine_config(n_params: int, lanes: int = 2) -> EngineConfig:
    """The training design's engine: m = ``lanes`` MAC lanes, reuse ``none`` (leap, one
    32-bit LFSR per lane, the hardware default streams), a ``fixed`` scale (K = 3 CSD digits:
    no scale register, the pool correction is not needed without a pool), Q4.12 weights, 16-bit
    coefficients at 2^-20, stochastic rounding of the update; depth = n_params rounded up to a
    multiple of m."""
    m = _check_int("Engine lane count (lanes)", lanes, 1, 8)
    g = GeneratorConfig(lanes=m, width=16, state_bits=32, reuse="none", scale="fixed")
    return EngineConfig(generator=g, depth=-(-int(n_params) // m) * m, w_int=4, w_frac=12,
                        coef_bits=16, coef_frac=20, stochastic=True)


@dataclass(frozen=True)
class TrainerConfig:
    """The training design's shape: what :class:`pezo.hw.ontrain.OnChipTrainer` is built for.
    A TOML file holds it as a ``[train]`` table (:func:`load_trainer_config`;
    boards/configs/up5k-train.toml).

    Parameters
    ----------
    n_features, n_classes : int
        F (1..256) and K (2..16, a multiple of the engine's lanes).
    feature_bits : int
        4 or 5 bits per stored code.
    group : int
        Samples forwarded together (1..3): 2 x ``group`` multipliers.
    max_batch : int
        The index buffer's depth: the largest batch (a power of two, 1..1024).
    model : str
        "logreg" (the MLP is not built in hardware yet).
    lanes : int
        The engine's lanes (2).
    pll_mhz : float or None
        The design clock on an iCE40 board with a PLL (16..275 MHz; None: the board's own,
        48 MHz on the iCEBreaker): where the training design does not close timing at the
        board's clock, its configuration says the clock it does close at
        (:func:`pezo.boards.targets.clocked_board`).
    """

    n_features: int = 64
    n_classes: int = 10
    feature_bits: int = 4
    group: int = 2
    max_batch: int = 256
    model: str = "logreg"
    lanes: int = 2
    pll_mhz: float | None = None

    def __post_init__(self):
        _check_int("Feature count (n_features)", self.n_features, 1, MAX_FEATURES)
        _check_int("Class count (n_classes)", self.n_classes, 2, MAX_CLASSES)
        if self.feature_bits not in FEATURE_BITS or isinstance(self.feature_bits, bool):
            raise ValueError(f"Feature width (feature_bits) must be one of 4, 5, not "
                             f"{self.feature_bits!r}")
        _check_int("Group size (group)", self.group, 1, 3)
        _check_int("Index buffer depth (max_batch)", self.max_batch, 1, MAX_BATCH)
        if self.max_batch & (self.max_batch - 1):
            raise ValueError(f"Index buffer depth (max_batch) must be a power of two, not "
                             f"{self.max_batch!r}")
        if self.model != "logreg":
            raise ValueError(f"Model must be 'logreg' (the training design has no MLP "
                             f"datapath yet), not {self.model!r}")
        if self.lanes != 2:
            raise ValueError(f"Engine lane count (lanes) must be 2 in the training design, "
                             f"not {self.lanes!r}")
        if self.pll_mhz is not None and (isinstance(self.pll_mhz, bool)
                                         or not isinstance(self.pll_mhz, (int, float))
                                         or not 16 <= self.pll_mhz <= 275):
            raise ValueError(f"PLL clock (pll_mhz) must be a number of MHz in 16..275, not "
                             f"{self.pll_mhz!r}")
        if self.n_classes % self.lanes:
            raise ValueError(f"Class count (n_classes) must be a multiple of the engine's "
                             f"{self.lanes} lanes (a weight word holds one row's classes), "
                             f"not {self.n_classes!r}")

    @property
    def n_params(self) -> int:
        return param_count(self.model, self.n_features, self.n_classes)

    def engine(self) -> EngineConfig:
        """The engine inside the training design (:func:`engine_config`)."""
        return engine_config(self.n_params, self.lanes)

    def name(self) -> str:
        return (f"train-{self.model}-f{self.n_features}-k{self.n_classes}-b{self.feature_bits}"
                f"-g{self.group}-B{self.max_batch}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainerConfig":
        if not isinstance(d, dict):
            raise TypeError(f"A trainer configuration must be a table, not {d!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown trainer configuration key(s) {', '.join(unknown)}; "
                             f"accepted: {', '.join(sorted(known))}")
        return cls(**d)

    def fits(self, data: "OnChipData", batch: int = 1):
        """Raise ValueError unless ``data`` has this shape (and ``batch`` fits the buffer)."""
        if (data.n_features, data.feature_bits, data.n_classes) \
                != (self.n_features, self.feature_bits, self.n_classes):
            raise ValueError(f"The data ({data.n_features} features at {data.feature_bits} "
                             f"bits, {data.n_classes} classes) does not fit the training "
                             f"design {self.name()} ({self.n_features} features at "
                             f"{self.feature_bits} bits, {self.n_classes} classes: the golden "
                             f"model and the design must compute the same logits)")
        if batch > self.max_batch:
            raise ValueError(f"Batch size (batch) {batch} is larger than the training "
                             f"design's index buffer ({self.max_batch})")


def load_trainer_config(path) -> TrainerConfig:
    """The ``[train]`` table of a TOML file as a :class:`TrainerConfig`."""
    path = Path(path)
    try:
        d = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"Trainer configuration file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"Trainer configuration file {str(path)!r} is not valid TOML: {e}") \
            from None
    if "train" not in d:
        raise ValueError(f"Trainer configuration file {str(path)!r} has no [train] table")
    return TrainerConfig.from_dict(d["train"])


class ModelTransport:
    """The plain golden engine (:class:`~pezo.sim.engine.EngineModel`) behind the transport
    interface a :class:`CommandPort` drives."""

    name = "golden"

    def __init__(self, cfg: EngineConfig):
        self.cfg = cfg
        self.model = EngineModel(cfg)

    def command(self, op, arg=0, wdata=None, rcount=0):
        return self.model.execute(op, arg, wdata)

    def status(self) -> dict:
        return self.model.status()


class CommandPort:
    """The step controller's view of the engine: its commands, in the order the controller
    issues them, on a transport (``command(op, arg, wdata, rcount)``, ``status()``). A
    transport may also offer the fused calls ``prefetch(seeds)``, ``pair(seed, offset,
    visible)`` and ``update(seed, offset, coef)`` (the host's fused golden engine); they are
    used when present and fall back to the commands when they return None. Counts the passes
    that saturated (the sticky flag, cleared after each)."""

    def __init__(self, transport):
        self.t = transport
        self.cfg = transport.cfg
        self.saturated_passes = 0
        self._fused = all(hasattr(transport, n) for n in ("prefetch", "pair", "update"))
        self._lsb = 2.0 ** self.cfg.w_frac

    def _do(self, op, arg=0, wdata=None, rcount=0):
        out = self.t.command(op, arg, wdata, rcount)
        st = self.t.status()
        if st["error"]:
            raise RuntimeError(f"Engine rejected {Op(op).name} with argument {int(arg):#x}: "
                               f"error code {st['error_code']}")
        return out

    def _check_saturation(self):
        if self.t.status()["saturated"]:
            self.saturated_passes += 1
            self._do(Op.CLEAR, 0)

    def reset(self, weights, mu_reg):
        """WRITE the weights, ROUNDING 1 (stochastic update), CLEAR, MU mu_reg."""
        self.write(weights)
        self._do(Op.ROUNDING, 1)
        self._do(Op.CLEAR, 0)
        self._do(Op.MU, encode_signed(mu_reg))

    def write(self, weights):
        m, words = self.cfg.lanes, self.cfg.words
        w = np.zeros(self.cfg.depth, dtype=np.int64)
        w[:len(weights)] = weights
        self._do(Op.WRITE, words << 32, w.reshape(words, m))

    def read(self):
        return self._do(Op.READ, self.cfg.words << 32, rcount=self.cfg.words).reshape(-1) \
            .astype(np.int64)

    def prefetch(self, seeds):
        if self._fused:
            self.t.prefetch([int(s) for s in seeds])

    def pair(self, seed):
        """Passes 1-3 of step seed ``seed``: (weights after pass 1, after pass 2), int64."""
        seed = int(seed)
        if self._fused:
            out = self.t.pair(seed, None, self.cfg.depth)
            if out is not None:
                return np.rint(out * self._lsb).astype(np.int64)
        self._do(Op.SEED, seed)
        self._do(Op.PERTURB, 0)
        wp = self.read()
        self._check_saturation()
        self._do(Op.SEED, seed)
        self._do(Op.PERTURB, 1)
        wm = self.read()
        self._check_saturation()
        self._do(Op.SEED, seed)
        self._do(Op.PERTURB, 0)
        self._check_saturation()
        return np.stack([wp, wm])

    def update(self, seed, c):
        """SEED seed, UPDATE c (c a register integer)."""
        seed, c = int(seed), int(c)
        if self._fused:
            sat = self.t.update(seed, None, c)
            if sat is not None:
                if sat:
                    self.saturated_passes += 1
                    self._do(Op.CLEAR, 0)
                return
        self._do(Op.SEED, seed)
        self._do(Op.UPDATE, encode_signed(c))
        self._check_saturation()


def init_weights(model, n_in, n_out, hidden=16, seed=0, w_frac=12) -> np.ndarray:
    """The initial weights the host writes before TRAIN (engine integers, Q4.12): zeros for
    logreg; for the MLP LeCun-normal W1 (std 1/sqrt(F)) then W2 (std 1/sqrt(H)) from
    ``numpy.random.default_rng(seed)``, zero biases, rounded half to even to Q4.12."""
    w = np.zeros(param_count(model, n_in, n_out, hidden), dtype=np.int64)
    if model == "mlp":
        rng = np.random.default_rng(seed)
        W1 = rng.normal(0, 1 / math.sqrt(n_in), (n_in, hidden))
        W2 = rng.normal(0, 1 / math.sqrt(hidden), (hidden, n_out))
        at = n_in * hidden
        w[:at] = np.rint(W1.reshape(-1) * 2.0 ** w_frac)
        at += hidden
        w[at:at + hidden * n_out] = np.rint(W2.reshape(-1) * 2.0 ** w_frac)
    return w


# Training --------------------------------------------------------------------------------------

#: lr and mu per model (docs/on_device.md, section 6, "Why these learning rates"): logreg 2^-7 and 2^-7 (in natural-log
#: units lr ln 2 = 5.4e-3, the host's 5e-3); the MLP 2^-8: its first layer sees lr / ln 2 in
#: natural units, and 2^-7 (1.1e-2 there) cost it about 2 points, as 1e-2 does on the host.
DEFAULTS = {"logreg": {"lr": 2.0 ** -7, "mu": 2.0 ** -7},
            "mlp": {"lr": 2.0 ** -8, "mu": 2.0 ** -8}}


@dataclass(frozen=True)
class OnChipConfig:
    """One on-chip training run (docs/on_device.md). ``lr`` is quantised to 8 significant bits;
    ``mu`` must be a power of two; ``batch`` a power of two."""

    model: str = "logreg"
    hidden: int = 16
    steps: int = 8000
    batch: int = 64
    lr: float | None = None         # None: DEFAULTS[model]
    mu: float | None = None
    schedule: str = "constant"
    step_shift: int = 3             # "step": lr / 2^step_shift at steps // 2 and 3 steps // 4
    seed: int = 0
    eval_every: int | None = None   # None: max(1, steps // 50)
    lanes: int = 2
    loss: str = "table"
    arith: Arith = Arith()

    def resolved(self) -> "OnChipConfig":
        """A copy with ``lr``, ``mu`` (:data:`DEFAULTS`) and ``eval_every`` filled in and every
        field checked."""
        _check_choice("Model", self.model, MODELS)
        lr = DEFAULTS[self.model]["lr"] if self.lr is None else self.lr
        mu = DEFAULTS[self.model]["mu"] if self.mu is None else self.mu
        _check_int("Hidden size (hidden)", self.hidden, 1, MAX_HIDDEN)
        _check_int("Step count (steps)", self.steps, 1, MAX_STEPS)
        if isinstance(self.batch, bool) or not isinstance(self.batch, (int, np.integer)):
            raise TypeError(f"Batch size (batch) must be an integer, not {self.batch!r}")
        if not (1 <= self.batch <= MAX_BATCH and self.batch & (self.batch - 1) == 0):
            raise ValueError(f"Batch size (batch) must be a power of two in 1..{MAX_BATCH} "
                             f"(the coefficient divides by B with a shift), not {self.batch!r}")
        quantise_lr(lr)
        mu_shift(mu)
        _check_choice("Schedule", self.schedule, SCHEDULES)
        _check_int("Schedule step shift (step_shift)", self.step_shift, *SCHEDULE_STEP_SHIFT)
        _check_int("Seed", self.seed, 0, (1 << SEED_BITS) - 1)
        ev = max(1, self.steps // 50) if self.eval_every is None else self.eval_every
        _check_int("Evaluation interval (eval_every)", ev, 1, self.steps)
        _check_int("Engine lane count (lanes)", self.lanes, 1, 8)
        _check_choice("Loss", self.loss, LOSSES)
        if not isinstance(self.arith, Arith):
            raise TypeError(f"arith must be an Arith, not {self.arith!r}")
        return dataclasses.replace(self, lr=lr, mu=mu, eval_every=int(ev))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["arith"] = dataclasses.asdict(self.arith)
        return d


@dataclass
class OnChipResult:
    """What a run produced: the chip's log and the golden model's diagnostics."""

    config: dict
    engine: dict
    n_params: int
    lr_m: int
    lr_e: int
    mu_e: int
    shift: int                      # R of the constant phase
    steps_run: int = 0
    best_step: int = 0
    test_acc: float = float("nan")
    test_loss: float = float("nan")     # mean, bits
    val_acc: float = float("nan")
    val_loss: float = float("nan")
    curve: list = field(default_factory=list)
    # per-step log (what the chip's READ LOG returns, plus the indices)
    seeds: np.ndarray | None = None         # (steps,) step seeds
    indices: np.ndarray | None = None       # (steps, B)
    sum_plus: np.ndarray | None = None      # (steps,) Q8.12 batch sums
    sum_minus: np.ndarray | None = None
    coef: np.ndarray | None = None          # (steps,) c register values
    weight_log: dict = field(default_factory=dict)  # step -> engine weights (int64) at evals
    weights: np.ndarray | None = None       # final engine weights (the checkpoint restored)
    stats: dict = field(default_factory=dict)
    train_time: float = 0.0
    wall_time: float = 0.0

    @property
    def step_ms(self) -> float:
        return 1e3 * self.train_time / max(1, self.steps_run)


def evaluate(model, w, split: Split, n_classes, hidden=16, a: Arith = Arith(), loss="table",
             stats=None, tables=None):
    """(loss sum Q8.12, correct count) of the integer model on a split: what the chip's
    evaluation computes (argmax: the first of equal maxima)."""
    tables = tables or {}
    s = logits(model, np.asarray(w)[None, :], split.feats, n_classes, hidden, a,
               tanh=tables.get("tanh"), stats=stats)[0]
    if loss == "table":
        L = loss_table(s, split.labels, a, tables.get("exp"), tables.get("log"))
    else:
        L = loss_exact(s, split.labels, a)
    return int(L.sum()), int(np.count_nonzero(s.argmax(axis=-1) == split.labels))


def train_on_chip(data: OnChipData, config: OnChipConfig = OnChipConfig(), *, port=None,
                  theta0=None, log=None, stop_after=None, **overrides) -> OnChipResult:
    """Run the on-chip training loop on the golden model (module docstring).

    Parameters
    ----------
    data : OnChipData
    config : OnChipConfig
        ``overrides`` replace its fields.
    port : CommandPort or None
        The engine; None: the plain golden engine (:class:`ModelTransport`, slow: about 50 ms
        a step). The host's fused transport gives the same result fast (pezo.host.ontrain).
    theta0 : array or None
        Initial engine weights (integers); None: :func:`init_weights` with the run seed.
    log : callable or None
        Called with each learning-curve point (a dict).
    stop_after : int or None
        STOP: the run ends after this many steps, as the chip ends a run whose STOP arrives
        during (or right after) that step: the step completes, an evaluation follows (if the
        step had none), then the checkpoint and the test as at a last step. The schedule keeps
        the configured step count.

    Raises
    ------
    TypeError, ValueError
        For bad parameters (named, with what is accepted).
    """
    t_start = time.perf_counter()
    if not isinstance(data, OnChipData):
        raise TypeError(f"Data must be an OnChipData (pezo.sim.ontrain.onchip_data), "
                        f"not {data!r}")
    if not isinstance(config, OnChipConfig):
        raise TypeError(f"Configuration must be an OnChipConfig, not {config!r}")
    cfg = dataclasses.replace(config, **overrides).resolved()
    a = cfg.arith
    if a.t_frac != data.t_frac:
        raise ValueError(f"The data's table has {data.t_frac} fraction bits, the arithmetic "
                         f"{a.t_frac}: build the data with t_frac={a.t_frac}")
    n_train = len(data.train)
    if cfg.batch > n_train:
        raise ValueError(f"Batch size (batch) {cfg.batch} is larger than the training split "
                         f"({n_train} samples)")
    F, K, H = data.n_features, data.n_classes, cfg.hidden
    d = param_count(cfg.model, F, K, H)
    ecfg = engine_config(d, cfg.lanes)
    if port is None:
        port = CommandPort(ModelTransport(ecfg))
    elif not isinstance(port, CommandPort):
        raise TypeError(f"port must be a CommandPort, not {port!r}")
    if port.cfg != ecfg:
        raise ValueError(f"The port's engine ({port.cfg.name()}) is not the training design's "
                         f"({ecfg.name()}): build it with engine_config({d}, {cfg.lanes})")
    if theta0 is None:
        theta0 = init_weights(cfg.model, F, K, H, cfg.seed, ecfg.w_frac)
    theta0 = np.asarray(theta0)
    lo, hi = -(1 << (ecfg.w_bits - 1)), (1 << (ecfg.w_bits - 1)) - 1
    if theta0.shape != (d,) or theta0.dtype.kind not in "iu" or theta0.min() < lo \
            or theta0.max() > hi:
        raise ValueError(f"Initial weights (theta0) must be {d} integers in {lo}..{hi} "
                         f"(Q{ecfg.w_int}.{ecfg.w_frac}), not an array of shape "
                         f"{theta0.shape} ({theta0.dtype})")
    lr_m, lr_e = quantise_lr(cfg.lr)
    mu_e = mu_shift(cfg.mu, ecfg.w_frac, ecfg.coef_frac, ecfg.coef_bits)
    R = coef_shift(lr_e, cfg.batch, mu_e, a, ecfg.coef_frac)
    res = OnChipResult(cfg.to_dict(), ecfg.to_dict(), d, lr_m, lr_e, mu_e, R)
    tables = {"exp": exp_table(a), "log": log_table(a), "tanh": tanh_table(a)}
    stats = {"coef_clipped": 0, "coef_zero": 0, "acc_max": 0, "logit_saturated": 0,
             "loss_saturated": 0}
    port.reset(theta0.astype(np.int64), 1 << (ecfg.coef_frac - mu_e))
    sampler = Sampler(cfg.seed, n_train, cfg.batch)
    T, B = cfg.steps, cfg.batch
    res.seeds = np.zeros(T, dtype=np.int64)
    res.indices = np.zeros((T, B), dtype=np.uint16)
    res.sum_plus = np.zeros(T, dtype=np.int64)
    res.sum_minus = np.zeros(T, dtype=np.int64)
    res.coef = np.zeros(T, dtype=np.int64)
    feats, labels = data.train.feats, data.train.labels
    half, three_q = T // 2, (3 * T) // 4
    lossfn = (lambda s, y: loss_table(s, y, a, tables["exp"], tables["log"], stats)) \
        if cfg.loss == "table" else (lambda s, y: loss_exact(s, y, a, stats))
    best = (None, None, 0)          # (val loss sum, weights, step)
    CHUNK = 64
    t_loop = time.perf_counter()
    if stop_after is not None:
        _check_int("Stop step (stop_after)", stop_after, 1, T)
    stopped = False
    for t0 in range(0, T, CHUNK):
        if stopped:
            break
        n = min(CHUNK, T - t0)
        seeds, idx, _ = sampler.next(n)
        res.seeds[t0:t0 + n] = seeds
        res.indices[t0:t0 + n] = idx
        port.prefetch(seeds)
        for i in range(n):
            t = t0 + i
            seed = int(seeds[i])
            pair = port.pair(seed)
            rows = idx[i]
            s = logits(cfg.model, pair, feats[rows], K, H, a, ecfg.w_frac, tables["tanh"],
                       stats)
            L = lossfn(s, labels[rows]).sum(axis=-1)
            sp, sm = int(L[0]), int(L[1])
            shift = R
            if cfg.schedule == "step":
                shift += cfg.step_shift * ((t >= half) + (t >= three_q))
            c, clipped = coefficient(sp, sm, lr_m, shift, ecfg.coef_bits)
            stats["coef_clipped"] += clipped
            res.sum_plus[t], res.sum_minus[t], res.coef[t] = sp, sm, c
            if c:
                port.update(seed, c)
            else:
                stats["coef_zero"] += 1
            res.steps_run = t + 1
            stopped = stop_after is not None and t + 1 == stop_after
            if (t + 1) % cfg.eval_every == 0 or t + 1 == T or stopped:
                w = port.read()[:d]
                vl, vc = evaluate(cfg.model, w, data.val, K, H, a, cfg.loss, tables=tables)
                res.weight_log[t + 1] = w.copy()
                point = {"step": t + 1,
                         "batch_loss": float((res.sum_plus[t + 1 - cfg.eval_every:t + 1]
                                              + res.sum_minus[t + 1 - cfg.eval_every:t + 1])
                                             .mean() / (2 * B) / (1 << a.loss_frac)),
                         "val_loss_sum": vl, "val_correct": vc,
                         "val_loss": vl / len(data.val) / (1 << a.loss_frac),
                         "val_acc": vc / len(data.val)}
                res.curve.append(point)
                if log:
                    log(point)
                if best[0] is None or vl < best[0]:
                    best = (vl, w.copy(), t + 1)
            if stopped:
                break
    res.train_time = time.perf_counter() - t_loop
    res.best_step = best[2]
    if best[2] != res.steps_run:
        port.write(best[1])
    w = port.read()[:d]
    res.weights = w
    vl, vc = evaluate(cfg.model, w, data.val, K, H, a, cfg.loss, tables=tables)
    tl, tc = evaluate(cfg.model, w, data.test, K, H, a, cfg.loss, tables=tables)
    res.val_loss = vl / len(data.val) / (1 << a.loss_frac)
    res.val_acc = vc / len(data.val)
    res.test_loss = tl / len(data.test) / (1 << a.loss_frac)
    res.test_acc = tc / len(data.test)
    stats["saturated_passes"] = port.saturated_passes
    res.stats = stats
    res.wall_time = time.perf_counter() - t_start
    return res


# What the hardware holds and is told ------------------------------------------------------------

def pack_samples(codes, labels, feature_bits=4) -> np.ndarray:
    """The SPRAM words of samples (docs/on_device.md, section 1): per sample
    :func:`words_per_sample` 16-bit words; word w holds codes w * p .. w * p + p - 1
    (p = floor(16 / b)), code i of the word at bits [i b, (i + 1) b); the label is the top
    nibble (bits 12-15) of the sample's last word. Returns (n * words_per_sample,) int64."""
    codes = np.asarray(codes, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    n, F = codes.shape
    b = feature_bits
    per = 16 // b
    wps = words_per_sample(F, b)
    out = np.zeros((n, wps), dtype=np.int64)
    for f in range(F):
        out[:, f // per] |= codes[:, f] << (b * (f % per))
    out[:, wps - 1] |= labels << 12
    return out.reshape(-1)


@dataclass(frozen=True)
class SplitPlace:
    """Where a split lives in the data SPRAM: its first word and its sample count."""

    base: int
    count: int


def split_places(data: OnChipData) -> dict:
    """Each split's :class:`SplitPlace` in the data SPRAM: train, val, test, in that order."""
    places, at = {}, 0
    wps = words_per_sample(data.n_features, data.feature_bits)
    for which in ("train", "val", "test"):
        places[which] = SplitPlace(at, len(data.split(which)))
        at += len(data.split(which)) * wps
    return places


def data_image(data: OnChipData):
    """(words, places): the data SPRAM image of all three splits (:func:`split_places`)."""
    parts = [pack_samples(data.split(w).codes, data.split(w).labels, data.feature_bits)
             for w in ("train", "val", "test")]
    return np.concatenate(parts), split_places(data)


@dataclass(frozen=True)
class TrainRegisters:
    """The TRAIN command's registers: everything the step controller is told, as integers
    (:func:`train_registers`)."""

    steps: int
    batch_log2: int
    lr_m: int
    shift: int              # R of the constant phase (signed)
    schedule: int           # 0 constant, 1 step
    step_shift: int
    eval_every: int
    seed: int
    mu_reg: int             # the engine's mu register, 2^(coef_frac - mu_e)
    train: SplitPlace
    val: SplitPlace
    test: SplitPlace

    def fields(self) -> dict:
        """The TRAIN command's fields (:func:`pezo.hw.ontrain.train_layout`'s names)."""
        return {"steps": self.steps, "batch_log2": self.batch_log2, "lr_m": self.lr_m,
                "shift": self.shift, "schedule": self.schedule, "step_shift": self.step_shift,
                "eval_every": self.eval_every, "seed": self.seed, "mu_reg": self.mu_reg,
                "train_base": self.train.base, "train_n": self.train.count,
                "val_base": self.val.base, "val_n": self.val.count,
                "test_base": self.test.base, "test_n": self.test.count}


def train_registers(data: OnChipData, config: OnChipConfig = OnChipConfig(), **overrides):
    """The :class:`TrainRegisters` of a run of ``config`` on ``data`` (checked as
    :func:`train_on_chip` checks them)."""
    cfg = dataclasses.replace(config, **overrides).resolved()
    if cfg.batch > len(data.train):
        raise ValueError(f"Batch size (batch) {cfg.batch} is larger than the training split "
                         f"({len(data.train)} samples)")
    d = param_count(cfg.model, data.n_features, data.n_classes, cfg.hidden)
    ecfg = engine_config(d, cfg.lanes)
    lr_m, lr_e = quantise_lr(cfg.lr)
    mu_e = mu_shift(cfg.mu, ecfg.w_frac, ecfg.coef_frac, ecfg.coef_bits)
    R = coef_shift(lr_e, cfg.batch, mu_e, cfg.arith, ecfg.coef_frac)
    places = split_places(data)
    return TrainRegisters(cfg.steps, cfg.batch.bit_length() - 1, lr_m, R,
                          SCHEDULES.index(cfg.schedule), cfg.step_shift, cfg.eval_every,
                          cfg.seed, 1 << (ecfg.coef_frac - mu_e), places["train"],
                          places["val"], places["test"])
