"""Gaussian baseline generators (bit-exact with :mod:`pezo.sim.gauss`, which defines the streams).

Both have the PeZO generator's output interface: ``o`` a stream of ``lanes`` signed
``z_int + z_frac``-bit values, ``seed``/``seed_load`` for the master seed. Every pipeline stage
advances together when the output may (``~o.valid | o.ready``), so a stall never loses or repeats
a value; a seed load empties the pipeline and the first value of the new stream appears
``latency`` cycles after it (with ``o.ready`` high).

* :class:`CLTGenerator` - a uniform bank of ``lanes * k`` 16-bit lanes; stage 1 registers the k-sums,
  stage 2 the constant multiply (yosys turns it into adders), rounding and saturation. Latency 2.
* :class:`BoxMullerGenerator` - a uniform bank of ``lanes`` lanes (u1, u2 pairs); stage 1 reads
  the radius table (leading-zero segmented) and the cos/sin tables (block RAM read ports),
  stage 2 multiplies (two 16 x 16 products per pair: DSPs where the device has them), stage 3
  rounds and saturates. Latency 3.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.hw.lfsr import UniformBank
from pezo.sim.gauss import (BM_RF, BM_TF, UNIFORM_WIDTH, GaussConfig, bm_shift, bm_tables,
                            clt_constant, clt_shift)

__all__ = ["CLTGenerator", "BoxMullerGenerator", "make_gauss"]


def _saturate(m, value, bits, out):
    hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    m.d.comb += out.eq(Mux(value > hi, hi, Mux(value < lo, lo, value)))


class _GaussBase(wiring.Component):
    def __init__(self, config):
        if not isinstance(config, GaussConfig):
            raise TypeError(f"Configuration must be a GaussConfig, not {config!r}")
        self._cfg = config
        super().__init__({
            "o": Out(stream.Signature(data.ArrayLayout(signed(config.z_bits), config.lanes))),
            "seed": In(config.seed_width),
            "seed_load": In(1),
        })

    config = property(lambda self: self._cfg)

    def _bank(self, m):
        m.submodules.bank = bank = UniformBank(self._cfg.bank_config())
        m.d.comb += [bank.seed.eq(self.seed), bank.seed_load.eq(self.seed_load)]
        return bank


class CLTGenerator(_GaussBase):
    """CLT baseline: each value the scaled sum of k uniforms (see :mod:`pezo.sim.gauss`)."""

    latency = 2

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        bank = self._bank(m)
        adv = Signal()
        v1 = Signal()
        m.d.comb += [adv.eq(~self.o.valid | self.o.ready), bank.o.ready.eq(adv)]
        sum_bits = UNIFORM_WIDTH + (cfg.k - 1).bit_length()
        sums = [Signal(signed(sum_bits), name=f"sum{j}") for j in range(cfg.lanes)]
        const, sh = clt_constant(cfg.k), clt_shift(cfg)
        with m.If(self.seed_load):
            m.d.sync += [v1.eq(0), self.o.valid.eq(0)]
        with m.Elif(adv):
            m.d.sync += [v1.eq(1), self.o.valid.eq(v1)]
            for j in range(cfg.lanes):
                total = bank.o.payload[j * cfg.k]
                for i in range(1, cfg.k):
                    total = total + bank.o.payload[j * cfg.k + i]
                m.d.sync += sums[j].eq(total)
                scaled = Signal(signed(sum_bits + const.bit_length() + 1), name=f"scaled{j}")
                m.d.comb += scaled.eq((sums[j] * const + (1 << (sh - 1))) >> sh)
                z = Signal(signed(cfg.z_bits), name=f"z{j}")
                _saturate(m, scaled, cfg.z_bits, z)
                m.d.sync += self.o.payload[j].eq(z)
        return m


class BoxMullerGenerator(_GaussBase):
    """Fixed-point Box-Muller baseline with table look-ups (see :mod:`pezo.sim.gauss`)."""

    latency = 3

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        bank = self._bank(m)
        adv = Signal()
        v1, v2 = Signal(), Signal()
        m.d.comb += [adv.eq(~self.o.valid | self.o.ready), bank.o.ready.eq(adv)]
        r_t, c_t, s_t = (t.tolist() for t in bm_tables(cfg))
        M, B = cfg.r_index_bits, cfg.angle_index_bits
        sh = bm_shift(cfg)
        with m.If(self.seed_load):
            m.d.sync += [v1.eq(0), v2.eq(0), self.o.valid.eq(0)]
        with m.Elif(adv):
            m.d.sync += [v1.eq(1), v2.eq(v1), self.o.valid.eq(v2)]
        for i in range(cfg.lanes // 2):
            u1 = Signal(UNIFORM_WIDTH, name=f"u1_{i}")
            u2 = Signal(UNIFORM_WIDTH, name=f"u2_{i}")
            flip = 1 << (UNIFORM_WIDTH - 1)
            m.d.comb += [u1.eq(bank.o.payload[2 * i].as_unsigned() ^ flip),
                         u2.eq(bank.o.payload[2 * i + 1].as_unsigned() ^ flip)]
            # Leading zeros of u1, capped at 15, and the M bits after the leading one.
            e = Signal(4, name=f"lz{i}")
            # Priority chain: the highest set bit wins (u1 = 0 or 1: 15 leading zeros).
            chain = Const(15, 4)
            for bit in range(16):
                chain = Mux(u1[bit], 15 - bit, chain)
            m.d.comb += e.eq(chain)
            shifted = Signal(UNIFORM_WIDTH + 15, name=f"norm{i}")
            m.d.comb += shifted.eq(u1 << e)
            mant = shifted[15 - M:15]
            r_mem = memory.Memory(shape=unsigned(15), depth=16 << M, init=r_t)
            c_mem = memory.Memory(shape=signed(BM_TF + 2), depth=1 << B, init=c_t)
            s_mem = memory.Memory(shape=signed(BM_TF + 2), depth=1 << B, init=s_t)
            m.submodules[f"r_rom{i}"] = r_mem
            m.submodules[f"cos_rom{i}"] = c_mem
            m.submodules[f"sin_rom{i}"] = s_mem
            rp, cp, sp = (mem.read_port(domain="sync") for mem in (r_mem, c_mem, s_mem))
            angle = u2[UNIFORM_WIDTH - B:]
            m.d.comb += [rp.addr.eq(Cat(mant, e)), cp.addr.eq(angle), sp.addr.eq(angle),
                         rp.en.eq(adv), cp.en.eq(adv), sp.en.eq(adv)]
            pc = Signal(signed(32), name=f"pcos{i}")
            ps = Signal(signed(32), name=f"psin{i}")
            with m.If(adv):
                r_s = Cat(rp.data, Const(0, 1)).as_signed()      # unsigned radius, 16-bit signed
                m.d.sync += [pc.eq(r_s * cp.data), ps.eq(r_s * sp.data)]
            for j, p in ((2 * i, pc), (2 * i + 1, ps)):
                rounded = Signal(signed(33 - sh + 1), name=f"rnd{j}")
                m.d.comb += rounded.eq((p + (1 << (sh - 1))) >> sh)
                z = Signal(signed(cfg.z_bits), name=f"z{j}")
                _saturate(m, rounded, cfg.z_bits, z)
                with m.If(adv):
                    m.d.sync += self.o.payload[j].eq(z)
        return m


def make_gauss(config):
    """The baseline component for a :class:`~pezo.sim.gauss.GaussConfig`."""
    if not isinstance(config, GaussConfig):
        raise TypeError(f"Configuration must be a GaussConfig, not {config!r}")
    return CLTGenerator(config) if config.kind == "clt" else BoxMullerGenerator(config)
