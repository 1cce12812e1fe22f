"""The ZO methods on the perturbation engine: one step each, behind one interface (``pezo train
--algo NAME``). docs/algorithms.md gives the estimators, their sources and the measurements.

=================  ===========================================================================
algorithm          one step t (minibatch B_t, learning rate eta_t, q query seeds s_{t,i})
=================  ===========================================================================
``mezo``           ZO-SGD, MeZO form (:mod:`pezo.host.train`): g_i = (L+ - L-) / 2 mu, q updates
``ranksgd``        ZO-RankSGD: the 2q points theta +- mu z_i are ranked by an oracle that sees
                   only the order of their losses (optionally noisy, optionally only the top k);
                   each point j gets w_j = #better(j) - #worse(j) (the pairwise comparisons the
                   ranking implies, Tang et al. 2024), the estimate is
                   sum_j w_j s_j z_{i(j)} / |E| and direction i is updated with
                   c_i = -eta (w_{i+} - w_{i-}) / |E|: q UPDATE passes, z_i regenerated
``deepzero``       DeepZero (Chen et al. 2024): a sparse coordinate set chosen by ZO-GraSP
                   layer ratios (random per layer, re-drawn every ``mask_every`` steps);
                   estimator ``cge``: per active coordinate COORD +mu, read its word, COORD -mu
                   (exact), g_i = (L(theta + mu e_i) - L(theta)) / mu, update COORD
                   -eta g_i; estimator ``rge``: MeZO with the mask in the engine (MASK bitmap)
``elasticzo``      ElasticZO (Sugiura and Matsutani 2025): MeZO on every layer but the last
                   (RANGE), backpropagation for the last layer (the host reads the weights,
                   computes the last layer's gradient and writes its words back)
=================  ===========================================================================

Every algorithm runs on every perturbation source (gaussian/uniform float references, the golden
engine, the simulated hardware, a board); the engine options it needs (``coord``, ``mask``) are
those of :attr:`Algorithm.engine`, checked against the source's engine before training.
"""

import collections
import math
import time

import numpy as np

from pezo.config import MASKS
from pezo.host import int8
from pezo.host.perturb import derive_seed

__all__ = ["ALGOS", "ESTIMATORS", "Algorithm", "make_algorithm", "rank_weights",
           "zo_grasp_ratios"]

ESTIMATORS = ("cge", "rge")


def rank_weights(order, n, k=None):
    """ZO-RankSGD's weights of ``n`` points ranked best first by ``order`` (point indices; only
    the first ``k`` are ranked, ``k=None`` or ``n``: all): w_j = #points ranked better than j -
    #points ranked worse than j, counting the comparisons the (partial) ranking implies (a
    ranked point beats every unranked one). Returns (w (n,) int64, |E| = the number of
    comparisons). The weights sum to 0."""
    k = n if k is None else int(k)
    if not 1 <= k <= n:
        raise ValueError(f"Ranked points (top_k) must be in 1..{n}, not {k!r}")
    order = np.asarray(order)
    w = np.full(n, k, dtype=np.int64)               # unranked: k better, none worse
    w[order[:k]] = 2 * np.arange(k) - n + 1         # rank r: r better, n - 1 - r worse
    return w, k * (k - 1) // 2 + k * (n - k)


def zo_grasp_ratios(model, theta, X, y, sparsity, seed=0, queries=64, mu=5e-3):
    """DeepZero's ZO-GraSP layer ratios: scores S = -theta * (H g) with g and H g estimated by
    forward differences only (g0 = RGE at theta, g1 = RGE at theta + mu g0 with the same
    directions, H g ~ (g1 - g0) / mu; per-tensor normalised directions, as in DeepZero's
    ``rge``), the weight tensors (not the biases) pruned globally by |S| at ``sparsity``;
    returns {block name: fraction of it kept} (biases: 1.0)."""
    sizes = [math.prod(s) for _, s in model.shapes]
    rng = np.random.default_rng(seed)
    dirs = np.zeros((queries, model.n_params))
    at = 0
    for size in sizes:
        u = rng.standard_normal((queries, size))
        dirs[:, at:at + size] = u / np.linalg.norm(u, axis=1, keepdims=True)
        at += size

    def rge(th):
        f0 = model.loss(th, X, y)
        f = model.loss(th + mu * dirs, X, y)
        return ((f - f0) / mu) @ dirs / queries

    g0 = rge(theta)
    hg = (rge(theta + mu * g0) - g0) / mu
    blocks = model.unpack(np.abs(-theta * hg))
    pool = np.concatenate([b.ravel() for n, b in blocks.items() if n.startswith("W")])
    cut = int(round(sparsity * pool.size))
    thresh = np.sort(pool)[cut - 1] if cut else -np.inf
    return {n: float(np.mean(b > thresh)) if n.startswith("W") else 1.0
            for n, b in blocks.items()}


class Algorithm:
    """One ZO method: ``step`` runs one training step on ``source`` (a
    :class:`pezo.host.perturb.PerturbSource`) and returns the minibatch losses it saw.
    ``forward_passes`` counts the training forward passes (one per parameter vector and
    minibatch; a backpropagation counts as its forward pass)."""

    name = "?"

    def __init__(self, cfg, model, source, loss):
        self.cfg, self.model, self.source, self.loss = cfg, model, source, loss
        self.forward_passes = 0
        self.fwd_time = 0.0         # forward passes run outside ``loss`` (the integer ones)
        self.stats = collections.Counter()      # the method's own counters (head_clipped)

    @staticmethod
    def engine(cfg) -> dict:
        """Engine options this algorithm needs (EngineConfig fields)."""
        return {}

    def check_source(self):
        need = self.engine(self.cfg)
        ecfg = getattr(self.source, "cfg", None)
        if ecfg is None:
            return
        if need.get("coord") and not ecfg.coord:
            raise ValueError(f"Algorithm {self.name} needs an engine built with coord=True "
                             f"(COORD); this source's engine has coord=False")
        want = need.get("mask", "none")
        if MASKS.index(ecfg.mask) < MASKS.index(want):      # each mask includes the one before
            raise ValueError(f"Algorithm {self.name} needs an engine built with mask={want!r}; "
                             f"this source's engine has mask={ecfg.mask!r}")

    def setup(self, data):
        """After the source holds theta0: masks, ranges."""

    def updated(self):
        """The coordinates this method's ZO update acts on now (bool, n_params), None: all
        (the trainer counts the updates among them that round to nothing)."""
        return None

    def evaluate(self, theta, X, y):
        """(mean loss in nats, accuracy) of the model as this algorithm runs it."""
        return self.model.evaluate(theta, X, y)

    def step(self, t, Xb, yb, eta, seeds) -> list:
        raise NotImplementedError

    # MeZO's queries, shared by mezo, deepzero-rge and elasticzo
    def _mezo(self, Xb, yb, eta, seeds):
        source, q = self.source, len(seeds)
        grads, seen = [], []
        for s in seeds:
            qy = source.begin(s)
            pair = source.perturb_pair(qy)          # passes 1-3: theta+ and theta-
            lp, lm = self.loss(pair, Xb, yb)
            grads.append((qy, (lp - lm) / (2.0 * source.mu)))
            seen.append(0.5 * (lp + lm))
        for qy, g in grads:
            source.update(qy, -eta * g / q)
        self.forward_passes += 2 * q
        return seen


class MeZO(Algorithm):
    name = "mezo"

    def step(self, t, Xb, yb, eta, seeds):
        return self._mezo(Xb, yb, eta, seeds)


class RankSGD(Algorithm):
    name = "ranksgd"

    def step(self, t, Xb, yb, eta, seeds):
        cfg, source = self.cfg, self.source
        queries, losses = [], []
        for s in seeds:
            qy = source.begin(s)
            lp, lm = self.loss(source.perturb_pair(qy), Xb, yb)
            queries.append(qy)
            losses += [lp, lm]              # point 2i: theta + mu z_i, 2i + 1: theta - mu z_i
        n = len(losses)
        self.forward_passes += n
        scores = np.asarray(losses)
        if cfg.rank_noise:
            rng = np.random.default_rng([cfg.seed, 6, t])
            scores = scores + cfg.rank_noise * rng.standard_normal(n)
        order = np.argsort(scores, kind="stable")       # the oracle: best (lowest) first
        w, edges = rank_weights(order, n, cfg.top_k or None)
        for i, qy in enumerate(queries):
            c = (w[2 * i] - w[2 * i + 1]) / edges
            if c:
                source.update(qy, -eta * c)
        return [float(np.mean(losses))]


class DeepZero(Algorithm):
    name = "deepzero"

    @staticmethod
    def engine(cfg):
        if cfg.estimator == "cge":
            return {"coord": True}
        return {"mask": "bitmap"} if cfg.sparsity > 0 else {}

    def setup(self, data):
        cfg, model = self.cfg, self.model
        self.ratios = {n: 1.0 for n, _ in model.shapes}
        if cfg.sparsity > 0:
            theta = self.source.params()
            n = min(len(data.y_train), 256)
            self.ratios = zo_grasp_ratios(model, theta, data.X_train[:n], data.y_train[:n],
                                          cfg.sparsity, seed=derive_seed(cfg.seed, 7))
        self.active = None
        self._draw(0)

    def updated(self):
        return self.active

    def _draw(self, t):
        """A random mask with the ZO-GraSP ratio of each block (DeepZero re-draws it every few
        epochs; here every ``mask_every`` steps)."""
        cfg, model = self.cfg, self.model
        if cfg.sparsity == 0:
            self.active = np.ones(model.n_params, dtype=bool)
            return
        rng = np.random.default_rng([cfg.seed, 8, t])
        parts = []
        for (name, shape) in model.shapes:
            size = math.prod(shape)
            keep = int(round(self.ratios[name] * size))
            a = np.zeros(size, dtype=bool)
            a[rng.choice(size, keep, replace=False)] = True
            parts.append(a)
        self.active = np.concatenate(parts)
        if cfg.estimator == "rge":
            self.source.set_active(self.active)

    def step(self, t, Xb, yb, eta, seeds):
        cfg = self.cfg
        if t and cfg.sparsity and t % cfg.mask_every == 0:
            self._draw(t)
        if cfg.estimator == "rge":
            return self._mezo(Xb, yb, eta, seeds)
        source = self.source
        idx = np.flatnonzero(self.active)
        base = source.params()
        thetas = np.repeat(base[None, :], idx.size + 1, axis=0)
        real = np.empty(idx.size)
        for j, i in enumerate(idx):
            real[j] = source.coord_add(int(i), cfg.mu)          # COORD +mu
            thetas[j + 1, i] = source.coord_value(int(i))       # read back: theta + mu e_i
            if real[j]:
                source.coord_add(int(i), -real[j])              # COORD -mu: restored exactly
        losses = self.loss(thetas, Xb, yb)
        self.forward_passes += idx.size + 1
        g = np.where(real != 0, (losses[1:] - losses[0]) / np.where(real != 0, real, 1), 0.0)
        for j, i in enumerate(idx):
            if g[j]:
                source.coord_add(int(i), -eta * g[j], seed=derive_seed(cfg.seed, 9, t, int(i)))
        return [float(losses[0])]


class ElasticZO(Algorithm):
    name = "elasticzo"

    @staticmethod
    def engine(cfg):
        return {"mask": "range"}

    def setup(self, data):
        model = self.model
        if model.kind != "mlp":
            raise ValueError(f"Algorithm {self.name} trains the last layer by backpropagation "
                             f"and the others by ZO: it needs model 'mlp', not {model.kind!r}")
        self.head = model.block_start("W2")
        ecfg = getattr(self.source, "cfg", None)
        if ecfg is not None and ecfg.mask == "range" and self.head % ecfg.lanes:
            raise ValueError(f"Algorithm {self.name}: the cut after the first layer (weight "
                             f"{self.head} = (features + 1) x hidden) must fall on a word of the "
                             f"engine's {ecfg.lanes} lanes for RANGE; choose a hidden size that "
                             f"makes it a multiple of {ecfg.lanes}, or an engine with "
                             f"mask='bitmap'")
        active = np.zeros(model.n_params, dtype=bool)
        active[:self.head] = True
        self.active = active
        self.source.set_active(active)

    def updated(self):
        return self.active

    def step(self, t, Xb, yb, eta, seeds):
        cfg, model, source = self.cfg, self.model, self.source
        theta = source.params()
        grad, _ = model.head_grad(theta, Xb, yb)    # the last layer's gradient at theta
        self.forward_passes += 1
        seen = self._mezo(Xb, yb, eta, seeds)       # ZO on the layers before the cut
        source.write_block(self.head, theta[self.head:] - cfg.bp_lr * grad,
                           seed=derive_seed(cfg.seed, 10, t))
        return seen


class ElasticZOInt8(ElasticZO):
    """ElasticZO with integer arithmetic only (:mod:`pezo.host.int8`): 8-bit engine weights,
    int8 inputs and activations, the ZO gradient from integer cross-entropy values and the last
    layer's integer gradient, both turned into weight steps by stochastic right shifts."""

    name = "elasticzo-int8"

    def setup(self, data):
        super().setup(data)
        src = self.source
        ecfg = getattr(src, "cfg", None)
        if ecfg is None:
            raise ValueError(f"Algorithm {self.name} keeps its weights as integers in an engine: "
                             f"it needs an engine source (pezo, pezo-sim, board), not "
                             f"{src.name!r}")
        if ecfg.w_bits != 8:
            raise ValueError(f"Algorithm {self.name} needs 8-bit engine weights (e.g. "
                             f"weight_format Q2.6, its default), not Q{ecfg.w_int}.{ecfg.w_frac}")
        if self.model.activation != "relu":
            raise ValueError(f"Algorithm {self.name} runs an integer ReLU network: it needs "
                             f"activation 'relu', not {self.model.activation!r}")
        self.wf, self.cf = ecfg.w_frac, ecfg.coef_frac
        self._xq = {}

    def _ints(self, theta):
        return np.rint(np.asarray(theta) * 2.0 ** self.wf).astype(np.int64)

    def _x(self, X):
        key = (id(X), X.shape)
        if key not in self._xq:
            if len(self._xq) > 8:
                self._xq.clear()
            self._xq[key] = (X, int8.quantise_inputs(X))
        return self._xq[key][1]

    def evaluate(self, theta, X, y):
        _, logits = int8.forward(self.model.unpack(self._ints(theta), np.int64), self._x(X),
                                 self.wf)
        loss = int8.int_ce(logits, y, self.wf)[0]
        return (float(loss.mean()) * math.log(2) / 2 ** int8.LOSS_FRAC,
                float((logits.argmax(axis=-1) == np.asarray(y)).mean()))

    def step(self, t, Xb, yb, eta, seeds):
        cfg, source, model = self.cfg, self.source, self.model
        B, q = len(yb), len(seeds)
        rng = np.random.default_rng([cfg.seed, 11, t])
        w = self._ints(source.params())
        xq = self._x(Xb)
        c0 = time.perf_counter()
        h, logits = int8.forward(self.model.unpack(w, np.int64), xq, self.wf)
        L, e, S = int8.int_ce(logits, yb, self.wf)
        grad = int8.head_grad_int(h, e, S, yb, model.n_out)
        self.fwd_time += time.perf_counter() - c0
        self.forward_passes += 1
        # c = -eta g with g = (dL ln2 / 2^8 / B) / (2 mu): the register value -dL * 2^-k
        k = round(-math.log2(eta * math.log(2) * 2.0 ** self.cf
                             / (2 ** int8.LOSS_FRAC * B * 2 * source.mu * q)))
        queries = []
        for s in seeds:
            qy = source.begin(s)
            pair = source.perturb_pair(qy)
            c0 = time.perf_counter()
            pair = self._ints(pair)
            _, lg = int8.forward(self.model.unpack(pair, np.int64), xq, self.wf)
            Lp, Lm = int8.int_ce(lg, yb, self.wf)[0].sum(axis=-1)
            self.fwd_time += time.perf_counter() - c0
            queries.append((qy, int(Lp - Lm)))
        self.forward_passes += 2 * q
        for qy, dl in queries:
            c = -int(int8.sround_shift(dl, k, rng))
            if c:
                source.update(qy, c / 2.0 ** self.cf)
        # the last layer: W2, b2 -= grad * bp_lr / B in weight LSBs, a stochastic shift
        kb = round(math.log2(B * 2.0 ** (int8.X_FRAC + 8 - self.wf) / cfg.bp_lr))
        want = w[self.head:model.n_params] - int8.sround_shift(grad, kb, rng)
        head = np.clip(want, -128, 127)
        self.stats["head_clipped"] += int(np.count_nonzero(head != want))
        source.write_block(self.head, head / 2.0 ** self.wf, seed=0)
        return [float(L.mean()) * math.log(2) / 2 ** int8.LOSS_FRAC]


ALGOS = {a.name: a for a in (MeZO, RankSGD, DeepZero, ElasticZO, ElasticZOInt8)}


def make_algorithm(cfg, model, source, loss) -> Algorithm:
    if cfg.algo not in ALGOS:
        raise ValueError(f"Algorithm must be one of {', '.join(ALGOS)}, not {cfg.algo!r}")
    algo = ALGOS[cfg.algo](cfg, model, source, loss)
    algo.check_source()
    return algo
