"""The integer golden model of on-chip training (pezo.sim.ontrain, docs/on_device.md), checked
against exact arithmetic written from its definition: the loss unit against log2-sum-exp within
its stated bound, the forward pass against float on the dequantised operands, the tables
against high-precision decimals, the sampler against a bit-by-bit LFSR, the step's exact
restore and update against the plain engine model, determinism and the error messages."""

from decimal import Decimal, ROUND_HALF_EVEN, getcontext
import math

import numpy as np
import pytest
from scipy import stats

from pezo.host.ontrain import chip_data, make_port, raw_splits, train_on_chip_model
from pezo.host.data import load_dataset
from pezo.sim.engine import EngineModel, Op, encode_signed
from pezo.sim.seeding import lane_states
from pezo.sim.ontrain import (DATA_CAPACITY_WORDS, SAMPLER_TWEAK, Arith, OnChipConfig,
                              Sampler, coefficient, engine_config, exp_table, log_table,
                              logits, loss_bound, loss_table, onchip_data, quantise_lr,
                              standardisation_table, tanh_table, train_on_chip,
                              words_per_sample)

getcontext().prec = 50
A = Arith()


def _round_even(x: Decimal) -> int:
    return int(x.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


# Tables ----------------------------------------------------------------------------------------

def test_tables_match_their_definitions_in_50_digit_decimals():
    ln2 = Decimal(2).ln()
    exp = exp_table()
    assert exp.shape == (256,) and exp[0] == 32768 and exp.max() < 1 << 16
    for f in range(256):
        assert exp[f] == _round_even(Decimal(32768) * (-(Decimal(f) / 256) * ln2).exp()), f
    log = log_table()
    assert log.shape == (256,) and log.max() < 1 << 12
    for j in range(256):
        v = (1 + (Decimal(2 * j + 1) / 512)).ln() / ln2
        assert log[j] == _round_even(4096 * v), j
    tanh = tanh_table()
    assert tanh.shape == (1024,) and tanh[0] == 0 and tanh.max() < 1 << 14
    for j in range(1024):
        e2 = (2 * Decimal(j) / 256).exp()
        assert tanh[j] == _round_even(16384 * (e2 - 1) / (e2 + 1)), j


def _table_reference(codes, t_frac=10):
    """T from the definition: (x - mean) / std (population) in 50-digit decimals, rounded half
    to even (not clamped); a constant column keeps scale 1."""
    n, F = codes.shape
    T = np.zeros((F, 16), dtype=np.int64)
    for f in range(F):
        col = [Decimal(int(v)) for v in codes[:, f]]
        mean = sum(col) / n
        var = sum((v - mean) ** 2 for v in col) / n
        std = var.sqrt() if var > 0 else Decimal(1)
        for x in range(16):
            T[f, x] = _round_even((Decimal(x) - mean) / std * (1 << t_frac))
    return T


def test_standardisation_table_against_its_definition():
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 16, size=(37, 6))
    codes[:, 2] = 3                         # constant in training: scale 1
    codes[:, 4] = 0
    codes[0, 4] = 15                        # one rare value: large standardised entries
    T, clamped = standardisation_table(codes, 4, 10)
    ref = _table_reference(codes)
    assert np.array_equal(T, ref)
    assert clamped == 0 and np.abs(ref).max() < 32767
    T8, clamped8 = standardisation_table(codes, 4, 14)      # Q2.14: the rare value clamps
    ref8 = _table_reference(codes, 14)
    out = (ref8 < -32768) | (ref8 > 32767)
    assert np.array_equal(T8, np.clip(ref8, -32768, 32767)) and clamped8 == out.sum() > 0
    assert np.array_equal(T[2], (np.arange(16) - 3) * 1024)


def test_table_agrees_with_the_host_standardisation_on_digits():
    """At 5 bits digits are stored exactly, so T[f][x] / 2^10 is the host trainer's
    standardised feature (training mean and population std) within half an LSB, wherever the
    table does not clamp."""
    ds = load_dataset("digits")
    data = chip_data("digits", feature_bits=5)
    raw = raw_splits("digits")[0]
    T = data.table
    got = T[np.arange(64)[None, :], raw] / 1024.0
    ok = np.abs(T[np.arange(64)[None, :], raw]) < 32767
    assert ok.mean() > 0.999
    assert np.abs(got - ds.X_train)[ok].max() <= 0.5 / 1024 + 1e-12


def test_data_layout_and_capacity():
    assert words_per_sample(64, 4) == 17 and words_per_sample(64, 5) == 22
    data = chip_data("digits", feature_bits=4)
    assert data.words == 1797 * 17 < DATA_CAPACITY_WORDS == 3 * 16384
    assert data.train.codes.max() == 15          # 16 clipped to 15 at 4 bits
    assert chip_data("digits", feature_bits=5).train.codes.max() == 16


# Forward pass ----------------------------------------------------------------------------------

def test_logreg_logits_against_float_on_dequantised_operands():
    rng = np.random.default_rng(1)
    F, K, n = 64, 10, 200
    feats = rng.integers(-8192, 8192, size=(n, F))
    w = rng.integers(-1024, 1024, size=F * K + K)
    s = logits("logreg", w, feats, K)
    ref = (feats / 1024.0) @ (w[:F * K].reshape(F, K) / 4096.0) + w[F * K:] / 4096.0
    assert np.all(np.abs(s) < 32767)
    err = np.abs(s / 256.0 - ref)
    assert err.max() <= 0.5 / 256 + 1e-9          # exact accumulation, one rounding
    assert err.max() > 0.4 / 256                  # (the rounding is really there)


def test_logit_rounding_is_half_up_and_saturates():
    # one feature of 1 LSB times a weight of 2^13 LSBs: acc = 2^13 = half of 2^14
    w = np.zeros(2 * 1 + 2, dtype=np.int64)
    w[0], w[1] = 8192, -8192
    s = logits("logreg", w, np.array([[1]]), 2)
    assert s.tolist() == [[1, 0]]                 # +0.5 -> 1, -0.5 -> 0
    w[0], w[1] = 32767, -32768
    s = logits("logreg", w, np.full((1, 1), 32767), 2)
    assert s.tolist() == [[32767, -32768]]        # int16 saturation


def test_mlp_logits_against_float_within_the_table_bound():
    rng = np.random.default_rng(2)
    F, H, K, n = 64, 16, 10, 100
    feats = rng.integers(-3000, 3000, size=(n, F))
    w = rng.integers(-600, 600, size=F * H + H + H * K + K)
    s = logits("mlp", w, feats, K, H)
    W1 = w[:F * H].reshape(F, H) / 4096.0
    b1 = w[F * H:F * H + H] / 4096.0
    at = F * H + H
    W2 = w[at:at + H * K].reshape(H, K) / 4096.0
    b2 = w[at + H * K:] / 4096.0
    pre = (feats / 1024.0) @ W1 + b1
    h = np.tanh(pre)
    ref = h @ W2 + b2
    # hidden error: the pre-activation's rounding (tanh' <= 1), the table's rounding, the
    # clamp at 1023/256
    h_err = 0.5 / 256 + 0.5 / 16384 + (1 - math.tanh(1023 / 256)) * (np.abs(pre) > 1023.5 / 256)
    bound = np.abs(W2)[None, :, :] * h_err[:, :, None]
    bound = bound.sum(axis=1) + 0.5 / 256 + 1e-9
    assert np.all(np.abs(s / 256.0 - ref) <= bound)
    assert (np.abs(pre) > 4).any() and (np.abs(pre) < 1).any()


# Loss ------------------------------------------------------------------------------------------

def _exact_bits(s, y):
    s = s.astype(np.float64) / 256
    m = s.max(axis=-1, keepdims=True)
    return np.log2(np.exp2(s - m).sum(axis=-1)) + m[..., 0] - s[np.arange(len(y)), y]


def test_loss_within_its_stated_bound_of_exact_base2_cross_entropy():
    rng = np.random.default_rng(3)
    K = 10
    bound = math.log2(1 + 2 ** -9) + 2 ** -13 - math.log2(1 - 1.5 * 9 / 2 ** 15)
    assert loss_bound(K) == pytest.approx(bound, rel=1e-12)
    worst = 0.0
    for spread in (8, 200, 2000, 20000):
        s = rng.integers(-spread, spread, size=(4000, K))
        y = rng.integers(0, K, size=4000)
        L = loss_table(s, y)
        exact = _exact_bits(s, y)
        ok = L < (1 << 20) - 1
        err = np.abs(L[ok] / 4096 - exact[ok])
        assert err.max() <= bound
        worst = max(worst, err.max())
    assert worst > 0.6 * bound          # the bound is not loose by much


def test_loss_known_answers():
    # ten equal logits: log2 10 = 3 + log2(1.25); S = 10 * 2^15, p = 18, index 64
    L = loss_table(np.zeros((1, 10), dtype=np.int64), np.array([3]))
    mid = Decimal(1) + Decimal(129) / 512
    assert L[0] == 3 * 4096 + _round_even(4096 * mid.ln() / Decimal(2).ln())
    # a confident correct sample: S = 2^15 exactly, L = LOG[0]
    s = np.full((1, 10), -10000)
    s[0, 7] = 0
    assert loss_table(s, np.array([7]))[0] == _round_even(
        4096 * (Decimal(1) + Decimal(1) / 512).ln() / Decimal(2).ln()) == 12
    # a hopeless one (d_y = 65535, nine maxima) saturates at 2^20 - 1
    s = np.full((1, 10), 32767)
    s[0, 7] = -32768
    assert loss_table(s, np.array([7]))[0] == (1 << 20) - 1


# Coefficient -----------------------------------------------------------------------------------

def test_coefficient_known_answers():
    assert coefficient(3, 0, 128, 8) == (-2, False)      # -1.5 -> -2 (half to even)
    assert coefficient(1, 0, 128, 8) == (0, False)       # -0.5 -> 0
    assert coefficient(0, 5, 128, 8) == (2, False)       # 2.5 -> 2
    assert coefficient(0, 7, 128, 8) == (4, False)       # 3.5 -> 4
    assert coefficient(0, 3, 200, -2) == (2400, False)   # a left shift
    assert coefficient(10 ** 6, 0, 255, 0) == (-32767, True)
    assert coefficient(0, 10 ** 6, 255, 0) == (32767, True)


def test_coefficient_is_the_mezo_formula_with_the_realised_values():
    # c = -lr (L+ - L-) / (2 mu B) in units of 2^-20, with L in Q8.12, lr = 2^-7, mu = 2^-8,
    # B = 64: exactly -4 (L+ - L-)
    lr_m, lr_e = quantise_lr(2.0 ** -7)
    assert (lr_m, lr_e) == (128, 14)
    d = np.arange(-5000, 5000, 37)
    c, _ = coefficient(d, 0, lr_m, 14 + 6 + 1 + 12 - 20 - 8)
    exact = -(2.0 ** -7) * (d / 4096) / (2 * 2.0 ** -8 * 64) * 2 ** 20
    assert np.array_equal(c, np.clip(exact, -32767, 32767))
    assert quantise_lr(5e-3) == (164, 15)
    assert quantise_lr(255.9 * 2.0 ** -15) == (128, 14)      # 255.9 rounds up to 2^8


def test_step_schedule_shifts_the_coefficient_at_half_and_three_quarters():
    res = train_on_chip_model(steps=16, seed=5, schedule="step", step_shift=2, eval_every=16)
    # logreg defaults: lr = mu = 2^-7, B = 64: lr_m = 128, R = 14 + 6 + 1 + 12 - 20 - 7 = 6
    for t in range(16):
        R = 6 + 2 * ((t >= 8) + (t >= 12))
        x = -(int(res.sum_plus[t]) - int(res.sum_minus[t])) * 128
        q, r = divmod(x, 1 << R)                    # round half to even, by hand
        q += r > (1 << (R - 1)) or (r == 1 << (R - 1) and q & 1)
        assert res.coef[t] == max(-32767, min(32767, q)), t


# Sampler ---------------------------------------------------------------------------------------

def _lfsr_bits(seed, count):
    """x_0.. of the k = 64 LFSR x^64 + x^4 + x^3 + x + 1 from the seeding rule's start state,
    one bit at a time: x_{i+64} = x_i ^ x_{i+1} ^ x_{i+3} ^ x_{i+4}."""
    st = lane_states(seed, 64, 1, 32, SAMPLER_TWEAK)[0]
    x = [(st >> i) & 1 for i in range(64)]
    while len(x) < count:
        i = len(x) - 64
        x.append(x[i] ^ x[i + 1] ^ x[i + 3] ^ x[i + 4])
    return x


def _field(x, at, width):
    return sum(x[at + j] << j for j in range(width))


def test_sampler_first_indices_from_the_definition():
    N, B, seed = 1077, 5, 12345
    x = _lfsr_bits(seed, 3 * (32 + 24 * B))
    seeds, idx, _ = Sampler(seed, N, B).next(3)
    for t in range(3):
        base = t * (32 + 24 * B)
        assert seeds[t] == _field(x, base, 32)
        for j in range(B):
            r = _field(x, base + 32 + 24 * j, 24)
            assert idx[t, j] == (r * N) >> 24
    # anchors (seed 1, N = 1,077, B = 4): a change of the rule shows here
    s1, i1, _ = Sampler(1, 1077, 4).next(2)
    assert [int(s1[0]), int(s1[1])] == SAMPLER_ANCHOR_SEEDS
    assert i1.tolist() == SAMPLER_ANCHOR_INDICES


SAMPLER_ANCHOR_SEEDS = [1075371181, 157192232]
SAMPLER_ANCHOR_INDICES = [[133, 154, 441, 129], [589, 955, 812, 610]]


def test_sampler_uniformity_and_pairs():
    N, B = 1077, 1024
    _, idx, r = Sampler(2026, N, B).next(200)           # 204,800 draws
    flat = idx.reshape(-1)
    counts = np.bincount(flat, minlength=N)
    assert counts.min() > 0 and len(counts) == N
    assert stats.chisquare(counts).pvalue > 1e-3
    assert stats.kstest(r.reshape(-1) / 2.0 ** 24, "uniform").pvalue > 1e-3
    a, b = flat[:-1] * 32 // N, flat[1:] * 32 // N       # consecutive pairs, 32 x 32 cells
    pairs = np.bincount(a * 32 + b, minlength=1024)
    width = np.bincount(np.arange(N) * 32 // N, minlength=32)   # 33 or 34 indices per cell
    expected = np.outer(width, width).reshape(-1) / N ** 2 * pairs.sum()
    assert stats.chisquare(pairs, expected).pvalue > 1e-3


# The step --------------------------------------------------------------------------------------

def test_passes_restore_every_weight_bit():
    cfg = engine_config(650, 2)
    port = make_port(650, 2, "golden")
    rng = np.random.default_rng(4)
    w0 = rng.integers(-20000, 20000, size=650)
    port.reset(w0, 4096)
    wp, wm = port.pair(99)
    assert np.array_equal(port.read()[:650], w0)
    p = wp - w0
    assert np.array_equal(w0 - wm, p) and np.count_nonzero(p) > 600
    assert np.abs(p).max() < 200 and cfg.lanes == 2


def test_weights_change_only_by_the_update_between_steps():
    """With the plain engine, step t leaves w_{t+1} = w_t + the UPDATE c_t pass alone (replayed
    on a fresh engine model): passes 1-3 left no trace."""
    data = chip_data("digits")
    res = train_on_chip(data, OnChipConfig(steps=4, eval_every=1, seed=3),
                        port=make_port(650, 2, "golden"))
    cfg = engine_config(650, 2)
    prev = np.zeros(650, dtype=np.int64)
    for t in range(4):
        m = EngineModel(cfg)
        m.execute(Op.WRITE, cfg.words << 32, prev.reshape(-1, 2))
        m.execute(Op.ROUNDING, 1)
        if res.coef[t]:
            m.execute(Op.SEED, int(res.seeds[t]))
            m.execute(Op.UPDATE, encode_signed(int(res.coef[t])))
        assert np.array_equal(m.weights, res.weight_log[t + 1]), t
        prev = res.weight_log[t + 1]
    assert np.count_nonzero(res.coef) >= 3


@pytest.mark.parametrize("model", ["logreg", "mlp"])
def test_fused_engine_equals_the_plain_golden_engine(model):
    data = chip_data("digits")
    cfg = OnChipConfig(model=model, steps=5, eval_every=2, seed=11, batch=16)
    runs = [train_on_chip(data, cfg, port=make_port(650 if model == "logreg" else 1210, 2, e))
            for e in ("golden", "fused")]
    a, b = runs
    for name in ("seeds", "indices", "sum_plus", "sum_minus", "coef", "weights"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.weight_log.keys() == b.weight_log.keys()
    assert all(np.array_equal(a.weight_log[k], b.weight_log[k]) for k in a.weight_log)


def test_runs_are_deterministic_and_seeded():
    a = train_on_chip_model(steps=60, seed=7)
    b = train_on_chip_model(steps=60, seed=7)
    c = train_on_chip_model(steps=60, seed=8)
    for name in ("seeds", "indices", "sum_plus", "sum_minus", "coef", "weights"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.indices, c.indices) and not np.array_equal(a.seeds, c.seeds)
    assert a.curve == b.curve and a.test_acc == b.test_acc


def test_short_training_learns_and_keeps_the_best_checkpoint():
    res = train_on_chip_model(steps=400, seed=1, eval_every=50)
    assert res.test_acc > 0.7 and res.val_acc > 0.7
    best = min(res.curve, key=lambda p: (p["val_loss_sum"], p["step"]))
    assert res.best_step == best["step"]
    assert np.array_equal(res.weights, res.weight_log[res.best_step])
    assert res.stats["saturated_passes"] == 0 and res.stats["acc_max"] < 2 ** 31


# Errors ----------------------------------------------------------------------------------------

def _small_data(n_train=10, n=10, value=3, labels=2):
    X = np.full((n_train, 4), value)
    y = np.arange(n_train) % labels
    Xo, yo = np.full((n, 4), value), np.arange(n) % labels
    return onchip_data(X, y, Xo, yo, Xo, yo)


@pytest.mark.parametrize("field,value,exc,msg", [
    ("steps", 0, ValueError, r"^Step count \(steps\) must be an integer in 1\.\.16777215, not 0$"),
    ("steps", 1.5, TypeError, r"^Step count \(steps\) must be an integer, not 1\.5$"),
    ("batch", 48, ValueError, r"^Batch size \(batch\) must be a power of two in 1\.\.1024 \(the "
                              r"coefficient divides by B with a shift\), not 48$"),
    ("lr", 1e-7, ValueError, r"^Learning rate \(lr\) 1e-07 underflows the coefficient register: "
                             r"below 2\^-20 .*; accepted: 2\^-20\.\.2\^-4$"),
    ("lr", 0.5, ValueError, r"^Learning rate \(lr\) 0\.5 is above 2\^-4: .*accepted: "
                            r"2\^-20\.\.2\^-4$"),
    ("lr", float("nan"), ValueError, r"^Learning rate \(lr\) must be a positive number, not nan$"),
    ("mu", 0.005, ValueError, r"^mu must be a power of two \(the coefficient is a shift, no "
                              r"divider\), 2\^-12\.\.2\^-6, not 0\.005$"),
    ("mu", 2.0 ** -14, ValueError, r"^mu 6\.103515625e-05 underflows the Q\.12 weights: mu z "
                                   r"must be at least one weight LSB \(2\^-12\) per unit of z; "
                                   r"accepted: 2\^-12\.\.2\^-6$"),
    ("mu", 2.0 ** -5, ValueError, r"^mu 0\.03125 does not fit the coefficient register "),
    ("model", "cnn", ValueError, r"^Model must be one of logreg, mlp, not 'cnn'$"),
    ("schedule", "cosine", ValueError, r"^Schedule must be one of constant, step, not 'cosine'$"),
    ("seed", -1, ValueError, r"^Seed must be an integer in 0\.\.4294967295, not -1$"),
    ("eval_every", 9000, ValueError, r"^Evaluation interval \(eval_every\) must be an integer "
                                     r"in 1\.\.8000, not 9000$"),
    ("loss", "hinge", ValueError, r"^Loss must be one of table, exact, not 'hinge'$"),
    ("lanes", 0, ValueError, r"^Engine lane count \(lanes\) must be an integer in 1\.\.8, not 0$"),
])
def test_bad_configuration_errors(field, value, exc, msg):
    with pytest.raises(exc, match=msg):
        OnChipConfig(**{field: value}).resolved()


def test_bad_data_and_run_errors():
    with pytest.raises(ValueError, match=r"^Batch size \(batch\) 16 is larger than the training "
                                         r"split \(10 samples\)$"):
        train_on_chip(_small_data(), OnChipConfig(batch=16, steps=1))
    X = np.zeros((2900, 64), dtype=np.int64)
    y = np.arange(2900) % 10
    with pytest.raises(ValueError, match=r"^Data set of 8700 samples x 64 features at 4 bits "
                                         r"needs 147,900 SPRAM words \(17 per sample\), more than "
                                         r"the 49,152 of SPRAM banks 0-2 \(3 x 256 kbit; bank 3 "
                                         r"holds the checkpoint and the log\)$"):
        onchip_data(X, y, X, y, X, y)
    with pytest.raises(ValueError, match=r"^Feature width \(feature_bits\) must be one of 4, 5, "
                                         r"not 6$"):
        onchip_data(X, y, X, y, X, y, feature_bits=6)
    with pytest.raises(ValueError, match=r"^The train split's features must be raw integers in "
                                         r"0\.\.255 .*not values in \[0\.0, 300\.0\]$"):
        onchip_data(np.array([[0.0, 300.0]]), [0], X, y, X, y)
    with pytest.raises(ValueError, match=r"^The val split's labels must be 2 integers in 0\.\.15"):
        onchip_data(X[:2], y[:2], X[:2], np.array([0, 16]), X[:2], y[:2])
    with pytest.raises(ValueError, match=r"^Initial weights \(theta0\) must be 10 integers in "
                                         r"-32768\.\.32767 \(Q4\.12\), not an array of shape "
                                         r"\(3,\) \(int64\)$"):
        train_on_chip(_small_data(), OnChipConfig(batch=2, steps=1),
                      theta0=np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"^The port's engine \(.*\) is not the training "
                                         r"design's \(.*\): build it with engine_config\(10, 2\)$"):
        train_on_chip(_small_data(), OnChipConfig(batch=2, steps=1), port=make_port(12, 2))
    with pytest.raises(TypeError, match=r"^Data must be an OnChipData "):
        train_on_chip("digits")


def test_trainer_config_fits_only_data_of_its_own_shape():
    """The design computes K logits, the golden model the data's K: they must be equal (a data
    set with fewer classes than the design used to pass, and the two then disagreed)."""
    from pezo.sim.ontrain import TrainerConfig, onchip_data
    rng = np.random.default_rng(0)
    parts = []
    for n in (30, 10, 10):
        parts += [rng.integers(0, 16, size=(n, 8)), np.arange(n) % 2]
    data = onchip_data(*parts, feature_bits=4)
    TrainerConfig(8, 2).fits(data, 4)
    for cfg in (TrainerConfig(8, 4), TrainerConfig(6, 2), TrainerConfig(8, 2, feature_bits=5)):
        with pytest.raises(ValueError, match=r"^The data \(8 features at 4 bits, 2 classes\) "
                                             r"does not fit the training design "):
            cfg.fits(data)
    with pytest.raises(ValueError, match=r"Batch size \(batch\) 512 is larger than the "
                                         r"training design's index buffer \(256\)"):
        TrainerConfig(8, 2).fits(data, 512)


def test_quantise_features_bins_by_the_training_range():
    """Any numeric features become codes 0..2^b - 1: 2^b equal bins over each feature's
    training range, clamped outside it; a constant training column gives code 0 (checked
    against the bin edges written out by hand)."""
    from pezo.host.ontrain import quantise_features
    X_train = np.array([[0.0, 5.0, -1.0], [16.0, 5.0, 1.0], [8.0, 5.0, 0.0]])
    X_val = np.array([[-3.0, 7.0, 0.49], [17.0, 5.0, -0.51]])
    tr, va, te = quantise_features(X_train, X_val, X_train[:1], feature_bits=4)
    # feature 0: bins of width 1 on [0, 16]; 16 is the top bin's right edge -> 15
    assert tr[:, 0].tolist() == [0, 15, 8] and va[:, 0].tolist() == [0, 15]
    assert (tr[:, 1] == 0).all() and va[:, 1].tolist() == [2, 0]        # width 1 for a constant
    # feature 2: width 2/16 = 0.125 on [-1, 1]: 0.49 -> floor(1.49 / 0.125) = 11
    assert tr[:, 2].tolist() == [0, 15, 8] and va[:, 2].tolist() == [11, 3]
    assert te.tolist() == [[0, 0, 0]]
    tr5, _, _ = quantise_features(X_train, X_val, X_val, feature_bits=5)
    assert tr5[:, 0].tolist() == [0, 31, 16]
    # the on-chip golden model trains on quantised float data
    res = train_on_chip_model(dataset="sklearn:breast_cancer", quantise=True, steps=300,
                              batch=32, eval_every=100, seed=1)
    assert res.test_acc > 0.85


def test_onchip_data_takes_a_larger_class_count():
    """n_classes above the labels' count adds classes no sample has (a design computes classes
    two at a time); below it, or above 16, is refused."""
    from pezo.sim.ontrain import onchip_data
    parts = []
    for n in (12, 6, 6):
        parts += [np.arange(n * 4).reshape(n, 4) % 16, np.arange(n) % 3]
    assert onchip_data(*parts).n_classes == 3
    assert onchip_data(*parts, n_classes=4).n_classes == 4
    for bad in (2, 17, 3.0):
        with pytest.raises(ValueError, match=r"^Class count \(n_classes\) must be an integer in "
                                             r"3\.\.16 \(the labels reach 2\), not "):
            onchip_data(*parts, n_classes=bad)
    res = train_on_chip_model(dataset="sklearn:wine", quantise=True, class_multiple=2,
                              steps=300, batch=16, eval_every=100, seed=1)
    assert res.test_acc > 0.8 and len(res.weights) == (13 + 1) * 4
