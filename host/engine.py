"""Host API of the perturbation engine: one interface over the golden model or a simulated engine.

>>> from pezo.config import EngineConfig
>>> eng = EngineClient(EngineConfig(depth=64), transport="golden")    # or "amaranth"
>>> eng.write_weights(np.zeros(64)); eng.load_seed(1234); eng.set_mu(1e-3)
>>> eng.perturb(+1); ...; eng.perturb(-2); ...; eng.perturb(+1)

A *transport* executes engine commands (:mod:`pezo.sim.engine` defines them) and reports status:

* :class:`GoldenTransport` runs :class:`pezo.sim.engine.EngineModel` (fast, bit-exact);
* :class:`AmaranthTransport` runs the hardware (:class:`pezo.hw.engine.PerturbEngine`) in the
  Amaranth simulator, step by step, so host code can interleave its own work (a forward pass)
  between commands.

Training code talks only to :class:`EngineClient`, so it does not care which transport it has.
"""

import collections
import math
import numbers
from typing import Protocol, runtime_checkable

from amaranth.sim import Simulator
import numpy as np

from pezo.boards.protocol import engine_opcode
from pezo.fixed import Q, from_fixed, to_fixed
from pezo.hw.engine import PerturbEngine, command_bits
from pezo.sim import scaler as smodel
from pezo.sim.engine import STATUS, EngineModel, Err, Op, encode_signed

__all__ = ["EngineClient", "EngineError", "Transport", "GoldenTransport", "AmaranthTransport",
           "TRANSPORTS"]


class EngineError(RuntimeError):
    """The engine reported an error status for a command."""


@runtime_checkable
class Transport(Protocol):
    """What :class:`EngineClient` needs from a transport (the golden model, a simulator, a
    board link): ``name``, ``cycles`` (clock cycles spent, 0 where not counted), ``command``
    (execute one command; READ returns the words as a (count, lanes) integer array, every other
    command None), ``status`` (the engine's status fields as a dict: busy, error, error_code,
    saturated, filling, last_pass, offset) and ``close``.

    A fast transport may also offer ``prefetch(seeds)``, ``pair(seed, offset, visible)`` and
    ``update(seed, offset, coef)`` (:class:`pezo.host.fused.FusedGoldenTransport`): the training
    sources use them when present and fall back to the commands when they return None."""

    name: str
    cycles: int

    def command(self, op, arg=0, wdata=None, rcount=0): ...

    def status(self) -> dict: ...

    def close(self) -> None: ...


class GoldenTransport:
    """Executes commands on the bit-exact golden model."""

    name = "golden"

    def __init__(self, cfg):
        self.cfg = cfg
        self.model = EngineModel(cfg)
        self.cycles = 0

    def command(self, op, arg=0, wdata=None, rcount=0):
        return self.model.execute(op, arg, wdata)

    def status(self):
        return self.model.status()

    def close(self):
        pass


class AmaranthTransport:
    """Executes commands on the engine hardware in the Amaranth simulator.

    The simulator is advanced only while a command is in flight; ``cycles`` counts clock cycles
    spent, so benchmarks can report cycles per pass."""

    name = "amaranth"

    def __init__(self, cfg, **engine_options):
        """``engine_options``: :class:`~pezo.hw.engine.PerturbEngine`'s (``held_arg``,
        ``lean``); the transport holds each command's payload until the engine is idle."""
        self.cfg = cfg
        self.dut = dut = PerturbEngine(cfg, **engine_options)
        self._queue = collections.deque()
        self._result = None
        self.cycles = 0
        self._sim = sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(self._server, background=True)

    async def _server(self, ctx):
        dut = self.dut
        m = self.cfg.lanes
        while True:
            if not self._queue:
                await ctx.tick()
                continue
            op, arg, wdata, rcount = self._queue.popleft()
            # the engine's op field has 4 bits: an opcode beyond it arrives as the unknown 15,
            # as the board's bridge sends it (pezo.boards.protocol.engine_opcode)
            ctx.set(dut.cmd.payload.as_value(), command_bits(engine_opcode(op), arg))
            ctx.set(dut.cmd.valid, 1)
            while not ctx.get(dut.cmd.ready):
                await self._tick(ctx)
            await self._tick(ctx)
            ctx.set(dut.cmd.valid, 0)
            if op == Op.STREAM and wdata is not None:
                out = await self._stream(ctx, wdata, rcount)
                while ctx.get(dut.status.busy):
                    await self._tick(ctx)
                self._result = np.array(out, dtype=np.int64).reshape(-1, m) if out else None
                self._status = {name: int(ctx.get(getattr(dut.status, name))) for name in STATUS}
                continue
            if op == Op.WRITE and wdata is not None:
                for row in np.asarray(wdata).reshape(-1, m):
                    ctx.set(dut.wdata.payload, [int(v) for v in row])
                    ctx.set(dut.wdata.valid, 1)
                    while not ctx.get(dut.wdata.ready):
                        await self._tick(ctx)
                    await self._tick(ctx)
                ctx.set(dut.wdata.valid, 0)
            out = []
            if op == Op.READ and rcount:
                ctx.set(dut.rdata.ready, 1)
                while len(out) < rcount and (ctx.get(dut.status.busy)
                                             or ctx.get(dut.rdata.valid)):
                    if ctx.get(dut.rdata.valid):
                        p = ctx.get(dut.rdata.payload)
                        out.append([int(p[j]) for j in range(m)])
                    await self._tick(ctx)
                ctx.set(dut.rdata.ready, 0)
            while ctx.get(dut.status.busy):
                await self._tick(ctx)
            self._result = np.array(out, dtype=np.int64).reshape(-1, m) if out else None
            self._status = {name: int(ctx.get(getattr(dut.status, name))) for name in STATUS}

    async def _stream(self, ctx, wdata, rcount):
        """STREAM: words in on ``wdata`` while rows come back on ``rdata``, both at once (the
        engine takes a word only while it can send its rows)."""
        dut, m = self.dut, self.cfg.lanes
        rows = np.asarray(wdata).reshape(-1, m)
        out, i = [], 0
        ctx.set(dut.rdata.ready, 1)
        while len(out) < rcount and (ctx.get(dut.status.busy) or ctx.get(dut.rdata.valid)):
            if i < len(rows):
                ctx.set(dut.wdata.payload, [int(v) for v in rows[i]])
            ctx.set(dut.wdata.valid, i < len(rows))
            took = i < len(rows) and ctx.get(dut.wdata.ready)
            if ctx.get(dut.rdata.valid):
                p = ctx.get(dut.rdata.payload)
                out.append([int(p[j]) for j in range(m)])
            await self._tick(ctx)
            i += int(took)
        ctx.set(dut.wdata.valid, 0)
        ctx.set(dut.rdata.ready, 0)
        return out

    async def _tick(self, ctx):
        await ctx.tick()
        self.cycles += 1

    def _run(self, item):
        self._result = None
        self._status = None
        self._queue.append(item)
        while self._status is None:
            self._sim.advance()

    def command(self, op, arg=0, wdata=None, rcount=0):
        bad_write = False
        if op == Op.WRITE:
            start, count = int(arg) & 0xFFFFFFFF, int(arg) >> 32
            bad_write = count == 0 or start + count > self.cfg.words
        self._run((op, arg, None if bad_write else wdata, rcount))
        return self._result

    def status(self):
        if getattr(self, "_status", None) is None:
            self._run((Op.NOP, 0, None, 0))
        return dict(self._status)

    def close(self):
        pass


TRANSPORTS = {"golden": GoldenTransport, "amaranth": AmaranthTransport}


class EngineClient:
    """Drive a perturbation engine; floats in, fixed point on the wire, errors raised.

    Parameters
    ----------
    cfg : EngineConfig
    transport : str or transport object
        ``"golden"`` (default) or ``"amaranth"``, or a :class:`Transport`.
    """

    def __init__(self, cfg, transport="golden"):
        self.cfg = cfg
        if isinstance(transport, str):
            if transport not in TRANSPORTS:
                raise ValueError(f"Transport must be one of {', '.join(TRANSPORTS)}, "
                                 f"not {transport!r}")
            transport = TRANSPORTS[transport](cfg)
        elif not isinstance(transport, Transport):
            raise TypeError(f"Transport must be one of {', '.join(TRANSPORTS)} or an object with "
                            f"name, cycles, command, status and close (pezo.host.engine."
                            f"Transport), not {transport!r}")
        self.transport = transport
        self.w_format = Q(cfg.w_int, cfg.w_frac)

    # Conversions --------------------------------------------------------------------------------
    def coef_to_int(self, value: float, what="coefficient") -> int:
        """A real coefficient (mu, c) as the engine's integer; out of range raises."""
        cfg = self.cfg
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise ValueError(f"{what} must be a finite real number, not {value!r}")
        v = int(np.rint(value * 2.0 ** cfg.coef_frac))
        lim = 1 << (cfg.coef_bits - 1)
        if not -lim <= v < lim:
            raise ValueError(f"{what} {value!r} does not fit the coefficient format (signed "
                             f"{cfg.coef_bits} bits scaled by 2^-{cfg.coef_frac}: |x| < "
                             f"{lim / 2.0 ** cfg.coef_frac!r})")
        return v

    # Commands -----------------------------------------------------------------------------------
    def _do(self, op, arg=0, wdata=None, rcount=0):
        out = self.transport.command(op, arg, wdata, rcount)
        st = self.transport.status()
        if st["error"]:
            code = Err(st["error_code"]).name
            self.transport.command(Op.CLEAR, 1)      # the error only: saturation stays recorded
            name = Op(op).name if op in Op._value2member_map_ else f"opcode {int(op)}"
            raise EngineError(f"Engine rejected {name} with argument {int(arg):#x}: "
                              f"error {code}")
        return out

    def load_seed(self, seed: int):
        self._do(Op.SEED, seed)

    def set_mu(self, mu: float) -> int:
        v = self.coef_to_int(mu, "mu")
        self._do(Op.MU, encode_signed(v))
        return v

    def perturb(self, sign: int):
        """One pass: sign +1 adds p, -2 subtracts 2p (p = round(mu * z))."""
        if sign not in (1, -2):
            raise ValueError(f"Perturbation sign must be +1 or -2, not {sign!r}")
        self._do(Op.PERTURB, 0 if sign == 1 else 1)

    def update(self, c: float) -> int:
        """The update pass w += round(c * z), c = -eta * g (a float)."""
        v = self.coef_to_int(c, "update coefficient c")
        self._do(Op.UPDATE, encode_signed(v))
        return v

    def update_int(self, c: int):
        self._do(Op.UPDATE, encode_signed(c))

    def set_scale_digits(self, digits):
        self._do(Op.SCALE, smodel.encode_scale(digits, self.cfg.generator))

    def set_offset(self, word: int, key: int = 0):
        """Rewind a pregen pool to ``word`` with the query key ``key`` of its sign stream."""
        if not 0 <= int(key) < (1 << 32):
            raise ValueError(f"Query key must be in 0..2^32-1, not {key!r}")
        if not 0 <= int(word) < (1 << 32):
            raise ValueError(f"Pool offset must be in 0..2^32-1, not {word!r}")
        self._do(Op.OFFSET, int(word) | (int(key) << 32))

    def set_rounding(self, mode: str):
        if mode not in ("nearest", "stochastic"):
            raise ValueError(f"Rounding must be 'nearest' or 'stochastic', not {mode!r}")
        self._do(Op.ROUNDING, int(mode == "stochastic"))

    def clear(self, saturation=True):
        """Clear the sticky error flag, and the saturation record unless ``saturation`` is
        False."""
        self._do(Op.CLEAR, 0 if saturation else 1)

    def coord(self, index: int, delta: int):
        """``COORD``: weight ``index`` += ``delta`` (a signed integer in weight LSBs; the
        engine saturates and flags it). Needs an engine built with ``coord=True``."""
        d, m, b = self.cfg.depth, self.cfg.lanes, self.cfg.w_bits
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) \
                or not 0 <= index < d:
            raise ValueError(f"Coordinate index must be an integer in 0..{d - 1}, not {index!r}")
        if isinstance(delta, bool) or not isinstance(delta, numbers.Integral) \
                or not -(1 << (b - 1)) <= delta < (1 << (b - 1)):
            raise ValueError(f"Coordinate delta must be a signed {b}-bit integer "
                             f"({-(1 << (b - 1))}..{(1 << (b - 1)) - 1}), not {delta!r}")
        index, delta = int(index), int(delta)
        self._do(Op.COORD, (index // m) | ((index % m) << 24) | ((delta & 0xFFFFFFFF) << 32))

    def set_range(self, first: int = 0, end: int | None = None):
        """``RANGE``: passes act on weights ``first`` .. ``end - 1`` only (word-aligned: both
        multiples of the lane count; default all). Needs ``mask="range"`` or ``"bitmap"``."""
        d, m = self.cfg.depth, self.cfg.lanes
        end = d if end is None else end
        for name, v in (("first", first), ("end", end)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v % m:
                raise ValueError(f"Range {name} must be a multiple of the lane count {m} "
                                 f"(RANGE works on words), not {v!r}")
        if not 0 <= first < end <= d:
            raise ValueError(f"Range must satisfy 0 <= first < end <= {d}, not "
                             f"[{first}, {end})")
        self._do(Op.RANGE, (int(first) // m) | ((int(end) // m) << 32))

    def set_mask(self, active):
        """``MASK`` for every word whose bits change: ``active`` is a bool vector of ``depth``
        (True = perturbed and updated). Needs ``mask="bitmap"``. The first call writes every
        word; the client remembers what it wrote, so later calls send only changed words."""
        m, d = self.cfg.lanes, self.cfg.depth
        a = np.asarray(active)
        if a.shape != (d,) or a.dtype != bool:
            raise ValueError(f"Mask must be a bool array of shape ({d},), not "
                             f"{a.dtype} {a.shape}")
        words = a.reshape(-1, m).astype(np.int64) @ (1 << np.arange(m, dtype=np.int64))
        old = getattr(self, "_bitmap", None)
        for w in range(len(words)) if old is None else np.flatnonzero(words != old):
            self._do(Op.MASK, int(w) | (int(words[w]) << 32))
        self._bitmap = words

    def write_weights(self, weights, start=0, raw=False):
        """Write weights (floats in the weight format, or integers with ``raw``) from word
        ``start``; the length must be a multiple of the lane count. Values outside the format
        raise (nothing is clamped silently)."""
        m = self.cfg.lanes
        w = np.asarray(weights)
        if w.size % m:
            raise ValueError(f"Weight count must be a multiple of the lane count {m}, not {w.size}")
        if raw:
            ints = w.astype(np.int64)
            if (ints < self.w_format.min_int).any() or (ints > self.w_format.max_int).any():
                raise ValueError(f"Raw weights must be in {self.w_format.min_int}.."
                                 f"{self.w_format.max_int} ({self.w_format})")
        else:
            ints, sat = to_fixed(w, self.w_format)
            if sat:
                raise ValueError(f"Weights outside the {self.w_format} range "
                                 f"[{from_fixed(self.w_format.min_int, self.w_format)}, "
                                 f"{from_fixed(self.w_format.max_int, self.w_format)}]")
        count = ints.size // m
        self._do(Op.WRITE, (count << 32) | start, ints.reshape(count, m))

    def stream(self, words, update_only=False):
        """``STREAM`` (engines built with ``weights="stream"``): ``words`` (raw integers, a
        multiple of the lane count) go through the deferred update and, unless ``update_only``,
        the three perturbation passes. Returns (w1, w2, w3) as three integer arrays the size
        of ``words`` (theta+, theta-, the restored weights), or w0 alone with ``update_only``."""
        m = self.cfg.lanes
        w = np.asarray(words, dtype=np.int64).reshape(-1)
        if w.size == 0 or w.size % m:
            raise ValueError(f"Streamed weight count must be a positive multiple of the lane "
                             f"count {m}, not {w.size}")
        if (w < self.w_format.min_int).any() or (w > self.w_format.max_int).any():
            raise ValueError(f"Raw weights must be in {self.w_format.min_int}.."
                             f"{self.w_format.max_int} ({self.w_format})")
        count = w.size // m
        rows = 1 if update_only else 3
        out = self._do(Op.STREAM, count | (int(bool(update_only)) << 32), w.reshape(count, m),
                       rcount=rows * count)
        if update_only:
            return out.reshape(-1)
        out = out.reshape(count, 3, m)
        return tuple(out[:, k, :].reshape(-1) for k in range(3))

    def read_weights(self, start=0, count=None, raw=False):
        count = self.cfg.words - start if count is None else count
        out = self._do(Op.READ, (count << 32) | start, rcount=count)
        flat = out.reshape(-1)
        return flat if raw else from_fixed(flat, self.w_format)

    def status(self) -> dict:
        return self.transport.status()

    @property
    def offset(self) -> int:
        return self.status()["offset"]
