"""ZO2-style training with the weights in host memory: :class:`StreamedSource` and the link cost.

The engine (``weights="stream"``, :mod:`pezo.sim.engine`) holds no weights. Per MeZO step the host
sends ``UPDATE c(t-1)`` (the deferred update of the previous step: the engine restarts its update
generator from the seed it remembers, nothing random is stored), ``SEED s(t)``, and then every
block of the model in order through ``STREAM``; each word comes back three times: theta+ and
theta- (the two forward passes) and the restored weight, which the host keeps. ``update`` only
records c; the next step (or ``params()``, which flushes it with update-only STREAMs) applies it.
The weights after every step are bit-identical to the resident engine's (tests/test_streamed.py).

One query per step (MeZO, ZO-SGD): a deferred update can only follow the query whose seed the
engine remembers, so ZO methods that update several queries after perturbing them all (q > 1),
masks and coordinate updates are refused with a clear error.

:func:`link_bytes` counts the bytes a MeZO step moves over the board's serial link
(:mod:`pezo.boards.protocol` frames and replies) for the resident engine and for streamed
blocks, and the time they take at a baud rate.
"""

import math

import numpy as np

from pezo.boards.protocol import beat_bytes, frame_length, reply_length, Kind, write_beats
from pezo.config import EngineConfig
from pezo.fixed import from_fixed, to_fixed
from pezo.host.engine import GoldenTransport
from pezo.host.perturb import EngineSource, Query, _sround_array, engine_config
from pezo.sim.engine import Op

__all__ = ["StreamedSource", "link_bytes", "make_streamed_source"]


class StreamedSource(EngineSource):
    """Weights on the host, streamed through an engine built with ``weights="stream"``.

    Parameters
    ----------
    n_params : int
    cfg : EngineConfig
        ``weights="stream"``; its ``depth`` is the largest block (in weights) one STREAM takes.
    engine : str or transport
        ``"golden"`` (default), ``"amaranth"`` (the hardware in the Amaranth simulator) or a
        transport object.
    block_words : int or None
        Words (m weights each) per STREAM block; default the engine's largest, ``cfg.words``.
    rounding, coef_rounding : str
        As for :class:`~pezo.host.perturb.EngineSource`.
    fused : bool
        On the golden engine (``engine="golden"`` or a :class:`~pezo.host.engine.GoldenTransport`),
        stream the whole model in one call of the golden model's STREAM arithmetic
        (:meth:`pezo.sim.engine.EngineModel.stream_words`) instead of one STREAM command per
        block (default True): the generators resume across blocks, so the weights are the
        blocks' bit for bit (tests/test_streamed.py). Any other engine streams block by block.
    """

    kind = "engine"

    def __init__(self, n_params, cfg, engine="golden", rounding="stochastic",
                 coef_rounding="stochastic", block_words=None, fused=True):
        if not isinstance(cfg, EngineConfig):
            raise TypeError(f"Configuration must be an EngineConfig, not {cfg!r}")
        if cfg.weights != "stream":
            raise ValueError(f"StreamedSource needs an engine built with weights='stream', not "
                             f"weights={cfg.weights!r}")
        m = cfg.lanes
        self.model_words = -(-int(n_params) // m)
        block_words = cfg.words if block_words is None else block_words
        if isinstance(block_words, bool) or not isinstance(block_words, int) \
                or not 1 <= block_words <= cfg.words:
            raise ValueError(f"Block size must be an integer in 1..{cfg.words} words (the "
                             f"engine's depth / lanes), not {block_words!r}")
        self.block_words = block_words
        # EngineSource checks depth >= n_params; a streamed engine's depth is one block
        super().__init__(min(int(n_params), cfg.depth), cfg, engine, rounding, coef_rounding,
                         pool_correct=False)
        self.n_params = int(n_params)
        self.name = {"amaranth": "pezo-sim"}.get(engine if isinstance(engine, str) else "",
                                                 "pezo") + "-stream"
        self.w = np.zeros(self.model_words * m, dtype=np.int64)
        self._seed = None           # the seed the engine remembers (the last SEED)
        self._pending = 0           # the deferred update's c (register integer), 0 = none
        transport = self.eng.transport
        self._model = transport.model if fused and isinstance(transport, GoldenTransport) \
            else None              # the golden model the fused path streams through

    def describe(self):
        return super().describe() + f" streamed in blocks of {self.block_words} words"

    def _blocks(self):
        m = self.cfg.lanes
        for a in range(0, self.model_words, self.block_words):
            b = min(a + self.block_words, self.model_words)
            yield a * m, b * m

    def _fusable(self):
        """The fused path's assumptions: the golden model, the weights in range (else the
        blocks' STREAM commands raise what they raise)."""
        fmt = self.eng.w_format
        return self._model is not None and self.w.size > 0 \
            and fmt.min_int <= self.w.min() and self.w.max() <= fmt.max_int

    def _words(self):
        return self.w.reshape(self.model_words, self.cfg.lanes)

    def reset(self, theta0, run_seed=0):
        self._pending = 0
        self._seed = None
        self.set_params(theta0)
        self.eng.set_rounding(self.rounding)
        self.eng.clear()

    def begin(self, seed):
        return Query(seed)

    def perturb(self, query, sign):
        raise ValueError("Streamed weights run the three perturbation passes as one STREAM per "
                         "block: use perturb_pair")

    def perturb_pair(self, query):
        """UPDATE c(t-1) (0 when none is pending), SEED s(t), then STREAM every block: the
        deferred update and passes +1, -2, +1 in one trip through the engine."""
        if self._pending:
            self.stats["deferred"] += 1
        self.eng.update_int(self._pending)
        self._pending = 0
        self.eng.load_seed(query.seed)
        self._seed = query.seed
        if self._fusable():
            tp, tm, w = (a.reshape(-1) for a in self._model.stream_words(self._words()))
            self.w = w
        else:
            tp = np.empty_like(self.w)
            tm = np.empty_like(self.w)
            for a, b in self._blocks():
                tp[a:b], tm[a:b], self.w[a:b] = self.eng.stream(self.w[a:b])
        self._check_saturation()
        fmt = self.eng.w_format
        return np.stack([from_fixed(tp[:self.n_params], fmt), from_fixed(tm[:self.n_params], fmt)])

    def update(self, query, coef):
        if self._seed is None or query.seed != self._seed:
            raise ValueError(f"Streamed weights defer the update of the last perturbed query "
                             f"only (seed {self._seed!r}); this update is for seed "
                             f"{query.seed!r} (one query per step: MeZO / ZO-SGD)")
        if self._pending:
            raise ValueError("An update of this query is already pending (streamed weights "
                             "take one update per query)")
        v = self.quantise_coef(coef, query.seed)
        if v == 0:
            self.stats["coef_zero"] += 1
            return 0.0
        self._pending = v
        return v / self._c_scale

    def flush(self):
        """Apply a pending update now (update-only STREAMs over every block)."""
        if not self._pending:
            return
        self.eng.update_int(self._pending)
        self._pending = 0
        if self._fusable():
            self.w = self._model.stream_words(self._words(), update_only=True).reshape(-1)
        else:
            for a, b in self._blocks():
                self.w[a:b] = self.eng.stream(self.w[a:b], update_only=True)
        self._check_saturation()

    def params(self):
        self.flush()
        return from_fixed(self.w[:self.n_params], self.eng.w_format)

    def raw_weights(self):
        """The weights as the engine's integers (pending update applied), padding included."""
        self.flush()
        return self.w.copy()

    def set_params(self, theta):
        self.flush()
        theta = np.asarray(theta, dtype=np.float64)[:self.n_params]
        clipped = np.clip(theta, self._w_lo, self._w_hi)
        n_clipped = int(np.count_nonzero(clipped != theta))
        if n_clipped:
            self.stats["write_clipped"] += n_clipped
        ints, _ = to_fixed(clipped, self.eng.w_format)
        self.w[:self.n_params] = ints

    def decay(self, factor, seed=0):
        self.flush()
        self.w = _sround_array(self.w.astype(np.float64) * float(factor), seed, 0xDECA)

    def set_active(self, active):
        if active is not None:
            raise ValueError("Streamed weights have no perturbation mask (weights='stream' "
                             "engines are built with mask='none')")

    def coord_add(self, index, value, seed=None):
        raise ValueError("Streamed weights have no COORD command (weights='stream' engines "
                         "are built with coord=False)")

    def coord_value(self, index):
        raise ValueError("Streamed weights have no COORD command")

    def write_block(self, start, values, seed=0):
        raise ValueError("Streamed weights take whole-model updates only (MeZO / ZO-SGD)")


def make_streamed_source(name, n_params, *, block_words=None, lanes=4, reuse="none", step="leap",
                         generators=None, weight_format="Q4.12", coef_bits=16, coef_frac=20,
                         rounding="stochastic", coef_rounding="stochastic", shared=False,
                         state_bits=32, fused=True, **unused):
    """The streamed counterpart of :func:`pezo.host.perturb.make_source`: source ``"pezo"``
    (the golden engine) or ``"pezo-sim"`` (the hardware in the Amaranth simulator), an engine of
    the same generator and formats built with ``weights="stream"`` whose depth is one block
    (``block_words`` words; default the whole model, one block). ``fused``: as for
    :class:`StreamedSource` (the golden engine only)."""
    if name not in ("pezo", "pezo-sim"):
        raise ValueError(f"Streamed weights run on source 'pezo' or 'pezo-sim', not {name!r}")
    for k, v in unused.items():
        if v not in (None, False, "none"):
            raise ValueError(f"Streamed weights do not take {k}={v!r}")
    m = int(lanes)
    words = -(-int(n_params) // m)
    block = words if block_words is None else block_words
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"Block size must be a positive integer (words of {m} weights), "
                         f"not {block_words!r}")
    block = min(block, words)
    cfg = engine_config(block * m, lanes, reuse, None, step, generators, weight_format,
                        coef_bits, coef_frac, stochastic=rounding == "stochastic",
                        shared=shared, state_bits=state_bits, weights="stream")
    return StreamedSource(n_params, cfg, "amaranth" if name == "pezo-sim" else "golden",
                          rounding, coef_rounding, block_words=block, fused=fused)


def link_bytes(cfg, n_params, block_words=None, baud=115200):
    """Bytes one MeZO step moves over the board link (:mod:`pezo.boards.protocol`: 8N1, 10 bits
    a byte), both directions, for the resident engine and for streamed blocks.

    Resident (:class:`~pezo.host.perturb.EngineSource` without the fused fast path): SEED,
    PERTURB +1, READ all, SEED, PERTURB -2, READ all, SEED, PERTURB +1, SEED, UPDATE. Streamed:
    UPDATE, SEED, then per block a STREAM frame carrying the block (at most
    :func:`~pezo.boards.protocol.write_beats` words, like a WRITE) and a reply carrying three
    words per word. Returns ``{"resident": {...}, "streamed": {...}}`` with ``to_board``,
    ``from_board``, ``total`` bytes and ``seconds`` at ``baud`` (frames of more than 254 body
    bytes at their longest, :func:`~pezo.boards.protocol.frame_length`)."""
    m = cfg.lanes
    words = -(-int(n_params) // m)
    bb = beat_bytes(cfg)
    hdr = frame_length()
    done = reply_length(cfg, Kind.DONE, Op.NOP, 0)

    def cost(to_board, from_board):
        total = to_board + from_board
        return {"to_board": to_board, "from_board": from_board, "total": total,
                "seconds": total * 10 / baud}

    read = words << 32
    resident = cost(10 * hdr, 8 * done + 2 * reply_length(cfg, Kind.DATA, Op.READ, read))
    block = write_beats(cfg) if block_words is None else min(block_words, write_beats(cfg))
    frames = math.ceil(words / block)
    full, rest = divmod(words, block)
    to_board = (2 * hdr + full * frame_length(block * bb)
                + (frame_length(rest * bb) if rest else 0))
    streamed = cost(to_board, 2 * done + frames * done + 3 * words * bb)
    return {"resident": resident, "streamed": streamed, "words": words,
            "block_words_per_frame": block}
