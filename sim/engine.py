"""Golden model of the perturbation engine (bit-exact with :class:`pezo.hw.engine.PerturbEngine`).

The engine holds d weights (m per memory word), a perturbation generator, a MAC and a stochastic
rounding bank, and executes commands (``op``, 64-bit ``arg``):

=====  ==========  ============================================================================
code   command     argument and effect
=====  ==========  ============================================================================
0      NOP         none
1      SEED        master seed: reload the generator (and refill a pregen pool) and the rounding
                   bank (the same seed in the rounding domain, pezo.sim.seeding; reset is SEED 0
                   for both)
2      MU          mu, a signed coef_bits integer (arg must be its sign extension)
3      PERTURB     0: w += p, 1: w -= 2p, with p = round_half_even(mu * z); one pass over all d
4      UPDATE      c = -eta*g (signed coef_bits): w += round(c * z), nearest-even or stochastic
5      SCALE       runtime scale register value (runtime scale only)
6      OFFSET      pool read position in words (bits 0-31) and query key (bits 32-63), pregen
                   only: rewind to replay a perturbation (the key restarts its sign stream)
7      WRITE       start word (bits 0-31), count words (bits 32-63): then count words of weights
8      READ        start word, count words: the engine streams count words of weights back
9      CLEAR       0: clear the sticky error and saturation flags; 1: clear the error only
                   (the saturation record survives a rejected command)
10     ROUNDING    0: round half to even, 1: stochastic (stochastic configurations only)
11     COORD       word (bits 0-23), lane (bits 24-31), delta (bits 32-63, a signed w_bits
                   integer, sign-extended): w[word*m + lane] = saturate(w + delta) (``coord``
                   configurations only): coordinate-wise perturbation, restore and update
12     MASK        word (bits 0-31), lane bits (bits 32..32+m-1; 1 = active): the perturbation
                   bitmap of one word (``mask = "bitmap"`` only; all ones after reset)
13     RANGE       first word (bits 0-31), end word (bits 32-63, exclusive; first < end <= d/m):
                   passes act on these words only (``mask = "range"`` or ``"bitmap"``; reset:
                   all words)
14     STREAM      count words (bits 0-31, 1..d/m), mode (bits 32-63: 0 fused, 1 update only):
                   ``weights = "stream"`` engines only, see below
=====  ==========  ============================================================================

Streamed weights (``weights = "stream"``, ZO2-style): the engine holds no weights; the host
streams them through in blocks, in order, covering every word once per step. Two generators run
side by side: the *update* generator (with the rounding bank) replays z of the previous step for
its deferred update, the *perturbation* generator produces z of this step. ``SEED s`` loads the
perturbation generator and remembers s; ``UPDATE c`` sets the pending update coefficient and
restarts the update generator and the rounding bank from the remembered seed (the step whose
perturbation it updates: nothing random is stored, only a seed). ``STREAM`` then takes ``count``
words on ``wdata`` and, per word, computes w0 = w + round(c * zu) (the deferred update, as an
UPDATE pass would), and in fused mode w1 = w0 + p, w2 = w1 - 2p, w3 = w2 + p with p =
round(mu * z) (the PERTURB passes +1, -2, +1), each saturating like the MAC. It returns three
words per word in fused mode (w1: theta+, w2: theta-, w3: the restored weight to keep) and one
(w0) in update-only mode, which flushes the last pending update. A stream of step t's blocks
after ``UPDATE c(t-1); SEED s(t)`` thus leaves exactly the weights the resident engine leaves
after step t-1's UPDATE and step t's three PERTURB passes. PERTURB, WRITE, READ and OFFSET are
``UNSUPPORTED`` there, STREAM everywhere else.

The perturbation mask: in PERTURB and UPDATE passes a weight outside the range, or whose bitmap
bit is 0, gets z = 0 (so p = 0 and u = 0: it keeps its value). The generator and the rounding
bank still advance over every word, so the z an active weight sees does not depend on the mask.

A command that fails sets the sticky ``error`` flag and ``error_code`` (1 unknown opcode, 2 bad
argument, 3 not supported by this configuration) and changes nothing else. Status: ``busy``,
``error``, ``error_code``, ``saturated`` (any MAC or scaler saturation since CLEAR), ``filling``
(pregen pool fill), ``last_pass`` (0 none, 1 +p, 2 -2p, 3 update) and ``offset`` (pool word of the
next z beat, 0 without pregen).
"""

from enum import IntEnum

import numpy as np

from pezo.sim import scaler as smodel
from pezo.sim.bank import BankModel
from pezo.sim.generator import GeneratorModel
from pezo.sim.mac import mac, rounding_config
from pezo.sim.seeding import domain_tweak

__all__ = ["Op", "Err", "EngineModel", "signed_arg", "STATUS"]


#: The engine's status fields, in this order everywhere (hardware ports, host transports,
#: testbenches; the bridge packs them into its status word).
STATUS = ("busy", "error", "error_code", "saturated", "filling", "last_pass", "offset")


class Op(IntEnum):
    NOP = 0
    SEED = 1
    MU = 2
    PERTURB = 3
    UPDATE = 4
    SCALE = 5
    OFFSET = 6
    WRITE = 7
    READ = 8
    CLEAR = 9
    ROUNDING = 10
    COORD = 11
    MASK = 12
    RANGE = 13
    STREAM = 14


class Err(IntEnum):
    NONE = 0
    OPCODE = 1
    ARG = 2
    UNSUPPORTED = 3


def signed_arg(value: int, bits: int):
    """Decode a 64-bit argument holding a signed ``bits``-bit number (its sign extension), or
    None when the upper bits are not a sign extension."""
    value &= (1 << 64) - 1
    hi = value >> (bits - 1)
    if hi not in (0, (1 << (65 - bits)) - 1):
        return None
    v = value & ((1 << bits) - 1)
    return v - (1 << bits) if v >> (bits - 1) else v


def encode_signed(value: int) -> int:
    """A signed integer as the 64-bit two's complement argument."""
    return int(value) & ((1 << 64) - 1)


class EngineModel:
    def __init__(self, cfg):
        self.cfg = cfg
        g = cfg.generator
        self.weights = np.zeros(cfg.depth, dtype=np.int64)
        self.gen = GeneratorModel(g, 0)
        self._round_cfg = rounding_config(cfg)
        self._round_tweak = domain_tweak("rounding", g.seed_width)
        self.rbank = BankModel(self._round_cfg, 0, tweak=self._round_tweak)   # reset = SEED 0
        self.mu = 0
        self.stochastic = False
        self.error = False
        self.error_code = Err.NONE
        self.mac_saturated = False
        self.last_pass = 0
        self.bitmap = np.ones(cfg.depth, dtype=bool)     # MASK: 1 = active
        self.range = (0, cfg.words)                      # RANGE: [first, end) words
        self.streamed = cfg.weights == "stream"
        if self.streamed:                                # STREAM: the update generator, the
            self.weights = np.zeros(0, dtype=np.int64)   # remembered seed, the pending c
            self.gen_u = GeneratorModel(g, 0)
            self.seed_b = 0
            self._seed_bank = None      # the perturbation generator's bank of seed_b (SEED)
            self.pending = 0

    def pass_mask(self):
        """The weights a pass acts on (bool, depth), or None when every weight is active."""
        lo, hi = self.range
        if lo == 0 and hi == self.cfg.words and self.bitmap.all():
            return None
        m = self.cfg.lanes
        active = self.bitmap.copy()
        active[:lo * m] = False
        active[hi * m:] = False
        return active

    # Status ------------------------------------------------------------------------------------
    def status(self) -> dict:
        return {"busy": 0, "error": int(self.error), "error_code": int(self.error_code),  # STATUS
                "saturated": int(self.mac_saturated or self.gen.saturated), "filling": 0,
                "last_pass": self.last_pass,
                "offset": self.gen.offset if self.cfg.generator.reuse == "pregen" else 0}

    def _fail(self, code):
        self.error = True
        self.error_code = code
        return None

    # Commands ----------------------------------------------------------------------------------
    def execute(self, op, arg=0, wdata=None):
        """Run one command. Returns the words read (READ) as an (count, m) array, else None."""
        cfg, g = self.cfg, self.cfg.generator
        arg = int(arg) & ((1 << 64) - 1)
        try:
            op = Op(op)
        except ValueError:
            return self._fail(Err.OPCODE)
        if op == Op.NOP:
            return None
        if self.streamed and op in (Op.PERTURB, Op.WRITE, Op.READ, Op.OFFSET):
            return self._fail(Err.UNSUPPORTED)
        if op == Op.STREAM:
            return self._stream(arg, wdata)
        if op == Op.SEED:
            if arg >> g.seed_width:
                return self._fail(Err.ARG)
            self.gen.load_seed(arg)
            if self.streamed:        # the rounding bank belongs to the update generator
                self.seed_b = arg
                # UPDATE restarts gen_u from a copy of this seed's bank, not a new one
                self._seed_bank = getattr(getattr(self.gen, "reuse", None), "bank", None)
            else:
                self.rbank = BankModel(self._round_cfg, arg, tweak=self._round_tweak)
        elif op in (Op.MU, Op.UPDATE):
            v = signed_arg(arg, cfg.coef_bits)
            if v is None:
                return self._fail(Err.ARG)
            if op == Op.MU:
                self.mu = v
            elif self.streamed:
                self.pending = v
                bank = self._seed_bank
                self.gen_u.load_seed(self.seed_b, None if bank is None else bank.restarted())
                self.rbank = BankModel(self._round_cfg, self.seed_b, tweak=self._round_tweak)
            else:
                self._pass("update", v)
        elif op == Op.PERTURB:
            if arg > 1:
                return self._fail(Err.ARG)
            self._pass("plus" if arg == 0 else "minus2", self.mu)
        elif op == Op.SCALE:
            if g.scale != "runtime":
                return self._fail(Err.UNSUPPORTED)
            if arg >> smodel.scale_register_bits(g):
                return self._fail(Err.ARG)
            self.gen.set_digits(smodel.decode_scale(arg, g))
        elif op == Op.OFFSET:
            if g.reuse != "pregen":
                return self._fail(Err.UNSUPPORTED)
            word, key = arg & 0xFFFFFFFF, arg >> 32
            if word >= g.pool_words:
                return self._fail(Err.ARG)
            self.gen.set_offset(word, key)
        elif op in (Op.WRITE, Op.READ):
            start, count = arg & 0xFFFFFFFF, arg >> 32
            if count == 0 or start + count > cfg.words:
                return self._fail(Err.ARG)
            m = cfg.lanes
            if op == Op.READ:
                return self.weights[start * m:(start + count) * m].reshape(count, m).copy()
            data = self._check_rows(wdata, count)
            self.weights[start * m:(start + count) * m] = data.reshape(-1)
        elif op == Op.CLEAR:
            if arg > 1:
                return self._fail(Err.ARG)
            self.error, self.error_code = False, Err.NONE
            if arg == 0:
                self.mac_saturated = False
                self.gen.saturated = False
        elif op == Op.ROUNDING:
            if arg > 1:
                return self._fail(Err.ARG)
            if arg == 1 and not (cfg.stochastic and cfg.product_shift > 0):
                return self._fail(Err.UNSUPPORTED)
            self.stochastic = bool(arg)
        elif op == Op.COORD:
            if not cfg.coord:
                return self._fail(Err.UNSUPPORTED)
            word, lane, delta = arg & 0xFFFFFF, (arg >> 24) & 0xFF, arg >> 32
            delta -= (delta >> 31) << 32                 # bits 32-63 as a signed 32-bit number
            b = cfg.w_bits
            if word >= cfg.words or lane >= cfg.lanes \
                    or not -(1 << (b - 1)) <= delta < (1 << (b - 1)):
                return self._fail(Err.ARG)
            i = word * cfg.lanes + lane
            v = int(self.weights[i]) + delta
            lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
            if not lo <= v <= hi:
                self.mac_saturated = True
                v = min(max(v, lo), hi)
            self.weights[i] = v
        elif op == Op.MASK:
            if cfg.mask != "bitmap":
                return self._fail(Err.UNSUPPORTED)
            word, bits = arg & 0xFFFFFFFF, arg >> 32
            if word >= cfg.words or bits >> cfg.lanes:
                return self._fail(Err.ARG)
            m = cfg.lanes
            self.bitmap[word * m:(word + 1) * m] = [(bits >> j) & 1 for j in range(m)]
        elif op == Op.RANGE:
            if cfg.mask == "none":
                return self._fail(Err.UNSUPPORTED)
            lo, hi = arg & 0xFFFFFFFF, arg >> 32
            if not lo < hi <= cfg.words:
                return self._fail(Err.ARG)
            self.range = (lo, hi)
        return None

    def _check_rows(self, data, count):
        cfg = self.cfg
        data = np.asarray(data, dtype=np.int64).reshape(count, cfg.lanes)
        lo, hi = -(1 << (cfg.w_bits - 1)), (1 << (cfg.w_bits - 1))
        if (data < lo).any() or (data >= hi).any():
            raise ValueError(f"Weights must be {cfg.w_bits}-bit integers in {lo}..{hi - 1}")
        return data

    def _stream(self, arg, wdata):
        """STREAM: the deferred update, then (fused mode) the three perturbation passes, per
        word; returns the words out, (3 * count, m) word-major (fused) or (count, m)."""
        cfg = self.cfg
        if not self.streamed:
            return self._fail(Err.UNSUPPORTED)
        count, mode = arg & 0xFFFFFFFF, arg >> 32
        if not 1 <= count <= cfg.words or mode > 1:
            return self._fail(Err.ARG)
        w = self._check_rows(wdata, count)
        if mode == 1:
            return self.stream_words(w, update_only=True)
        return np.stack(self.stream_words(w), axis=1).reshape(3 * count, cfg.lanes)

    def stream_words(self, w, update_only=False):
        """The arithmetic of STREAM on the weight words ``w`` ((count, m) integers in range; no
        limit on count): the deferred update, then (unless ``update_only``) passes +1, -2, +1,
        with the generators and the rounding bank advancing over the words. Returns w0, or
        (w1, w2, w3), each (count, m). The generators resume where they stopped, so one call over
        a whole model gives what one STREAM per block gives (the fused golden STREAM,
        :class:`pezo.host.streamed.StreamedSource`, relies on it; tests/test_streamed.py checks
        it against the blocks)."""
        cfg, count = self.cfg, len(w)
        r = self.rbank.next(count) if self.stochastic else None
        w0, sat = mac(cfg, w, self.gen_u.next(count), self.pending, "update", r)
        self.mac_saturated |= bool(sat)
        if update_only:
            self.last_pass = 3
            return w0
        z = self.gen.next(count)
        w1, s1 = mac(cfg, w0, z, self.mu, "plus")
        w2, s2 = mac(cfg, w1, z, self.mu, "minus2")
        w3, s3 = mac(cfg, w2, z, self.mu, "plus")
        self.mac_saturated |= bool(s1 or s2 or s3)
        self.last_pass = 1
        return w1, w2, w3

    def _pass(self, op, coef):
        cfg = self.cfg
        z = self.gen.next(cfg.words).reshape(-1)
        active = self.pass_mask()
        if active is not None:
            z = np.where(active, z, 0)
        r = None
        if op == "update" and self.stochastic:
            r = self.rbank.next(cfg.words).reshape(-1)
        weights, sat = mac(cfg, self.weights, z, coef, op, r)
        self.commit_pass(op, weights, sat)

    def commit_pass(self, op, weights, saturated):
        """The state a pass leaves: ``weights`` (the MAC's result), the sticky saturation flag
        and ``last_pass``. The one place a pass's result enters the model; fast paths that
        compute a pass themselves (:mod:`pezo.host.fused`) commit it here too."""
        self.weights = weights
        self.mac_saturated |= bool(saturated)
        self.last_pass = {"plus": 1, "minus2": 2, "update": 3}[op]
