"""DistZO2-style distributed ZO training on Dask distributed (``pezo train --layout PxD``).

MeZO needs, per query, two forward passes: L+ = L(theta + mu z; B_t) and L- = L(theta - mu z;
B_t). DistZO2 (Wang et al.) spreads them two ways, combined here as a 2-D layout ``PxD``:

* **perturbation parallelism** (P = 2): one group of workers evaluates L+, the other L-;
* **data parallelism** (D shards): each worker evaluates its share of the minibatch.

There are P*D workers, each a Dask actor (:class:`Replica`) holding its own stateful replica: a
perturbation source built with :func:`pezo.host.perturb.make_source` (the golden engine
``pezo``, the simulated hardware ``pezo-sim``, a board, or the float sources), the model and the
data set. No weight, perturbation or example crosses the network. Every replica runs every
engine pass of every query (so it holds the same weights) and applies the same seeded updates;
it derives the step's query seeds (``derive_seed(run seed, 3, t, i)``) and its minibatch indices
(the trainer's seeded per-epoch shuffle) itself. Per step there is one round trip to every
worker: the driver sends ``(t, the previous step's update coefficients)`` and gets back loss
partial sums, a few scalars, whatever the model size d.

Determinism. The minibatch is always cut into ``chunks`` contiguous chunks (default
:data:`CHUNKS`); a worker runs one forward pass per (branch, chunk) it owns and returns the sum of
the per-example losses of each. The driver adds the chunk sums in chunk order, divides by the
batch size and forms g = (L+ - L-) / 2 mu. Every forward pass and every sum has the same operands
in every layout, so 1x1, 2x1, 1x2 and 2x2 produce the same g bit for bit, hence the same update
coefficients and the same engine weights. Against :func:`pezo.host.train.train` (one batched
forward pass, NumPy's pairwise mean) L+- differ in the last bits; an engine source quantises the
coefficient to its 16-bit register with a rounding draw seeded by the query seed, so such a
difference changes an update only if it straddles a rounding threshold (probability ~1e-12 per
query): the engine weights come out identical (tested), float sources differ by rounding noise.

Divergence check. Every ``check_every`` steps and at the end every replica returns a hash of its
raw engine weights (BLAKE2b of the weight words); if they differ, :class:`DivergenceError` names
the step, the workers and their hashes.

docs/distributed.md has the layouts, the measured figures and how to use a multi-machine cluster.
"""

import ctypes
import ctypes.util
import dataclasses
from dataclasses import dataclass, field
import hashlib
import math
import os
import pickle
import re
import statistics
import sys
import time

import numpy as np

from pezo.boards.targets import get_board
from pezo.cluster import ClusterError, dask_client
from pezo.host.data import load_dataset
from pezo.host.models import make_model
from pezo.host.perturb import derive_seed, derive_seeds, make_source
from pezo.host.train import (PREFETCH, TrainConfig, TrainResult, _Batches, lr_at,
                             record_point)

__all__ = ["CHUNKS", "CHECK_EVERY", "DivergenceError", "DistResult", "Replica", "parse_layout",
           "chunk_bounds", "train_dist"]

CHUNKS = 8              # fixed minibatch chunks: the reduction does not depend on the layout
CHECK_EVERY = 100       # steps between weight-hash checks
TIMEOUT = 600.0         # seconds for any one round trip (pezo-sim steps are slow)
_LAYOUT = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


class DivergenceError(RuntimeError):
    """Replicas that should hold identical weights do not."""


def parse_layout(text):
    """``"PxD"`` as (P, D): P perturbation groups (1 or 2) times D data shards.

    Raises
    ------
    ValueError
        Anything else, naming the value.
    """
    m = _LAYOUT.match(text) if isinstance(text, str) else None
    if m is None or int(m[1]) not in (1, 2) or int(m[2]) < 1:
        raise ValueError(f"Layout must be PxD with P in 1..2 and D >= 1, not {text!r}")
    return int(m[1]), int(m[2])


def chunk_bounds(batch, chunks):
    """The (start, end) of each of ``chunks`` contiguous chunks of a minibatch of ``batch``
    examples (sizes differ by at most one; a chunk is empty when ``batch < chunks``)."""
    edges = [(k * batch) // chunks for k in range(chunks + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _owned(rank, P, D, chunks):
    """(branches, chunk indices) of worker ``rank`` in layout PxD: branch group rank // D (both
    branches when P = 1), data shard rank % D (a contiguous run of the chunks)."""
    p, j = divmod(rank, D)
    branches = (0, 1) if P == 1 else (p,)
    return branches, list(range((j * chunks) // D, ((j + 1) * chunks) // D))


def _eval_split(rank, workers, split):
    """The worker that evaluates ``split``: train, val and test go to different workers."""
    return {"train": 0, "val": 1, "test": 2}[split] % workers


def _build_source(cfg, n_params, port):
    return make_source(cfg.source, n_params, lanes=cfg.lanes, reuse=cfg.reuse,
                       pool_size=cfg.pool_size, step=cfg.step, generators=cfg.generators,
                       weight_format=cfg.weight_format, coef_bits=cfg.coef_bits,
                       coef_frac=cfg.coef_frac, rounding=cfg.rounding,
                       coef_rounding=cfg.coef_rounding, engine=cfg.engine, shared=cfg.shared,
                       state_bits=cfg.state_bits, port=port,
                       engine_cfg=get_board(cfg.board).default if cfg.board else None,
                       weights=cfg.weights)


def _malloc_tuning():
    """Undo the cost of Dask's memory hygiene for this workload (glibc only).

    A Dask nanny starts its worker with ``MALLOC_TRIM_THRESHOLD_=65536``; with it set, glibc stops
    adapting its mmap threshold, so every array above 128 KiB (the forward pass's activations)
    is mmap'd and unmapped again, page-faulting on every step: a replica's step for a
    1024-wide MLP on 1,077 examples measured 55.6 ms in a worker against 22.2 ms in a plain
    process. Where that variable is set, arrays up to 64 MiB come from the heap again and the
    heap is trimmed above 128 MiB. Returns True if the settings were applied."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3             # glibc's malloc.h
        return bool(libc.mallopt(m_mmap_threshold, 64 << 20)
                    and libc.mallopt(m_trim_threshold, 128 << 20))
    except (OSError, AttributeError):        # not glibc: nothing to undo
        return False


def _weights_hash(source) -> str:
    """BLAKE2b (64 bits, hex) of the raw weights: every engine word (padding included) as
    int64, or the float64 vector of a float source."""
    if hasattr(source, "eng"):
        raw = np.asarray(source.eng.read_weights(raw=True), dtype=np.int64)
    else:
        raw = np.asarray(source.params(), dtype=np.float64)
    return hashlib.blake2b(raw.tobytes(), digest_size=8).hexdigest()


class Replica:
    """One worker's replica (a Dask actor): source, model, data set and the step protocol.

    Parameters
    ----------
    config : dict
        A resolved :class:`~pezo.host.train.TrainConfig` as a dict.
    rank : int
        This worker's index, 0..P*D-1.
    layout : tuple
        (P, D).
    chunks : int
        Minibatch chunks (the same for every worker).
    port : str or None
        Source ``board``: this worker's serial port (``"sim"``: its own Verilator-built board).
    """

    def __init__(self, config, rank, layout, chunks, port=None):
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(limits=1, user_api="blas")    # small products: one thread is fastest
        except ImportError:
            pass
        self.malloc_tuned = _malloc_tuning()
        cfg = self.cfg = TrainConfig(**config)
        self.rank, (self.P, self.D), self.chunks = rank, layout, chunks
        self.branches, self.owned = _owned(rank, self.P, self.D, chunks)
        self.ds = load_dataset(cfg.dataset, cfg.label, cfg.split)
        self.model = make_model(cfg.model, self.ds.n_features, self.ds.n_classes, cfg.hidden,
                                cfg.activation)
        self.source = _build_source(cfg, self.model.n_params, port)
        self.source.reset(self.model.init(derive_seed(cfg.seed, 1)), cfg.seed)
        self.source.set_mu(cfg.mu)
        self.batches = _Batches(len(self.ds.y_train), cfg.batch, derive_seed(cfg.seed, 2))
        self.bounds = chunk_bounds(self.batches.batch, chunks)
        self.queries, self.seeds = [], []
        self.last_eval = self.best = None
        self.source_time = self.forward_time = 0.0

    def info(self) -> dict:
        """What the driver needs once: sizes, mu, the source's description, versions."""
        import distributed
        s = self.source
        return {"n_params": self.model.n_params, "mu": s.mu, "source": s.describe(),
                "model": self.model.describe(), "batch": self.batches.batch,
                "depth": getattr(getattr(s, "cfg", None), "depth", None),
                "initial_test_acc": self.model.evaluate(s.params(), self.ds.X_test,
                                                        self.ds.y_test)[1],
                "python": sys.version.split()[0], "numpy": np.__version__,
                "distributed": distributed.__version__, "hash": _weights_hash(s)}

    def step(self, t, coefs=None, decay=None, promote=False, want_hash=False, evals=None,
             run=True):
        """One round trip.

        In order: keep the last evaluated weights as the best (``promote``); apply the previous
        step's updates (``coefs``, one per query, then the weight-decay factor ``decay``); hash
        the weights (``want_hash``); at an evaluation point (``evals`` not None) keep these
        weights as the last evaluated (every worker, so each can restore the best) and evaluate
        the splits named in ``evals`` (this worker's share, possibly none); then, if ``run``,
        step ``t``'s passes 1-3 of every query and the loss sums this worker owns.

        Returns
        -------
        tuple
            (sums, hash or None, {split: (loss, accuracy)}); ``sums`` holds, per query, per
            owned branch, per owned chunk, the sum of the per-example losses (floats).
        """
        src = self.source
        if promote:
            self.best = self.last_eval
        c0 = time.perf_counter()
        if coefs is not None:
            for qy, c in zip(self.queries, coefs):
                src.update(qy, c)
            if decay is not None:
                src.decay(decay, derive_seed(self.cfg.seed, 4, t - 1))
        self.queries = []
        h = _weights_hash(src) if want_hash else None
        self.source_time += time.perf_counter() - c0
        out = {}
        if evals is not None:
            theta = self.last_eval = src.params()
            for split in evals:
                out[split] = self.model.evaluate(theta, *self.ds.split(split))
        if not run:
            return (), h, out
        return self._passes(t), h, out

    def _passes(self, t):
        cfg, src, clock = self.cfg, self.source, time.perf_counter
        c0 = clock()
        if t % PREFETCH == 0:
            steps = np.arange(t, min(t + PREFETCH, cfg.steps))
            self.seeds = derive_seeds(cfg.seed, 3, steps[:, None],
                                      np.arange(cfg.q)[None, :]).reshape(-1).tolist()
            src.prefetch(self.seeds)
        idx = self.batches.next()
        at = (t % PREFETCH) * cfg.q
        pairs = []
        for s in self.seeds[at:at + cfg.q]:
            qy = src.begin(s)
            pairs.append(src.perturb_pair(qy))
            self.queries.append(qy)
        c1 = clock()
        X, y = self.ds.X_train, self.ds.y_train
        if idx is not None:
            X, y = X[idx], y[idx]
        sums = []
        for pair in pairs:
            for b in self.branches:
                for k in self.owned:
                    lo, hi = self.bounds[k]
                    sums.append(_loss_sum(self.model, pair[b], X[lo:hi], y[lo:hi]))
        c2 = clock()
        self.source_time += c1 - c0
        self.forward_time += c2 - c1
        return tuple(sums)

    def finish(self, promote, restore):
        """After the last step: promote as in :meth:`step`, restore the best weights
        (``restore``), evaluate every split this worker is assigned; returns
        (hash, {split: (loss, accuracy)}, stats, source seconds, forward seconds)."""
        if promote:
            self.best = self.last_eval
        if restore and self.best is not None:
            self.source.set_params(self.best)
        theta = self.source.params()
        W = self.P * self.D
        out = {s: self.model.evaluate(theta, *self.ds.split(s)) for s in ("train", "val", "test")
               if _eval_split(self.rank, W, s) == self.rank}
        stats = {k: (float(v) if isinstance(v, float) else int(v))
                 for k, v in self.source.stats.items()}
        return _weights_hash(self.source), out, stats, self.source_time, self.forward_time

    def close(self):
        self.source.close()


def _loss_sum(model, theta, X, y) -> float:
    """Sum of the per-example cross-entropies of one parameter vector on (X, y), as
    :meth:`pezo.host.models.Model.loss` computes them (0.0 for no example)."""
    if len(y) == 0:
        return 0.0
    z = model.logits(theta, X)
    zmax = z.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z - zmax).sum(axis=-1)) + zmax[..., 0]
    return float(np.sum(lse - z[np.arange(len(y)), y]))


@dataclass
class DistResult(TrainResult):
    """:class:`~pezo.host.train.TrainResult` plus the distributed run's own figures."""

    layout: str = "1x1"
    workers: list = field(default_factory=list)     # worker addresses by rank
    chunks: int = CHUNKS
    bytes_per_step: float = float("nan")            # mean pickled bytes of a step's messages
    bytes_to_workers: float = float("nan")          # ... driver -> workers (all workers)
    bytes_from_workers: float = float("nan")        # ... workers -> driver
    round_trip_ms: float = float("nan")             # median wall time of a step's round trip
    hash_checks: int = 0
    final_hash: str = ""
    worker_hashes: list = field(default_factory=list)   # every worker's final hash, by rank
    setup_time: float = 0.0         # seconds to reach the workers and build the replicas

    @property
    def loop_steps_per_s(self) -> float:
        """Steps per second of the training loop (the setup left out)."""
        t = self.wall_time - self.setup_time
        return self.steps_run / t if t > 0 else float("nan")

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["loop_steps_per_s"] = self.loop_steps_per_s
        return d


class _Driver:
    """The driver's side of the protocol: actor calls with timeouts, byte counts, hash checks."""

    def __init__(self, actors, addresses, timeout):
        self.actors, self.addresses, self.timeout = actors, addresses, timeout
        self.sent = self.received = 0
        self.step_sent, self.step_received, self.step_trips = [], [], []

    def call(self, method, args_per_rank, count_step=False):
        c0 = time.perf_counter()
        futs = [getattr(a, method)(*args) for a, args in zip(self.actors, args_per_rank)]
        try:
            out = [f.result(timeout=self.timeout) for f in futs]
        except TimeoutError:
            raise ClusterError(f"A worker did not answer {method} within {self.timeout:g} s "
                               f"(workers {', '.join(self.addresses)})") from None
        dt = time.perf_counter() - c0
        sent = sum(len(pickle.dumps((method, a), protocol=5)) for a in args_per_rank)
        recv = sum(len(pickle.dumps(o, protocol=5)) for o in out)
        self.sent += sent
        self.received += recv
        if count_step:
            self.step_sent.append(sent)
            self.step_received.append(recv)
            self.step_trips.append(dt)
        return out

    def check(self, step, hashes):
        if len(set(hashes)) > 1:
            groups = {}
            for r, h in enumerate(hashes):
                groups.setdefault(h, []).append(r)
            desc = "; ".join(
                f"hash {h} on worker {', '.join(f'{r} ({self.addresses[r]})' for r in rs)}"
                for h, rs in groups.items())
            raise DivergenceError(
                f"Replicas diverged by step {step}: their weights differ ({desc}). Every worker "
                f"applies the same seeded updates, so a worker whose engine, board or software "
                f"differs (project commit, NumPy, engine configuration) breaks the run")


def train_dist(config=None, *, layout="2x1", scheduler=None, client=None,
               check_every=CHECK_EVERY, chunks=CHUNKS, progress=False, log=None,
               timeout=TIMEOUT, **overrides) -> DistResult:
    """MeZO on P*D Dask workers (DistZO2 layout ``PxD``), equal to :func:`pezo.host.train.train`.

    Parameters
    ----------
    config : TrainConfig or None
        The run (``overrides`` replace its fields); ``algo`` must be ``"mezo"``.
    layout : str
        ``"PxD"``: P perturbation groups (1, or 2: one evaluates L+, the other L-) times D data
        shards; P*D workers.
    scheduler : str or None
        ``tcp://HOST:PORT`` of a running Dask scheduler with at least P*D workers; None starts a
        LocalCluster of P*D single-threaded worker processes (both via
        :func:`pezo.cluster.dask_client`).
    client : distributed.Client or None
        Use this connected client instead (benchmarks reuse one cluster); the first P*D workers
        by address hold the replicas.
    check_every : int
        Steps between weight-hash checks (also checked at the end).
    chunks : int
        Minibatch chunks, >= D (the reduction order; changing it changes the last bits of L).
    progress : bool
        A rich progress bar.
    log : callable or None
        Called with each learning-curve point (as the trainer's ``log``).
    timeout : float
        Seconds any one round trip (and the replicas' setup) may take.

    Returns
    -------
    DistResult

    Raises
    ------
    ValueError
        A bad layout, chunk count, check interval or training setting.
    pezo.cluster.ClusterError
        The scheduler does not answer, has too few workers, or a worker does not answer.
    DivergenceError
        The replicas' weights differ at a check.
    """
    cfg = dataclasses.replace(config or TrainConfig(), **overrides).resolved()
    P, D = parse_layout(layout)
    if cfg.algo != "mezo":
        raise ValueError(f"Distributed training runs algo 'mezo' only, not {cfg.algo!r}")
    if cfg.weights == "stream":
        raise ValueError("Distributed training holds the weights in each worker's engine: "
                         "weights 'bram' or 'spram', not 'stream'")
    for name, v, lo in (("Chunk count (chunks)", chunks, D), ("Check interval (check_every)",
                                                             check_every, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
    W = P * D
    ports = [None] * W
    if cfg.source == "board":
        if not cfg.port:
            raise ValueError("Source 'board' needs a serial port (--port DEVICE, "
                             "socket://HOST:N, or 'sim' for the Verilator-built board)")
        given = cfg.port.split(",")
        if len(given) not in (1, W):
            raise ValueError(f"Source 'board' on {W} workers needs one port for all or {W} "
                             f"comma-separated ports (one per worker), not {cfg.port!r}")
        ports = given * W if len(given) == 1 else given
    if client is not None:
        return _run(client, cfg, P, D, chunks, check_every, ports, progress, log, timeout)
    with dask_client(scheduler, workers=W, timeout=min(timeout, 30.0)) as cl:
        return _run(cl, cfg, P, D, chunks, check_every, ports, progress, log, timeout)


def _workers(client, n, timeout):
    try:
        client.wait_for_workers(n, timeout=timeout)
    except TimeoutError:
        have = len(client.scheduler_info(n_workers=-1)["workers"])
        raise ClusterError(f"Layout needs {n} Dask workers; the scheduler has {have} after "
                           f"{timeout:g} s (start more with `dask worker ADDRESS --nthreads "
                           f"1`)") from None
    return sorted(client.scheduler_info(n_workers=-1)["workers"])[:n]


def _run(client, cfg, P, D, chunks, check_every, ports, progress, log, timeout):
    t_start = time.perf_counter()
    W = P * D
    addresses = _workers(client, W, min(timeout, 30.0))
    futs = [client.submit(Replica, cfg.to_dict(), r, (P, D), chunks, ports[r], actor=True,
                          workers=[addresses[r]], allow_other_workers=False, pure=False,
                          key=f"pezo-replica-{r}-{time.time_ns()}")
            for r in range(W)]
    try:
        actors = [f.result(timeout=timeout) for f in futs]
    except TimeoutError:
        raise ClusterError(f"The replicas were not built within {timeout:g} s on "
                           f"{', '.join(addresses)}") from None
    drv = _Driver(actors, addresses, timeout)
    try:
        return _loop(drv, cfg, P, D, chunks, check_every, progress, log, t_start)
    finally:
        try:
            drv.call("close", [()] * W)
        except Exception:           # the replicas go with their futures anyway
            pass
        for f in futs:
            f.release()


def _loop(drv, cfg, P, D, chunks, check_every, progress, log, t_start):
    W = P * D
    infos = drv.call("info", [()] * W)
    drv.check(0, [i["hash"] for i in infos])
    info = infos[0]
    res = DistResult(cfg.to_dict(), info["source"], info["model"], info["n_params"],
                     info["depth"], info["mu"], layout=f"{P}x{D}", workers=list(drv.addresses),
                     chunks=chunks)
    res.initial_test_acc = info["initial_test_acc"]
    res.setup_time = time.perf_counter() - t_start
    mu, B, q = info["mu"], info["batch"], cfg.q
    owned = [_owned(r, P, D, chunks) for r in range(W)]
    eval_args = [tuple(s for s in ("train", "val") if _eval_split(r, W, s) == r)
                 for r in range(W)]
    pending, promote = (None, None), False
    best_loss, best_step, bad, recent, checks = math.inf, 0, 0, [], 1
    bar = _progress(progress, cfg, f"{P}x{D}")
    try:
        for t in range(cfg.steps):
            want_hash = t > 0 and t % check_every == 0
            out = drv.call("step", [(t, *pending, promote, want_hash) for _ in range(W)],
                           count_step=True)
            promote = False
            if want_hash:
                drv.check(t, [o[1] for o in out])
                checks += 1
            # chunk sums by (query, branch, chunk), added in chunk order whatever the layout
            table = np.zeros((q, 2, chunks))
            for (branches, ks), (sums, _, _) in zip(owned, out):
                part = np.asarray(sums, dtype=np.float64).reshape(q, len(branches), len(ks))
                for j, b in enumerate(branches):
                    table[:, b, ks] = part[:, j, :]
            eta = lr_at(cfg.schedule, cfg.lr, t, cfg.steps)
            coefs = []
            for i in range(q):
                lp = lm = 0.0
                for k in range(chunks):
                    lp += float(table[i, 0, k])
                    lm += float(table[i, 1, k])
                lp, lm = lp / B, lm / B
                coefs.append(-eta * ((lp - lm) / (2.0 * mu)) / q)
                recent.append(0.5 * (lp + lm))
            pending = (tuple(coefs), (1.0 - eta * cfg.weight_decay) if cfg.weight_decay
                       else None)
            res.forward_passes = 2 * q * (t + 1)
            res.steps_run = t + 1
            last = t + 1 == cfg.steps
            if (t + 1) % cfg.eval_every == 0 or last:
                out = drv.call("step", [(t + 1, *pending, False, False, eval_args[r], False)
                                        for r in range(W)])
                pending = (None, None)
                ev = {k: v for o in out for k, v in o[2].items()}
                va_loss = ev["val"][0]
                record_point(res, t + 1, recent, ev["train"], ev["val"], eta, log, bar)
                recent = []
                if va_loss < best_loss - 1e-9:
                    best_loss, best_step, bad, promote = va_loss, t + 1, 0, True
                else:
                    bad += 1
                if cfg.patience and bad >= cfg.patience:
                    res.stopped_early = not last
                    break
        restore = cfg.restore_best and best_step not in (0, res.steps_run)
        out = drv.call("finish", [(promote, restore)] * W)
    finally:
        if bar:
            bar[0].stop()
    drv.check(res.steps_run, [o[0] for o in out])
    res.hash_checks = checks + 1
    res.final_hash = out[0][0]
    res.worker_hashes = [o[0] for o in out]
    res.best_step = best_step if cfg.restore_best and best_step else res.steps_run
    ev = {k: v for o in out for k, v in o[1].items()}
    res.train_loss, res.train_acc = ev["train"]
    res.val_loss, res.val_acc = ev["val"]
    res.test_loss, res.test_acc = ev["test"]
    res.stats = out[0][2]
    res.source_time, res.forward_time = out[0][3], out[0][4]
    n = len(drv.step_sent)
    if n:
        res.bytes_to_workers = sum(drv.step_sent) / n
        res.bytes_from_workers = sum(drv.step_received) / n
        res.bytes_per_step = res.bytes_to_workers + res.bytes_from_workers
        res.round_trip_ms = 1e3 * statistics.median(drv.step_trips)
    res.wall_time = time.perf_counter() - t_start
    return res


def _progress(enabled, cfg, layout):
    if not enabled:
        return None
    # lazy import: rich is heavy and needed only here
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeRemainingColumn)
    p = Progress(TextColumn(f"[bold]{cfg.source}[/] {cfg.dataset}/{cfg.model} {layout}"),
                 BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                 TextColumn("{task.fields[info]}"))
    p.start()
    return p, p.add_task("train", total=cfg.steps, info="")
