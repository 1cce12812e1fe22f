"""The streamed-weights datapath (ZO2-style): a deferred update and three perturbations per word.

:class:`StreamMAC` is the datapath of the ``STREAM`` command of an engine built with
``weights="stream"`` (:mod:`pezo.sim.engine` defines the command): a word of weights arrives
from the host with z of the update generator (the previous step's perturbation, replayed) and z
of the perturbation generator (this step's), and leaves as the updated word w0 = w + u and the
three perturbed words w1 = w0 + p, w2 = w1 - 2p, w3 = w2 + p, every sum saturating, every
rounding that of :func:`pezo.sim.mac.mac` (u = round(c * zu), half to even or stochastic; p =
round_half_even(mu * z), -2p a shift of p). Two multipliers per lane (c * zu, mu * z); the three
perturbation sums share one p.
"""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.config import EngineConfig
from pezo.hw.mac import addend_width, mac_input_layout, rounding_parts, saturating_add

__all__ = ["StreamMAC", "STREAM_MAC_LATENCY", "stream_input_layout", "stream_output_layout"]

#: Register stages of :class:`StreamMAC`: products, rounding parts, u and p, then one stage per
#: saturating sum (w0, w1, w2, w3).
STREAM_MAC_LATENCY = 7


def stream_input_layout(cfg):
    g = cfg.generator
    zrow = data.ArrayLayout(signed(g.z_bits), cfg.lanes)
    fields = {"w": data.ArrayLayout(signed(cfg.w_bits), cfg.lanes), "zu": zrow, "z": zrow}
    if "r" in dict(mac_input_layout(cfg).members):
        fields["r"] = data.ArrayLayout(unsigned(cfg.product_shift), cfg.lanes)
    return data.StructLayout(fields)


def stream_output_layout(cfg):
    row = data.ArrayLayout(signed(cfg.w_bits), cfg.lanes)
    return data.StructLayout({"w0": row, "w1": row, "w2": row, "w3": row})


class StreamMAC(wiring.Component):
    """m lanes of the STREAM computation, bit-exact with :meth:`pezo.sim.engine.EngineModel`'s
    STREAM. All stages stall together (``i.ready`` = ``~o.valid | o.ready``).

    Parameters
    ----------
    config : EngineConfig

    Members
    -------
    i : In(stream.Signature(StructLayout({"w", "zu", "z"[, "r"]})))
        A word, z of the update generator, z of the perturbation generator, rounding bits.
    o : Out(stream.Signature(StructLayout({"w0", "w1", "w2", "w3"})))
        The updated word and the three perturbed words.
    coef : In(signed(coef_bits)), mu : In(signed(coef_bits)), stochastic : In(1)
        The pending update's c, mu and the update's rounding mode (constant during a STREAM).
    update_only : In(1)
        Only w0 is used: saturation of w1-w3 is not recorded (z is then not driven).
    saturated : Out(1), sat_clear : In(1)
        Sticky saturation flag (rises one cycle after the saturating word leaves).
    """

    def __init__(self, config):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"Configuration must be an EngineConfig, not {config!r}")
        self._cfg = cfg = config
        super().__init__({
            "i": In(stream.Signature(stream_input_layout(cfg))),
            "o": Out(stream.Signature(stream_output_layout(cfg))),
            "coef": In(signed(cfg.coef_bits)),
            "mu": In(signed(cfg.coef_bits)),
            "stochastic": In(1),
            "update_only": In(1),
            "saturated": Out(1),
            "sat_clear": In(1),
        })

    config = property(lambda self: self._cfg)
    latency = property(lambda self: STREAM_MAC_LATENCY, doc="Seven register stages.")

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        S, L = cfg.product_shift, cfg.lanes
        has_r = "r" in dict(stream_input_layout(cfg).members)
        pw = cfg.coef_bits + cfg.generator.z_bits
        aw = addend_width(cfg)
        row = data.ArrayLayout(signed(cfg.w_bits), L)
        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)

        def regs(name, shape=signed(aw)):
            return [Signal(shape, name=f"{name}{l}") for l in range(L)]

        v1, v2, v3, v4, v5, v6 = (Signal(name=f"v{k}") for k in range(1, 7))
        w_1, w_2, w_3 = (Signal(row, name=f"w_s{k}") for k in (1, 2, 3))
        r_1 = Signal(data.ArrayLayout(unsigned(S), L), name="r_s1") if has_r else None
        pu, pp = regs("prod_u", signed(pw)), regs("prod_p", signed(pw))
        fu, iu, fp, ip = regs("floor_u"), regs("inc_u", 1), regs("floor_p"), regs("inc_p", 1)
        u3, p3 = regs("u"), regs("p")
        p4, p5, p6 = regs("p_s4"), regs("p_s5"), regs("p_s6")
        a4 = Signal(row, name="w0_s4")                    # w0
        a5, b5 = Signal(row, name="w0_s5"), Signal(row, name="w1_s5")
        a6, b6, c6 = (Signal(row, name=f"w{k}_s6") for k in range(3))
        perturb_sat = ~self.update_only
        sat_events = []

        def sums(dst, src, add, minus, k, when):
            """dst[l] <= saturate(src[l] + add[l]) (or - 2 add[l]); a saturation at this
            stage (``when``: the stage's input is valid and counts) sets the sticky flag."""
            over = []
            for l in range(L):
                a = ~(add[l] << 1) if minus else add[l]
                res, o = saturating_add(m, src[l], a, minus, cfg.w_bits, f"sum{k}_{l}")
                m.d.sync += dst[l].eq(res)
                over.append(o)
            any_over = Signal(name=f"over{k}")
            m.d.comb += any_over.eq(when & _any(over))
            sat_events.append(any_over)

        with m.If(advance):
            # 1: products (and the word, the rounding bits)
            m.d.sync += [v1.eq(self.i.valid), w_1.eq(self.i.payload.w)]
            if has_r:
                m.d.sync += r_1.eq(self.i.payload.r)
            for l in range(L):
                m.d.sync += [pu[l].eq(self.coef * self.i.payload.zu[l]),
                             pp[l].eq(self.mu * self.i.payload.z[l])]
            # 2: rounding parts (u: half to even or stochastic; p: half to even)
            m.d.sync += [v2.eq(v1), w_2.eq(w_1)]
            for l in range(L):
                f, i = rounding_parts(m, pu[l], S, pw, f"u{l}", r_1[l] if has_r else None,
                                      self.stochastic if has_r else 0)
                m.d.sync += [fu[l].eq(f), iu[l].eq(i)]
                f, i = rounding_parts(m, pp[l], S, pw, f"p{l}")
                m.d.sync += [fp[l].eq(f), ip[l].eq(i)]
            # 3: u and p
            m.d.sync += [v3.eq(v2), w_3.eq(w_2)]
            m.d.sync += [u3[l].eq(fu[l] + iu[l]) for l in range(L)]
            m.d.sync += [p3[l].eq(fp[l] + ip[l]) for l in range(L)]
            # 4: w0 = w + u
            m.d.sync += [v4.eq(v3)] + [p4[l].eq(p3[l]) for l in range(L)]
            sums(a4, w_3, u3, False, 0, v3)
            # 5: w1 = w0 + p
            m.d.sync += [v5.eq(v4), a5.eq(a4)] + [p5[l].eq(p4[l]) for l in range(L)]
            sums(b5, a4, p4, False, 1, v4 & perturb_sat)
            # 6: w2 = w1 - 2p (p shifted, never re-rounded)
            m.d.sync += [v6.eq(v5), a6.eq(a5), b6.eq(b5)] + [p6[l].eq(p5[l]) for l in range(L)]
            sums(c6, b5, p5, True, 2, v5 & perturb_sat)
            # 7: w3 = w2 + p; the four words leave together
            m.d.sync += [self.o.valid.eq(v6), self.o.payload.w0.eq(a6),
                         self.o.payload.w1.eq(b6), self.o.payload.w2.eq(c6)]
            sums(self.o.payload.w3, c6, p6, False, 3, v6 & perturb_sat)
            with m.If(_any(sat_events)):
                m.d.sync += self.saturated.eq(1)
        with m.If(self.sat_clear):
            m.d.sync += self.saturated.eq(0)
        return m


def _any(bits):
    out = bits[0]
    for b in bits[1:]:
        out = out | b
    return out
