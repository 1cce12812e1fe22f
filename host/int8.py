"""Integer-only arithmetic of ElasticZO-INT8 (docs/algorithms.md, "ElasticZO-INT8"): the forward
pass of the ReLU MLP, the integer cross-entropy loss, and the last layer's integer gradient.

Formats (every value an integer; ``F`` fraction bits means value = integer * 2^-F):

* inputs x: int8, ``X_FRAC`` = 4 fraction bits (standardised features, clipped to +-127/16);
* weights W1, b1, W2, b2: the engine's 8-bit weights, ``wf`` fraction bits (Q2.6, the default:
  wf = 6);
* first layer: a = x W1 + (b1 << X_FRAC) in int32 (X_FRAC + wf bits), h = clip(ReLU(a) >> wf,
  0, 127) rounded half up: int8 with X_FRAC bits;
* logits: l = h W2 + (b2 << X_FRAC), int32 with F = X_FRAC + wf bits.

Integer cross-entropy, in units of 2^-8 bit (log base 2; ``LOSS_FRAC`` = 8), per sample:

    t_k = ((l_k - max_j l_j) * 369) >> F           369 = round(256 log2 e): log2-domain, <= 0
    e_k = EXP2[(-t_k) & 255] >> ((-t_k) >> 8)        2^(t_k / 256) in Q15 (EXP2: 256 entries)
    S   = sum_k e_k                                  Q15, >= 2^15 (the maximum's term is 2^15)
    L   = LOG2(S) - t_y                              LOG2(S) = 256 (msb(S) - 15) + LOG2T[mantissa]

so L = 256 * log2-sum-exp2 - t_y ~ 256 * CE / ln 2; a batch's loss is the integer sum over its
samples. The softmax for the last layer's gradient reuses e and S: p_k = ((e_k << 8) + S / 2) // S
(Q8, rounded half up), err = p - 256 * onehot(y) (Q8, in [-256, 256]); dW2 = h^T err (int32,
X_FRAC + 8 bits), db2 = sum(err) << X_FRAC.

Why p is rounded, not truncated: the Q8 probabilities of a sample then sum to 256 on average (a
floor, ``(e << 8) // S``, left them 1.3-1.4 short per sample on wine and the synthetic set), and
err_y reaches 0 once a sample is classified with p_y > 255.5/256. A truncated p gives every class
a negative error on average; softmax does not see a shift common to all classes, so nothing pulls
it back, and b2 and W2 drifted upwards into the limits of the weight format (docs/algorithms.md,
"Saturation").
"""

import math

import numpy as np

__all__ = ["X_FRAC", "LOSS_FRAC", "quantise_inputs", "forward", "int_ce", "head_grad_int",
           "sround_shift", "EXP2", "LOG2T"]

X_FRAC = 4
LOSS_FRAC = 8
LOG2E_Q8 = 369                  # round(256 * log2(e))
#: 2^(-f/256) in Q15 for f = 0..255
EXP2 = np.array([round(2 ** 15 * 2 ** (-f / 256)) for f in range(256)], dtype=np.int64)
#: 256 * log2(1 + j/256) for j = 0..255 (the mantissa's table)
LOG2T = np.array([round(256 * math.log2(1 + j / 256)) for j in range(256)], dtype=np.int64)


def quantise_inputs(X):
    """Features as int8 with X_FRAC fraction bits (round to nearest, clipped to +-127)."""
    return np.clip(np.rint(np.asarray(X, dtype=np.float64) * (1 << X_FRAC)), -127,
                   127).astype(np.int64)


def _rshift_round(a, s):
    """a >> s rounded half up (s >= 1), on int64 arrays."""
    return (a + (1 << (s - 1))) >> s if s > 0 else a


def forward(p, x, wf):
    """Integer forward pass. ``p``: dict of int64 blocks W1, b1, W2, b2 (a leading stack axis
    allowed); ``x``: int8 inputs (n, features). Returns (h, logits) int64."""
    a = x @ p["W1"] + (p["b1"][..., None, :] << X_FRAC)
    h = np.clip(_rshift_round(np.maximum(a, 0), wf), 0, 127)
    return h, h @ p["W2"] + (p["b2"][..., None, :] << X_FRAC)


def _exp_terms(logits, wf):
    F = X_FRAC + wf
    t = ((logits - logits.max(axis=-1, keepdims=True)) * LOG2E_Q8) >> F
    n, f = (-t) >> 8, (-t) & 255
    e = np.where(n < 16, EXP2[f] >> np.minimum(n, 62), 0)
    return t, e, e.sum(axis=-1)


def _log2_q8(S):
    """256 * log2(S / 2^15) for integer S >= 2^15, by the leading bit and LOG2T."""
    S = np.asarray(S, dtype=np.int64)
    msb = np.floor(np.log2(S)).astype(np.int64)       # exact for int64 below 2^53
    msb -= (np.left_shift(1, msb) > S)                  # guard the float rounding
    msb += (np.left_shift(1, msb + 1) <= S)
    mant = np.where(msb >= 8, S >> np.maximum(msb - 8, 0), S << np.maximum(8 - msb, 0)) - 256
    return 256 * (msb - 15) + LOG2T[mant]


def int_ce(logits, y, wf):
    """Integer cross-entropy per sample (units 2^-LOSS_FRAC bit), and the exp terms reused by
    :func:`head_grad_int`: returns (loss (..., n) int64, e, S)."""
    t, e, S = _exp_terms(logits, wf)
    y = np.asarray(y)
    return _log2_q8(S) - t[..., np.arange(len(y)), y], e, S


def head_grad_int(h, e, S, y, n_out):
    """The last layer's integer gradient (dW2 flat, then db2), units 2^-(X_FRAC + 8) per sample
    summed over the batch."""
    S = S[..., None]
    p = ((e << 8) + (S >> 1)) // S
    p[np.arange(len(y)), y] -= 256
    return np.concatenate([(h.T @ p).reshape(-1), p.sum(axis=0) << X_FRAC])


def sround_shift(a, s, rng):
    """a / 2^s rounded stochastically (floor of (a + r) >> s, r uniform in [0, 2^s)), int64;
    s <= 0 is a left shift."""
    a = np.asarray(a, dtype=np.int64)
    if s <= 0:
        return a << -s
    r = rng.integers(0, 1 << s, a.shape, dtype=np.int64)
    return (a + r) >> s
