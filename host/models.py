"""Models for host-side ZO training, evaluated in NumPy on a flat parameter vector.

The weights live in the perturbation engine (or, for the float baselines, in a float64 vector);
the host reads them back as one flat vector ``theta`` and runs the forward pass here. Layout of
``theta`` (row-major blocks, in this order):

* ``logreg`` (multinomial logistic regression): W (features x classes), b (classes);
* ``mlp`` (one hidden layer, ``tanh`` or ``relu``): W1 (features x hidden), b1 (hidden),
  W2 (hidden x classes), b2 (classes).

Loss: mean softmax cross-entropy (natural log), computed with a stable log-sum-exp. Accuracy:
fraction of argmax predictions equal to the label. Every function also accepts a stack of
parameter vectors (shape (k, n_params)) and then returns k values, so L+ and L- of a MeZO step are
one batched forward pass.

The engine holds ``depth`` weights, a multiple of its lane count m: :func:`engine_depth` rounds the
parameter count up; the padding words are perturbed and updated like the others but never read by
the model.
"""

import math

import numpy as np

__all__ = ["MODELS", "ACTIVATIONS", "Model", "make_model", "engine_depth"]

MODELS = ("logreg", "mlp")
ACTIVATIONS = ("tanh", "relu")
MAX_DEPTH = 1 << 20         # EngineConfig's largest depth


class Model:
    """A classifier over a flat parameter vector.

    Parameters
    ----------
    kind : str
        ``"logreg"`` or ``"mlp"``.
    n_in, n_out : int
        Features and classes.
    hidden : int
        Hidden units (``mlp`` only).
    activation : str or None
        ``"tanh"`` (default; also for ``None``, a training configuration's "not chosen") or
        ``"relu"`` (``mlp`` only).
    """

    def __init__(self, kind, n_in, n_out, hidden=16, activation="tanh"):
        if activation is None:
            activation = "tanh"
        if kind not in MODELS:
            raise ValueError(f"Model must be one of {', '.join(MODELS)}, not {kind!r}")
        for name, v in (("Feature count", n_in), ("Class count", n_out), ("Hidden size", hidden)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if n_out < 2:
            raise ValueError(f"Class count must be at least 2, not {n_out!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"not {activation!r}")
        self.kind, self.n_in, self.n_out = kind, int(n_in), int(n_out)
        self.hidden = int(hidden) if kind == "mlp" else 0
        self.activation = activation
        if kind == "logreg":
            self.shapes = [("W", (self.n_in, self.n_out)), ("b", (self.n_out,))]
        else:
            h = self.hidden
            self.shapes = [("W1", (self.n_in, h)), ("b1", (h,)), ("W2", (h, self.n_out)),
                           ("b2", (self.n_out,))]
        self.n_params = sum(math.prod(s) for _, s in self.shapes)

    def __repr__(self):
        extra = f", hidden={self.hidden}, {self.activation}" if self.kind == "mlp" else ""
        return f"Model({self.kind}, {self.n_in} -> {self.n_out}{extra}: {self.n_params} params)"

    def describe(self) -> str:
        if self.kind == "logreg":
            return f"logreg {self.n_in}->{self.n_out}"
        return f"mlp {self.n_in}->{self.hidden}({self.activation})->{self.n_out}"

    # Parameters ---------------------------------------------------------------------------------
    def unpack(self, theta, dtype=np.float64):
        """Views of the blocks of ``theta`` (n_params,) or (k, n_params): a dict name -> array
        with a leading k axis when stacked (as ``dtype``: the integer network of ElasticZO-INT8
        unpacks int64)."""
        theta = np.asarray(theta, dtype=dtype)
        if theta.shape[-1] < self.n_params:
            raise ValueError(f"Parameter vector must hold at least {self.n_params} values, "
                             f"not {theta.shape[-1]}")
        lead = theta.shape[:-1]
        out, at = {}, 0
        for name, shape in self.shapes:
            size = math.prod(shape)
            out[name] = theta[..., at:at + size].reshape(lead + shape)
            at += size
        return out

    def init(self, seed=0, scale=1.0) -> np.ndarray:
        """Initial parameters (float64): zeros for ``logreg``; for ``mlp`` LeCun-normal weights
        (std 1/sqrt(fan-in), times ``scale``), zero biases. Deterministic in ``seed``."""
        theta = np.zeros(self.n_params)
        if self.kind == "mlp":
            rng = np.random.default_rng(seed)
            p = self.unpack(theta)
            p["W1"][...] = rng.normal(0, scale / math.sqrt(self.n_in), p["W1"].shape)
            p["W2"][...] = rng.normal(0, scale / math.sqrt(self.hidden), p["W2"].shape)
        return theta

    # Forward ------------------------------------------------------------------------------------
    def logits(self, theta, X):
        """Logits (n, classes), or (k, n, classes) for stacked parameters."""
        p = self.unpack(theta)
        X = np.asarray(X, dtype=np.float64)
        if self.kind == "logreg":
            return X @ p["W"] + p["b"][..., None, :]
        h = X @ p["W1"] + p["b1"][..., None, :]
        h = np.tanh(h) if self.activation == "tanh" else np.maximum(h, 0.0)
        return h @ p["W2"] + p["b2"][..., None, :]

    def loss(self, theta, X, y):
        """Mean softmax cross-entropy; a float, or an array of k losses for stacked parameters."""
        z = self.logits(theta, X)
        y = np.asarray(y)
        zmax = z.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(z - zmax).sum(axis=-1)) + zmax[..., 0]
        picked = z[..., np.arange(len(y)), y]
        out = (lse - picked).mean(axis=-1)
        return float(out) if np.ndim(out) == 0 else out

    def accuracy(self, theta, X, y):
        pred = self.logits(theta, X).argmax(axis=-1)
        out = (pred == np.asarray(y)).mean(axis=-1)
        return float(out) if np.ndim(out) == 0 else out

    def evaluate(self, theta, X, y) -> tuple:
        """(loss, accuracy) from one forward pass."""
        z = self.logits(theta, X)
        zmax = z.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(z - zmax).sum(axis=-1)) + zmax[..., 0]
        y = np.asarray(y)
        loss = float((lse - z[np.arange(len(y)), y]).mean())
        return loss, float((z.argmax(axis=-1) == y).mean())


    # Blocks and the last layer's gradient (ElasticZO) -----------------------------------------
    def block_start(self, name) -> int:
        """Index in ``theta`` of the first parameter of block ``name`` (W, b, W1, b1, W2, b2)."""
        at = 0
        for n, shape in self.shapes:
            if n == name:
                return at
            at += math.prod(shape)
        raise ValueError(f"Model {self.kind} has no block {name!r}; blocks: "
                         f"{', '.join(n for n, _ in self.shapes)}")

    def hidden_features(self, theta, X):
        """The hidden layer's output (n, hidden) (``mlp`` only): the input of the last layer."""
        if self.kind != "mlp":
            raise ValueError(f"Model {self.kind} has no hidden layer")
        p = self.unpack(theta)
        h = np.asarray(X, dtype=np.float64) @ p["W1"] + p["b1"]
        return np.tanh(h) if self.activation == "tanh" else np.maximum(h, 0.0)

    def head_grad(self, theta, X, y):
        """Backpropagation through the last layer only (``mlp``): the gradient of the mean
        cross-entropy with respect to W2 and b2, flat in ``theta``'s order (what ElasticZO
        trains by backpropagation), and the loss."""
        p = self.unpack(theta)
        h = self.hidden_features(theta, X)
        z = h @ p["W2"] + p["b2"]
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        prob = e / e.sum(axis=-1, keepdims=True)
        y = np.asarray(y)
        n = len(y)
        loss = float(-np.log(prob[np.arange(n), y]).mean())
        prob[np.arange(n), y] -= 1.0
        prob /= n
        return np.concatenate([(h.T @ prob).reshape(-1), prob.sum(axis=0)]), loss


def make_model(kind, n_in, n_out, hidden=16, activation="tanh") -> Model:
    return Model(kind, n_in, n_out, hidden, activation)


def engine_depth(n_params: int, lanes: int) -> int:
    """The engine depth for ``n_params`` weights at ``lanes`` (m) per word: rounded up to a
    multiple of m. Raises ``ValueError`` when that exceeds the engine's largest depth."""
    depth = -(-int(n_params) // int(lanes)) * int(lanes)
    if depth > MAX_DEPTH:
        raise ValueError(f"Model with {n_params} parameters does not fit the engine (at most "
                         f"{MAX_DEPTH} weights); use a smaller model")
    return depth
