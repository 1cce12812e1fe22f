"""The uniform RNG bank: n maximal-length LFSR lanes of w-bit two's complement numbers."""

from functools import reduce
from operator import xor

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.hw.common import check_config, xor_bits
from pezo.sim.bank import bank_geometry
from pezo.sim.lfsr import POLYNOMIALS, bit_masks, lane_constants, lane_states, polynomial

__all__ = ["UniformBank"]


class UniformBank(wiring.Component):
    """Uniform random-number bank (bit-exact with :class:`pezo.sim.bank.BankModel`).

    Every generator is a k-bit LFSR whose next state is a fixed XOR network (the s-th power of the
    companion matrix, s = w, n*w or 1 steps per cycle, computed at elaboration); a number's bits
    are state bits (or XORs of them when they lie beyond the state). The output is always valid;
    the state advances on each transfer (``o.ready`` is the enable).

    Parameters
    ----------
    config : GeneratorConfig
        Uses ``lanes``, ``width``, ``state_bits``, ``step``, ``shared`` and ``seed_width``.
    rotate : bool
        After every transfer, output position j takes over the state of position j+1 (mod n):
        the ``onthefly`` rotation, at no cost in logic.

    Members
    -------
    o : Out(stream.Signature(ArrayLayout(signed(width), lanes)))
        Numbers, one per lane per transfer. ``o.valid`` is always 1.
    seed : In(seed_width)
        Master seed.
    seed_load : In(1)
        Load the lane states derived from ``seed``; the first number of the new stream is on ``o``
        in the next cycle. A transfer in the same cycle takes the old number. Reset loads seed 0.

    Raises
    ------
    TypeError
        If ``config`` is not a GeneratorConfig or ``rotate`` not a bool.
    ValueError
        If ``rotate`` is asked for a shared bank.
    """

    def __init__(self, config, *, rotate=False):
        self._cfg = check_config(config)
        if not isinstance(rotate, bool):
            raise TypeError(f"rotate must be a bool, not {rotate!r}")
        if rotate and config.shared:
            raise ValueError("A shared bank cannot rotate its lanes (they share one state)")
        self._rotate = rotate
        super().__init__({
            "o": Out(stream.Signature(data.ArrayLayout(signed(config.width), config.lanes))),
            "seed": In(config.seed_width),
            "seed_load": In(1),
        })

    config = property(lambda self: self._cfg)
    rotate = property(lambda self: self._rotate)
    lanes = property(lambda self: self._cfg.lanes)
    width = property(lambda self: self._cfg.width)
    state_bits = property(lambda self: self._cfg.state_bits)
    polynomial = property(lambda self: polynomial(self._cfg.state_bits))

    @property
    def latency(self):
        """Cycles from a seed load to the first number of the new stream on ``o``."""
        return 1

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        k, w = cfg.state_bits, cfg.width
        gens, step, offsets = bank_geometry(cfg)
        masks = bit_masks(k, max(step + k, max(offsets) + w))
        init = lane_states(0, k, gens, cfg.seed_width)
        states = [Signal(k, init=init[g], name=f"state{g}") for g in range(gens)]

        exps = POLYNOMIALS[k]

        def window(st, a, length):
            """Sequence bits x_a..x_{a+length-1} as an expression of the state x_0..x_{k-1}."""
            parts = []
            if a < k:
                parts.append(st[a:min(a + length, k)])
                length -= min(a + length, k) - a
                a = k
            if length > 0:
                if all(a - k + e + length <= k for e in exps):
                    # One level of x_{i+k} = XOR_e x_{i+e}: word-wide XOR of state slices (no
                    # bit appears twice, so nothing for synthesis to cancel).
                    parts.append(reduce(xor, [st[a - k + e:a - k + e + length] for e in exps]))
                else:  # several levels: per-bit XOR masks (the companion-matrix power)
                    parts.append(Cat(xor_bits(st, masks[a + j]) for j in range(length)))
            return Cat(*parts)

        for lane in range(cfg.lanes):
            st = states[0 if cfg.shared else lane]
            m.d.comb += self.o.payload[lane].eq(window(st, offsets[lane], w))
        m.d.comb += self.o.valid.eq(1)

        # Seeding: fold the seed to k-1 bits, shift in a 1 (never all-zero), XOR the lane constant.
        sw = cfg.seed_width
        chunks = [self.seed[i:min(i + k - 1, sw)] for i in range(0, sw, k - 1)]
        fold = Signal(k - 1)
        m.d.comb += fold.eq(chunks[0])
        for c in chunks[1:]:
            fold_next = Signal(k - 1)
            m.d.comb += fold_next.eq(fold ^ c)
            fold = fold_next
        consts = lane_constants(k, gens)

        def advance(st):
            return window(st, step, k)

        with m.If(self.seed_load):
            for g in range(gens):
                m.d.sync += states[g].eq(Cat(1, fold) ^ consts[g])
        with m.Elif(self.o.ready):
            for g in range(gens):
                src = states[(g + 1) % gens] if self._rotate else states[g]
                m.d.sync += states[g].eq(advance(src))
        return m
