"""The uniform RNG bank: n maximal-length LFSR lanes of w-bit two's complement numbers."""

from functools import reduce
from operator import xor

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.hw.common import check_config, xor_bits
from pezo.sim.bank import bank_geometry
from pezo.sim.lfsr import POLYNOMIALS, bit_masks, polynomial
from pezo.sim.seeding import (ROUNDS, block_count, domain_tweak, half_bits, lane_states,
                              load_cycles, round_constants)

__all__ = ["UniformBank", "SeedMixer", "bank_latency", "bank_blocks"]


class SeedMixer(wiring.Component):
    """The seed mixer's permutation in output-feedback mode, one Feistel round per cycle
    (:mod:`pezo.sim.seeding`).

    On ``start`` the block register takes ``iv``; every later cycle while ``busy`` applies one
    round (the round constant is the round counter itself: no table). ``block_valid`` pulses in
    the cycle the last round of a block is applied, with the finished block on ``block`` (it is
    also the chaining value for the next block). After ``blocks`` blocks ``busy`` falls.

    Members
    -------
    iv : In(seed_width), start : In(1)
    block : Out(seed_width), block_valid : Out(1), busy : Out(1)
    done : Out(1)
        ``block_valid`` of the last block.
    """

    def __init__(self, seed_width: int, blocks: int):
        if seed_width not in (32, 64):
            raise ValueError(f"Seed width must be 32 or 64, not {seed_width!r}")
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
            raise ValueError(f"Block count must be a positive integer, not {blocks!r}")
        self._sw, self._blocks = seed_width, blocks
        super().__init__({"iv": In(seed_width), "start": In(1), "block": Out(seed_width),
                          "block_valid": Out(1), "done": Out(1), "busy": Out(1)})

    @property
    def cycles(self):
        """Cycles from ``start`` to the last ``block_valid`` (inclusive of that cycle)."""
        return self._blocks * ROUNDS

    def elaborate(self, platform):
        m = Module()
        sw = self._sw
        n, T = half_bits(sw), ROUNDS
        assert round_constants(sw) == tuple(range(T))      # the constant is the counter
        blk = Signal(sw)
        rnd = Signal(range(T))
        nblk = Signal(range(self._blocks + 1))
        busy = Signal()
        rk = rnd
        x, y = blk[n:], blk[:n]

        def rotl(v, r):
            return Cat(v[n - r:], v[:n - r])
        new = Cat(x, y ^ (rotl(x, 1) & rotl(x, 8)) ^ rotl(x, 2) ^ rk)   # (x', y') = (y ^ f ^ k, x)
        last = Signal()         # rnd == T - 1, registered (timing: block_valid drives enables)
        m.d.comb += [self.block.eq(new), self.block_valid.eq(busy & last), self.busy.eq(busy),
                     self.done.eq(busy & last & (nblk == self._blocks - 1))]
        with m.If(self.start):
            m.d.sync += [blk.eq(self.iv), rnd.eq(0), nblk.eq(0), busy.eq(1), last.eq(T == 1)]
        with m.Elif(busy):
            m.d.sync += [blk.eq(new), rnd.eq(Mux(last, 0, rnd + 1)),
                         last.eq(Mux(last, T == 1, rnd == T - 2))]
            with m.If(last):
                m.d.sync += nblk.eq(nblk + 1)
                with m.If(nblk == self._blocks - 1):
                    m.d.sync += busy.eq(0)
        return m


def bank_blocks(cfg) -> int:
    """:attr:`UniformBank.blocks` of a bank configuration (no component needed): the mixer
    blocks a seed load takes."""
    return block_count(cfg.state_bits, bank_geometry(cfg)[0], cfg.seed_width)


def bank_latency(cfg) -> int:
    """:attr:`UniformBank.latency` of a bank configuration (no component needed): cycles from a
    seed load to the first number of the new stream."""
    return 1 + load_cycles(cfg.state_bits, bank_geometry(cfg)[0], cfg.seed_width)


class UniformBank(wiring.Component):
    """Uniform random-number bank (bit-exact with :class:`pezo.sim.bank.BankModel`).

    Every generator is a k-bit LFSR whose next state is a fixed XOR network (the s-th power of the
    companion matrix, s = w or n*w steps per cycle, computed at elaboration); a number's bits are
    state bits (or XORs of them when they lie beyond the state). The state advances on each
    transfer. A seed load runs the seed mixer (:class:`SeedMixer`, one SIMON round per cycle):
    each finished block is shifted into the chain of all lane states from the bottom, and a last
    cycle replaces an all-zero lane state by 1 (:mod:`pezo.sim.seeding`); ``o.valid`` is low
    meanwhile.

    Parameters
    ----------
    config : GeneratorConfig
        Uses ``lanes``, ``width``, ``state_bits``, ``shared`` and ``seed_width``.
    rotate : bool
        After every transfer, output position j takes over the state of position j+1 (mod n):
        the ``onthefly`` rotation, at no cost in logic.
    domain : str
        The seed domain (:data:`pezo.sim.seeding.DOMAINS`): its tweak is XORed into the seed.
    mixer : bool
        Build the bank's own :class:`SeedMixer` (default). False: the blocks come from a mixer
        shared with other banks (the lean engine's), on ``mix_block`` / ``mix_valid`` /
        ``mix_done``, started by its owner with IV ``seed ^`` :attr:`tweak`; ``seed`` is then
        unused, ``seed_load`` still starts the load (``loading`` rises).

    Members
    -------
    o : Out(stream.Signature(ArrayLayout(signed(width), lanes)))
        Numbers, one per lane per transfer. Valid except while a seed is being loaded.
    seed : In(seed_width)
        Master seed (sampled in the cycle of ``seed_load``).
    seed_load : In(1)
        Start loading the lane states derived from ``seed``; the first number of the new stream
        is on ``o`` ``latency`` cycles later. A transfer in the same cycle takes the old number.
        Reset leaves the bank as a completed load of seed 0.
    loading : Out(1)
        A seed load is in progress (``o.valid`` is low).

    Raises
    ------
    TypeError
        If ``config`` is not a GeneratorConfig or ``rotate`` not a bool.
    ValueError
        If ``rotate`` is asked for a shared bank, or ``domain`` is unknown.
    """

    def __init__(self, config, *, rotate=False, domain="bank", mixer=True):
        self._cfg = check_config(config)
        if not isinstance(rotate, bool):
            raise TypeError(f"rotate must be a bool, not {rotate!r}")
        if not isinstance(mixer, bool):
            raise TypeError(f"mixer must be a bool, not {mixer!r}")
        self._own_mixer = mixer
        if rotate and config.shared:
            raise ValueError("A shared bank cannot rotate its lanes (they share one state)")
        self._rotate = rotate
        self._tweak = domain_tweak(domain, config.seed_width)
        self._domain = domain
        gens = bank_geometry(config)[0]
        init = lane_states(0, config.state_bits, gens, config.seed_width, self._tweak)
        #: The generators' LFSR states (read by formal checks: pezo.formal).
        self.lane_state_signals = [Signal(config.state_bits, init=init[g], name=f"state{g}")
                                   for g in range(gens)]
        #: Internal flags the formal checks state invariants over: the zero-fix cycle and the
        #: seed mixer's busy flag.
        self.formal = {"fix": Signal(name="fix"), "mixer_busy": Signal(name="mixer_busy")}
        ports = {
            "o": Out(stream.Signature(data.ArrayLayout(signed(config.width), config.lanes))),
            "seed": In(config.seed_width),
            "seed_load": In(1),
            "loading": Out(1),
        }
        if not mixer:
            ports.update(mix_block=In(config.seed_width), mix_valid=In(1), mix_done=In(1))
        super().__init__(ports)

    config = property(lambda self: self._cfg)
    rotate = property(lambda self: self._rotate)
    domain = property(lambda self: self._domain)
    tweak = property(lambda self: self._tweak, doc="The domain's tweak (XORed into the seed).")
    blocks = property(lambda self: bank_blocks(self._cfg), doc="Mixer blocks a seed load takes.")
    lanes = property(lambda self: self._cfg.lanes)
    width = property(lambda self: self._cfg.width)
    state_bits = property(lambda self: self._cfg.state_bits)
    polynomial = property(lambda self: polynomial(self._cfg.state_bits))

    @property
    def latency(self):
        """Cycles from a seed load to the first number of the new stream on ``o``."""
        return bank_latency(self._cfg)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        k, w, sw = cfg.state_bits, cfg.width, cfg.seed_width
        gens, step, offsets = bank_geometry(cfg)
        masks = bit_masks(k, max(step + k, max(offsets) + w))
        states = self.lane_state_signals

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

        # Seeding: SIMON OFB blocks shift into the chain of lane states, then one cycle fixes
        # all-zero states.
        fix = self.formal["fix"]
        loading = Signal()
        if self._own_mixer:
            m.submodules.mixer = mixer = SeedMixer(sw, block_count(k, gens, sw))
            m.d.comb += self.formal["mixer_busy"].eq(mixer.busy)
            m.d.comb += [mixer.iv.eq(self.seed ^ self._tweak), mixer.start.eq(self.seed_load)]
            block, block_valid, block_done = mixer.block, mixer.block_valid, mixer.done
        else:
            block, block_valid, block_done = self.mix_block, self.mix_valid, self.mix_done
        m.d.comb += [self.loading.eq(loading), self.o.valid.eq(~loading)]
        chain = Cat(*states)

        def advance(st):
            return window(st, step, k)

        # Timing: the states' clock enable is the consumer's ready (``~loading & o.ready``) OR
        # the mixer's block strobe, not a priority chain behind ``seed_load`` and ``fix``. The
        # three cases exclude each other: a block or a fix comes only while ``loading``, when
        # nothing advances; an advance in the cycle of a ``seed_load`` is overwritten by the
        # mixer's blocks, which replace every state bit (J * seed_width >= G * k).
        with m.If(~loading & self.o.ready):
            for g in range(gens):
                src = states[(g + 1) % gens] if self._rotate else states[g]
                m.d.sync += states[g].eq(advance(src))
        with m.If(block_valid):
            m.d.sync += chain.eq(Cat(block, chain)[:len(chain)])
        with m.If(fix):
            # An all-zero state becomes 1: only bit 0 is written, so the other bits' next-state
            # logic does not see the check.
            for g in range(gens):
                with m.If(states[g] == 0):
                    m.d.sync += states[g][0].eq(1)
        # A seed load restarts the mixer: a block finishing in that cycle sets no fix.
        m.d.sync += fix.eq(block_valid & block_done & ~self.seed_load)
        with m.If(self.seed_load):
            m.d.sync += loading.eq(1)
        with m.Elif(fix):
            m.d.sync += loading.eq(0)
        return m
