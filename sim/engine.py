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
=====  ==========  ============================================================================

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
        if op == Op.SEED:
            if arg >> g.seed_width:
                return self._fail(Err.ARG)
            self.gen.load_seed(arg)
            self.rbank = BankModel(self._round_cfg, arg, tweak=self._round_tweak)
        elif op in (Op.MU, Op.UPDATE):
            v = signed_arg(arg, cfg.coef_bits)
            if v is None:
                return self._fail(Err.ARG)
            if op == Op.MU:
                self.mu = v
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
            data = np.asarray(wdata, dtype=np.int64).reshape(count, m)
            lo, hi = -(1 << (cfg.w_bits - 1)), (1 << (cfg.w_bits - 1))
            if (data < lo).any() or (data >= hi).any():
                raise ValueError(f"Weights must be {cfg.w_bits}-bit integers in {lo}..{hi - 1}")
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
        return None

    def _pass(self, op, coef):
        cfg = self.cfg
        z = self.gen.next(cfg.words).reshape(-1)
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
