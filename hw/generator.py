"""The PeZO perturbation generator: uniform bank -> reuse -> adaptive scaler."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from pezo.hw.common import check_config
from pezo.hw.lfsr import UniformBank, bank_latency
from pezo.hw.reuse import Fanout, PoolBuffer, sumsq_bits
from pezo.hw.scaler import Scaler, scale_register_bits, scaler_latency
from pezo.sim import scaler as scaler_model
from pezo.sim.reuse import KEY_BITS, sign_rate
from pezo.sim.seeding import domain_tweak

__all__ = ["PerturbationGenerator", "generator_latency", "generator_fill_cycles"]


def generator_latency(cfg) -> int:
    """:attr:`PerturbationGenerator.latency` of a configuration (no component needed)."""
    return bank_latency(cfg) + scaler_latency(cfg)


def generator_fill_cycles(cfg) -> int:
    """:attr:`PerturbationGenerator.fill_cycles` of a configuration (no component needed)."""
    return cfg.pool_size // cfg.lanes + 3 if cfg.reuse == "pregen" else 0


class PerturbationGenerator(wiring.Component):
    """Bank -> reuse -> scaler, configured by one :class:`~pezo.config.GeneratorConfig`.

    Bit-exact with :class:`pezo.sim.generator.GeneratorModel`: the values transferred on ``o``
    after a seed load are ``generate(config, seed, ...)``, whatever the stalls on ``o.ready``.
    With ``bank_mixer=False`` (not for ``pregen``) the bank has no seed mixer of its own: the
    owner feeds :attr:`bank`'s ``mix_*`` ports (:class:`pezo.hw.lfsr.UniformBank`).

    Members
    -------
    o : Out(stream.Signature(ArrayLayout(signed(z_int + z_frac), out_lanes)))
        Perturbation values z (Qz_int.z_frac), m per beat.
    seed : In(seed_width), seed_load : In(1)
        Restart the stream from a master seed (and refill the pool for ``pregen``). Reset acts as
        a load of seed 0.
    saturated : Out(1), sat_clear : In(1)
        Sticky scaler saturation flag and its clear.
    scale : Out(scale_register_bits), scale_value : In(...), scale_load : In(1)
        (``runtime`` scale) The CSD scale register, its new value and load strobe.
    offset : Out(range(N/m)), offset_value : In(range(N/m)), offset_key : In(32),
    offset_set : In(1), filling : Out(1), pool_sumsq : Out(unsigned)
        (``pregen``) Pool read position (word of the beat on ``o``), rewind to a word with the
        query key of the sign stream (only while not filling), fill status, second moment of the
        pool (``pool_sumsq`` only with ``sumsq=True``, the default; the engine builds its
        generator without it, and with ``out_skid=True``: see :class:`Scaler`; ``in_skid``
        is the scaler's too).
    loading : Out(1)
        The bank is mixing a seed (after ``seed_load``, or a pregen rewind): no beats meanwhile.
    """

    def __init__(self, config, *, sumsq=True, out_skid=False, in_skid=True, bank_mixer=True):
        self._cfg = cfg = check_config(config)
        if not isinstance(sumsq, bool):
            raise TypeError(f"sumsq must be a bool, not {sumsq!r}")
        if not isinstance(out_skid, bool):
            raise TypeError(f"out_skid must be a bool, not {out_skid!r}")
        self._sumsq = sumsq
        self._out_skid = out_skid
        if not isinstance(in_skid, bool):
            raise TypeError(f"in_skid must be a bool, not {in_skid!r}")
        self._in_skid = in_skid
        if not isinstance(bank_mixer, bool):
            raise TypeError(f"bank_mixer must be a bool, not {bank_mixer!r}")
        if not bank_mixer and cfg.reuse == "pregen":
            raise ValueError("A pregen generator reloads its bank itself (sign rewinds): its "
                             "bank needs its own seed mixer (bank_mixer=True)")
        #: The uniform bank (:class:`pezo.hw.lfsr.UniformBank`); with ``bank_mixer=False`` its
        #: mixer blocks come from the owner (the lean engine's shared mixer).
        self.bank = UniformBank(cfg, rotate=cfg.reuse == "onthefly", mixer=bank_mixer)
        ports = {
            "o": Out(stream.Signature(data.ArrayLayout(signed(cfg.z_bits), cfg.out_lanes))),
            "seed": In(cfg.seed_width),
            "seed_load": In(1),
            "saturated": Out(1),
            "sat_clear": In(1),
            "loading": Out(1),
        }
        if cfg.scale == "runtime":
            reset = scaler_model.encode_scale(scaler_model.default_digits(cfg), cfg)
            bits = scale_register_bits(cfg)
            ports.update(scale=Out(bits, init=reset), scale_value=In(bits), scale_load=In(1))
        if cfg.reuse == "pregen":
            ports.update(offset=Out(range(cfg.pool_words)),
                         offset_value=In(range(cfg.pool_words)), offset_key=In(KEY_BITS),
                         offset_set=In(1),
                         filling=Out(1))
            if sumsq:
                ports.update(pool_sumsq=Out(sumsq_bits(cfg)))
        super().__init__(ports)

    config = property(lambda self: self._cfg)

    @property
    def latency(self):
        """Cycles from a seed load (or a pregen rewind) to the first valid beat on ``o`` when ``o``
        is not stalled: the bank's seed mixing, then the scaler. For ``pregen`` a seed load first
        fills the pool: add ``fill_cycles``."""
        return generator_latency(self._cfg)

    @property
    def fill_cycles(self):
        """``pregen``: cycles the pool fill adds to a seed load: N/n transfers, 2 to finish the
        second moment, 1 for the first pool read."""
        return generator_fill_cycles(self._cfg)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        m.submodules.bank = bank = self.bank
        m.submodules.scaler = scaler = Scaler(cfg, out_skid=self._out_skid,
                                                   in_skid=self._in_skid)
        m.d.comb += self.loading.eq(bank.loading)
        if cfg.reuse != "pregen":       # pregen drives the bank's seed itself (sign reloads)
            m.d.comb += [bank.seed.eq(self.seed), bank.seed_load.eq(self.seed_load)]
        flush = self.seed_load
        if cfg.reuse == "none":
            connect(m, bank.o, scaler.i)
        elif cfg.reuse == "onthefly":
            m.submodules.fanout = fan = Fanout(cfg)
            connect(m, bank.o, fan.i)
            connect(m, fan.o, scaler.i)
        else:
            m.submodules.pool = pool = PoolBuffer(cfg, sumsq=self._sumsq)
            # The bank fills the pool, then supplies one sign bit per number: word (b mod r) of
            # m bits of its n*w-bit output, one bank transfer per r beats (pezo.sim.reuse). A
            # rewind reloads it with the seed XOR the sign tweak XOR the query key.
            seed_r = Signal(cfg.seed_width)
            with m.If(self.seed_load):
                m.d.sync += seed_r.eq(self.seed)
            sign_seed = seed_r ^ domain_tweak("sign", cfg.seed_width) ^ self.offset_key
            m.d.comb += [bank.seed.eq(Mux(self.seed_load, self.seed, sign_seed)),
                         bank.seed_load.eq(self.seed_load | self.offset_set)]
            r = sign_rate(cfg)

            def back(head, held):
                """(head - held) mod pool_words: one subtraction when the pool's word count is
                a power of two."""
                words = cfg.pool_words
                if words & (words - 1) == 0:
                    return (head - held)[:max(1, words.bit_length() - 1)]
                return Mux(head >= held, head - held, head + words - held)
            sub = Signal(range(r))
            bits = Cat(*(bank.o.payload[l].as_unsigned() for l in range(cfg.lanes)))
            # Beat sub = 0 of a group takes the bank's word (its signs straight from the bank's
            # output) and keeps the rest in a shift register, so every other beat's signs come
            # from a flip-flop (no r-way select on the path into the scaler).
            # ``first`` (sub == 0) is a register of its own: the sign select into the scaler is
            # then one LUT with the pool's bit and the two sign sources (timing).
            first = Signal(init=1)
            rest = Signal(max(1, len(bits) - cfg.out_lanes))
            signs = Mux(first, bits[:cfg.out_lanes], rest[:cfg.out_lanes]) if r > 1 \
                else bits[:cfg.out_lanes]
            have_signs = bank.o.valid | ~first
            join = pool.o.valid & have_signs
            take = join & scaler.i.ready
            if r > 1:
                # The bank moves on one cycle after its word was taken (registered: its state
                # enables do not depend on the scaler's ready); the next group starts r >= 2
                # beats later. A rewind in between reloads the bank anyway.
                step = Signal()
                m.d.sync += step.eq(take & first & ~(self.seed_load | self.offset_set))
            else:
                step = take
            m.d.comb += [
                pool.i.payload.eq(bank.o.payload), pool.i.valid.eq(bank.o.valid),
                bank.o.ready.eq(Mux(pool.filling, pool.i.ready, step)),
                pool.o.ready.eq(scaler.i.ready & have_signs),
                scaler.i.valid.eq(join),
            ]
            if r > 1:
                with m.If(take):
                    m.d.sync += rest.eq(Mux(first, bits[cfg.out_lanes:],
                                            rest >> cfg.out_lanes))
            for j in range(cfg.out_lanes):
                m.d.comb += scaler.i.payload[j].eq(
                    (pool.o.payload[j].as_unsigned() ^ signs[j].replicate(cfg.width)).as_signed())
            with m.If(self.seed_load | self.offset_set):
                m.d.sync += [sub.eq(0), first.eq(1)]
            with m.Elif(take):
                m.d.sync += [sub.eq(Mux(sub == r - 1, 0, sub + 1)), first.eq(sub == r - 1)]
            m.d.comb += [
                pool.restart.eq(self.seed_load),
                pool.offset_value.eq(self.offset_value), pool.offset_set.eq(self.offset_set),
                # Beats held in the scaler left the pool earlier: count them back.
                self.offset.eq(back(pool.offset, scaler.held)),
                self.filling.eq(pool.filling),
            ]
            if self._sumsq:
                m.d.comb += self.pool_sumsq.eq(pool.sumsq)
            flush = self.seed_load | self.offset_set
        if cfg.scale == "runtime":
            reset = scaler_model.encode_scale(scaler_model.default_digits(cfg), cfg)
            reg = Signal(scale_register_bits(cfg), init=reset)
            with m.If(self.scale_load):
                m.d.sync += reg.eq(self.scale_value)
            m.d.comb += scaler.scale_changed.eq(self.scale_load)
            m.d.comb += [scaler.scale.eq(reg), self.scale.eq(reg)]
        m.d.comb += [scaler.flush.eq(flush), scaler.sat_clear.eq(self.sat_clear),
                     self.saturated.eq(scaler.saturated)]
        wiring.connect(m, scaler.o, wiring.flipped(self.o))
        return m
