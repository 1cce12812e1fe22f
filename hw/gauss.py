"""Gaussian baseline generators, bit-exact with :mod:`pezo.sim.gauss` (which defines the streams).

Both have the PeZO generator's output interface (:class:`pezo.hw.generator.PerturbationGenerator`):
``o`` a stream of ``lanes`` signed ``z_int + z_frac``-bit values, ``seed``/``seed_load`` for the
master seed, and the uniform numbers come from the project's RNG bank
(:class:`pezo.hw.lfsr.UniformBank`).

Flow control: every pipeline register has one enable, ``~o.valid | o.ready`` (the output is empty
or being taken), and the bank advances with the first stage, so a stall freezes the whole pipeline
and no value is lost or repeated. A seed load empties the pipeline; with ``o.ready`` high the first
value of the new stream is on ``o`` ``latency`` cycles after the cycle ``seed_load`` is high
(counting that cycle's clock edge, as :attr:`PerturbationGenerator.latency` does). Reset acts as a
load of seed 0.

Timing: every stage is at most two carry chains, a 5-level shifter or a ROM read deep, for about
48 MHz on an iCE40 UP5K; the Box-Muller multiplies are unsigned 16 x 16 (one SB_MAC16 each) and its
tables are :class:`amaranth.lib.memory.Memory` ROMs with synchronous reads (block RAM where the
device has it).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.fixed import hw_rshift_round_even, hw_saturate
from pezo.hw.lfsr import UniformBank, bank_latency
from pezo.sim.gauss import (BM_PRODUCT_FRAC, LN_FRAC, LN_SEG_BITS, SQ_SEG_BITS, GaussConfig,
                            bm_tables, clt_constant, clt_digits, clt_shift)

__all__ = ["CLTGenerator", "BoxMullerGenerator", "make_gauss"]


def _lzc(value):
    """(all zero, leading-zero count) of ``value`` (length a power of two >= 2), as a balanced
    tree of multiplexers (log2 levels, no priority chain)."""
    n = len(value)
    if n == 2:
        return ~(value[0] | value[1]), ~value[1]
    zl, cl = _lzc(value[:n // 2])
    zh, ch = _lzc(value[n // 2:])
    return zh & zl, Mux(zh, Cat(cl, Const(1, 1)), Cat(ch, Const(0, 1)))


class _GaussBase(wiring.Component):
    _kind = None

    def __init__(self, config):
        if not isinstance(config, GaussConfig):
            raise TypeError(f"Configuration must be a GaussConfig, not {config!r}")
        if config.kind != self._kind:
            raise ValueError(f"{type(self).__name__} needs a GaussConfig of kind "
                             f"{self._kind!r}, not {config.kind!r}")
        self._cfg = config
        super().__init__({
            "o": Out(stream.Signature(data.ArrayLayout(signed(config.z_bits), config.lanes))),
            "seed": In(config.seed_width),
            "seed_load": In(1),
        })

    config = property(lambda self: self._cfg)
    kind = property(lambda self: self._cfg.kind)
    lanes = property(lambda self: self._cfg.lanes)
    z_int = property(lambda self: self._cfg.z_int)
    z_frac = property(lambda self: self._cfg.z_frac)
    z_bits = property(lambda self: self._cfg.z_bits)
    seed_width = property(lambda self: self._cfg.seed_width)

    def _bank(self, m, advance):
        m.submodules.bank = bank = UniformBank(self._cfg.bank_config())
        m.d.comb += [bank.seed.eq(self.seed), bank.seed_load.eq(self.seed_load),
                     bank.o.ready.eq(advance)]
        return bank


class CLTGenerator(_GaussBase):
    """CLT baseline: every value is the scaled sum of k uniform numbers.

    ``z = sat(rne(S * C, T + w - z_frac))`` with S the sum of k bank lanes and C the CSD scale
    constant (:mod:`pezo.sim.gauss`). The bank has ``lanes * k`` lanes. Pipeline: the adder tree
    (two adder levels per register stage), the CSD sum (shifted copies of S, added: no
    multiplier), then rounding (half to even) and saturation into the output register.

    Parameters
    ----------
    config : GaussConfig
        ``kind="clt"``.

    Members
    -------
    o : Out(stream.Signature(ArrayLayout(signed(z_int + z_frac), lanes)))
        Values, Qz_int.z_frac.
    seed : In(seed_width), seed_load : In(1)
        Restart the stream from a master seed.

    Raises
    ------
    TypeError
        If ``config`` is not a GaussConfig.
    ValueError
        If ``config`` is not of kind ``"clt"``.
    """

    _kind = "clt"

    k = property(lambda self: self._cfg.k)
    digits = property(lambda self: clt_digits(self._cfg))

    @property
    def tree_stages(self):
        """Register stages of the adder tree: ceil(ceil(log2 k) / 2)."""
        return -(-(self._cfg.k - 1).bit_length() // 2)

    @property
    def latency(self):
        """Cycles from a seed load to the first value: the bank's seed mixing
        (:attr:`UniformBank.latency`) + adder-tree stages + 2 (CSD sum, rounded output)."""
        return bank_latency(self._cfg.bank_config()) + self.tree_stages + 2

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        adv = Signal()
        m.d.comb += adv.eq(~self.o.valid | self.o.ready)
        bank = self._bank(m, adv)
        nstages = self.tree_stages + 1          # + the CSD sum; the output register is o
        valid = [Signal(name=f"valid{i}") for i in range(nstages)]
        with m.If(self.seed_load):
            m.d.sync += [v.eq(0) for v in valid] + [self.o.valid.eq(0)]
        with m.Elif(adv):
            m.d.sync += valid[0].eq(bank.o.valid)
            m.d.sync += [valid[i].eq(valid[i - 1]) for i in range(1, nstages)]
            m.d.sync += self.o.valid.eq(valid[-1])

        C, T = clt_constant(cfg)
        digits = clt_digits(cfg)
        shift = clt_shift(cfg)
        for j in range(cfg.lanes):
            terms = [bank.o.payload[j * cfg.k + i] for i in range(cfg.k)]
            for st in range(self.tree_stages):
                for _ in range(2):
                    if len(terms) > 1:
                        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                                 for i in range(0, len(terms), 2)]
                regs = []
                for i, t in enumerate(terms):
                    r = Signal(signed(len(t)), name=f"l{j}_sum{st}_{i}")
                    with m.If(adv):
                        m.d.sync += r.eq(t)
                    regs.append(r)
                terms = regs
            (total,) = terms
            parts = [(total << (T - t)) if s > 0 else -(total << (T - t)) for s, t in digits]
            acc_expr = sum(parts[1:], parts[0])
            acc = Signal(signed(len(total) + C.bit_length() + 1), name=f"l{j}_acc")
            with m.If(adv):
                m.d.sync += acc.eq(acc_expr)
            z, _ = hw_saturate(hw_rshift_round_even(acc, shift), cfg.z_bits)
            with m.If(adv):
                m.d.sync += self.o.payload[j].eq(z)
        return m


class BoxMullerGenerator(_GaussBase):
    """Table-based fixed-point Box-Muller baseline: z1 = r cos(theta), z2 = r sin(theta).

    Per pair unit (``lanes/2`` units for even ``lanes``, ``lanes`` half-rate units for odd), from
    a 32-bit u1 and a 16-bit u2 (three bank lanes), with the formats and tables of
    :mod:`pezo.sim.gauss`. Register stages:

    1. leading-zero count e of u1 (u1 = 0 read as 1);
    2. normalise u1 (shift by e): ln segment i and fraction d;
    3. ln table (LN_A, LN_B) and (e + 1) ln 2 table reads;
    4. LN_B * d (16 x 16); (e + 1) ln 2 - LN_A;
    5. G = 2 ((e + 1) ln 2 - LN_A - (LN_B d >> 16)) = -2 ln u;
    6. leading-zero pairs s of G;
    7. normalise G (shift by 2 s): sqrt segment q and fraction d2;
    8. sqrt table read (SQ_A, SQ_B);
    9. SQ_B * d2 (16 x 16);
    10. sq = SQ_A + (SQ_B d2 >> 16);
    11. sq >> (6 + s); the quarter-wave table is addressed from u2;
    12. R = round half up (Q3.13); |cos|, |sin| table reads;
    13. R |cos| and R |sin| (two 16 x 16 multiplies; one, alternating, in a half-rate unit);
    14. rounding (magnitude half up);
    15. saturation and sign into the output register.

    A half-rate unit holds stage 12 for two output beats (cos, then sin), so the bank advances
    every other beat. Multipliers per unit: 4 (full rate) or 3 (half rate); ROMs per unit: ln
    64 x 38, (e+1) ln 2 32 x 27, sqrt 128 x 39, quarter-wave 2^(angle_bits-2) x 16 with two read
    ports.

    Parameters
    ----------
    config : GaussConfig
        ``kind="boxmuller"``.

    Members
    -------
    o : Out(stream.Signature(ArrayLayout(signed(z_int + z_frac), lanes)))
        Values, Qz_int.z_frac.
    seed : In(seed_width), seed_load : In(1)
        Restart the stream from a master seed.

    Raises
    ------
    TypeError
        If ``config`` is not a GaussConfig.
    ValueError
        If ``config`` is not of kind ``"boxmuller"``.
    """

    _kind = "boxmuller"

    FRONT_STAGES = 12

    angle_bits = property(lambda self: self._cfg.angle_bits)
    units = property(lambda self: self._cfg.units)
    full_rate = property(lambda self: self._cfg.full_rate)

    @property
    def latency(self):
        """Cycles from a seed load to the first value: the bank's seed mixing
        (:attr:`UniformBank.latency`) + 15 register stages."""
        return bank_latency(self._cfg.bank_config()) + self.FRONT_STAGES + 3

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        full = cfg.full_rate
        A = cfg.angle_bits
        tables = bm_tables(cfg)

        adv = Signal()              # the back end (product, output) advances
        f_adv = Signal()            # the front (bank .. stage 12) advances
        phase = Signal()            # half rate: 0 = cos next, 1 = sin next
        fv = [Signal(name=f"fvalid{i + 1}") for i in range(self.FRONT_STAGES)]
        bv = [Signal(name=f"bvalid{i + 13}") for i in range(2)]
        m.d.comb += adv.eq(~self.o.valid | self.o.ready)
        if full:
            m.d.comb += f_adv.eq(adv)
        else:
            m.d.comb += f_adv.eq(adv & (~fv[-1] | phase))
        bank = self._bank(m, f_adv)

        with m.If(self.seed_load):
            m.d.sync += [v.eq(0) for v in fv + bv] + [self.o.valid.eq(0), phase.eq(0)]
        with m.Else():
            with m.If(f_adv):
                m.d.sync += fv[0].eq(bank.o.valid)
                m.d.sync += [fv[i].eq(fv[i - 1]) for i in range(1, len(fv))]
            with m.If(adv):
                m.d.sync += [bv[0].eq(fv[-1]), bv[1].eq(bv[0]), self.o.valid.eq(bv[1])]
                if not full:
                    with m.If(fv[-1]):
                        m.d.sync += phase.eq(~phase)

        def reg(name, value, width=None, en=f_adv):
            r = Signal(width if width is not None else len(value), name=name)
            with m.If(en):
                m.d.sync += r.eq(value)
            return r

        def rom(name, init, width):
            mem = memory.Memory(shape=unsigned(width), depth=len(init), init=init)
            m.submodules[name] = mem
            return mem

        out_shift = BM_PRODUCT_FRAC - cfg.z_frac
        zmax = (1 << (cfg.z_bits - 1)) - 1
        ln_init = [a | (b << LN_FRAC) for a, b in zip(tables["ln_a"], tables["ln_b"])]
        sq_init = [a | (b << 23) for a, b in zip(tables["sq_a"], tables["sq_b"])]

        for p in range(cfg.units):
            def nm(s):
                return f"u{p}_{s}"
            hi = bank.o.payload[3 * p].as_unsigned()
            lo = bank.o.payload[3 * p + 1].as_unsigned()
            u2 = bank.o.payload[3 * p + 2].as_unsigned()
            u1 = Cat(lo, hi)
            u1p = Cat(u1[0] | ~u1.any(), u1[1:])
            # 1: leading zeros
            x1 = reg(nm("x1"), u1p)
            e1 = reg(nm("e1"), _lzc(u1p)[1], 5)
            a1 = reg(nm("a1"), u2[16 - A:])
            # 2: normalise, ln segment and fraction
            n = Signal(32, name=nm("norm"))
            m.d.comb += n.eq(x1 << e1)
            i2 = reg(nm("i2"), n[31 - LN_SEG_BITS:31])
            d2 = reg(nm("d2"), n[15 - LN_SEG_BITS:31 - LN_SEG_BITS])
            e2 = reg(nm("e2"), e1)
            a2 = reg(nm("a2"), a1)
            # 3: ln and (e + 1) ln 2 tables
            ln_rom = rom(nm("ln_rom"), ln_init, LN_FRAC + 16)
            lnp = ln_rom.read_port(domain="sync")
            et_rom = rom(nm("lne_rom"), tables["ln_e"], 27)
            etp = et_rom.read_port(domain="sync")
            m.d.comb += [lnp.addr.eq(i2), lnp.en.eq(f_adv), etp.addr.eq(e2), etp.en.eq(f_adv)]
            d3 = reg(nm("d3"), d2)
            a3 = reg(nm("a3"), a2)
            # 4: interpolation product; (e + 1) ln 2 - LN_A (> 0)
            ln_a3, ln_b3 = lnp.data[:LN_FRAC], lnp.data[LN_FRAC:]
            prod4 = reg(nm("lnprod4"), ln_b3 * d3, 32)
            diff4 = reg(nm("lndiff4"), etp.data - ln_a3, 27)
            a4 = reg(nm("a4"), a3)
            # 5: G = 2 (diff - (LN_B d >> 16)) = -2 ln u (units 2^-22)
            h = Signal(27, name=nm("h"))
            m.d.comb += h.eq(diff4 - prod4[16:])
            g5 = reg(nm("g5"), Cat(Const(0, 1), h), 28)
            a5 = reg(nm("a5"), a4)
            # 6: leading-zero pairs
            s6 = reg(nm("s6"), _lzc(Cat(Const(0, 4), g5))[1][1:], 4)
            g6 = reg(nm("g6"), g5)
            a6 = reg(nm("a6"), a5)
            # 7: normalise, sqrt segment and fraction
            nn = Signal(28, name=nm("gnorm"))
            m.d.comb += nn.eq(g6 << Cat(Const(0, 1), s6))
            q_lo = 28 - (SQ_SEG_BITS + 2)           # q = N >> 21, d2 = the 16 bits below
            q7 = reg(nm("q7"), nn[q_lo:28])
            dd7 = reg(nm("dd7"), nn[q_lo - 16:q_lo])
            s7 = reg(nm("s7"), s6)
            a7 = reg(nm("a7"), a6)
            # 8: sqrt table
            sq_rom = rom(nm("sqrt_rom"), sq_init, 23 + 16)
            sqp = sq_rom.read_port(domain="sync")
            m.d.comb += [sqp.addr.eq(q7), sqp.en.eq(f_adv)]
            dd8 = reg(nm("dd8"), dd7)
            s8 = reg(nm("s8"), s7)
            a8 = reg(nm("a8"), a7)
            # 9: interpolation product
            prod9 = reg(nm("sqprod9"), sqp.data[23:] * dd8, 32)
            sa9 = reg(nm("sqa9"), sqp.data[:23])
            s9 = reg(nm("s9"), s8)
            a9 = reg(nm("a9"), a8)
            # 10: sqrt value
            sq10 = reg(nm("sq10"), sa9 + prod9[16:], 23)
            s10 = reg(nm("s10"), s9)
            a10 = reg(nm("a10"), a9)
            # 11: sq >> (6 + s); quarter-wave addresses
            sh11 = reg(nm("sh11"), (sq10 >> s10)[6:], 17)
            a11 = reg(nm("a11"), a10)
            quad, t = a11[A - 2:], a11[:A - 2]
            even = ~quad[0]
            trig = rom(nm("trig_rom"), tables["trig"], 16)
            cp, sp = trig.read_port(domain="sync"), trig.read_port(domain="sync")
            m.d.comb += [cp.addr.eq(Mux(even, ~t, t)), sp.addr.eq(Mux(even, t, ~t)),
                         cp.en.eq(f_adv), sp.en.eq(f_adv)]
            # 12: radius (round half up); the table reads
            r12 = reg(nm("r12"), (sh11 + 1)[1:17], 16)
            cn12 = reg(nm("cneg12"), quad[0] ^ quad[1])
            sn12 = reg(nm("sneg12"), quad[1])
            # 13: products; 14: round; 15: saturate, sign
            if full:
                pairs = [(2 * p, cp.data, cn12), (2 * p + 1, sp.data, sn12)]
            else:
                pairs = [(p, Mux(phase, sp.data, cp.data), Mux(phase, sn12, cn12))]
            for lane, tv, neg in pairs:
                prod = reg(f"l{lane}_prod13", r12 * tv, 32, en=adv)
                neg13 = reg(f"l{lane}_neg13", neg, 1, en=adv)
                rnd = reg(f"l{lane}_round14", (prod[out_shift - 1:] + 1)[1:],
                          33 - out_shift, en=adv)
                neg14 = reg(f"l{lane}_neg14", neg13, 1, en=adv)
                # rnd >= 0: it fits z_bits - 1 bits iff its upper bits are all zero
                over = rnd[cfg.z_bits - 1:].any() if len(rnd) > cfg.z_bits - 1 else Const(0)
                mag = Signal(cfg.z_bits - 1, name=f"l{lane}_mag")
                m.d.comb += mag.eq(Mux(over, zmax, rnd[:cfg.z_bits - 1]))
                with m.If(adv):
                    m.d.sync += self.o.payload[lane].eq(Mux(neg14, -mag, mag))
        return m


def make_gauss(config):
    """The baseline component (:class:`CLTGenerator` or :class:`BoxMullerGenerator`) of a
    :class:`~pezo.sim.gauss.GaussConfig`.

    Raises
    ------
    TypeError
        If ``config`` is not a GaussConfig.
    """
    if not isinstance(config, GaussConfig):
        raise TypeError(f"Configuration must be a GaussConfig, not {config!r}")
    return CLTGenerator(config) if config.kind == "clt" else BoxMullerGenerator(config)
