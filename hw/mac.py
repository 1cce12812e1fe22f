"""The fixed-point perturbation MAC: m lanes of w +/- round(coef * z), saturating."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.config import EngineConfig
from pezo.fixed import hw_rshift_round_even, hw_saturate

__all__ = ["MacOp", "PerturbMAC", "mac_input_layout"]


class MacOp(enum.Enum, shape=2):
    PLUS = 0     # w + p
    MINUS2 = 1   # w - 2p
    UPDATE = 2   # w + round(c * z)


def mac_input_layout(cfg):
    g = cfg.generator
    fields = {"w": data.ArrayLayout(signed(cfg.w_bits), cfg.lanes),
              "z": data.ArrayLayout(signed(g.z_bits), cfg.lanes)}
    if cfg.stochastic and cfg.product_shift > 0:
        fields["r"] = data.ArrayLayout(unsigned(cfg.product_shift), cfg.lanes)
    return data.StructLayout(fields)


class PerturbMAC(wiring.Component):
    """m-lane MAC, bit-exact with :func:`pezo.sim.mac.mac`.

    Stage 1 registers coef * z per lane (one multiplier each: an SB_MAC16 on iCE40 UP5K when the
    operands fit 16 x 16, LUT logic elsewhere, whatever yosys infers from ``*``). Stage 2 rounds
    (half to even, or stochastic with the ``r`` bits). Stage 3 adds p, -2p (p shifted, not
    re-rounded) or u, and saturates to the weight format. The stages stall together
    (``i.ready`` = ``~o.valid | o.ready``); the sticky ``saturated`` flag rises one cycle after
    the saturating value leaves.

    Parameters
    ----------
    config : EngineConfig

    Members
    -------
    i : In(stream.Signature(StructLayout({"w", "z"[, "r"]})))
        Weights, perturbations and (stochastic configurations) rounding bits.
    o : Out(stream.Signature(ArrayLayout(signed(b), m)))
        New weights.
    op : In(MacOp), coef : In(signed(coef_bits)), stochastic : In(1)
        Operation, coefficient (mu or c) and rounding mode; hold them constant while the MAC holds
        data.
    saturated : Out(1), sat_clear : In(1)
        Sticky saturation flag.
    """

    def __init__(self, config):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"Configuration must be an EngineConfig, not {config!r}")
        self._cfg = cfg = config
        super().__init__({
            "i": In(stream.Signature(mac_input_layout(cfg))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(cfg.w_bits), cfg.lanes))),
            "op": In(MacOp),
            "coef": In(signed(cfg.coef_bits)),
            "stochastic": In(1),
            "saturated": Out(1),
            "sat_clear": In(1),
        })

    config = property(lambda self: self._cfg)
    latency = property(lambda self: 3, doc="Three register stages: 3 cycles.")

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        S = cfg.product_shift
        has_r = "r" in dict(mac_input_layout(cfg).members)
        pw = cfg.coef_bits + cfg.generator.z_bits

        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)

        # Stage 1: products.
        v1 = Signal()
        prods = [Signal(signed(pw), name=f"prod{l}") for l in range(cfg.lanes)]
        w1 = Signal(data.ArrayLayout(signed(cfg.w_bits), cfg.lanes))
        r1 = Signal(data.ArrayLayout(unsigned(S), cfg.lanes)) if has_r else None
        with m.If(advance):
            m.d.sync += [v1.eq(self.i.valid), w1.eq(self.i.payload.w)]
            if has_r:
                m.d.sync += r1.eq(self.i.payload.r)
            for l in range(cfg.lanes):
                m.d.sync += prods[l].eq(self.coef * self.i.payload.z[l])

        # Stage 2: round (half to even, or stochastic) -> register.
        v2 = Signal()
        w2 = Signal(data.ArrayLayout(signed(cfg.w_bits), cfg.lanes))
        qw = pw - max(S, 0) + 1
        q2 = [Signal(signed(max(qw, 2) - min(S, 0)), name=f"q{l}") for l in range(cfg.lanes)]
        with m.If(advance):
            m.d.sync += [v2.eq(v1), w2.eq(w1)]
            for l in range(cfg.lanes):
                nearest = hw_rshift_round_even(prods[l], S)
                if has_r:
                    stoch = (prods[l] + Cat(r1[l], Const(0, 1)).as_signed()) >> S
                    q = Mux((self.op == MacOp.UPDATE) & self.stochastic, stoch, nearest)
                else:
                    q = nearest
                m.d.sync += q2[l].eq(q)

        # Stage 3: add p, -2p (p shifted, not re-rounded) or u; saturate -> register.
        over = []
        results = []
        for l in range(cfg.lanes):
            total = Signal(signed(max(len(q2[l]) + 1, cfg.w_bits) + 2), name=f"sum{l}")
            with m.Switch(self.op):
                with m.Case(MacOp.MINUS2):
                    m.d.comb += total.eq(w2[l] - (q2[l] << 1))
                with m.Default():
                    m.d.comb += total.eq(w2[l] + q2[l])
            z, o = hw_saturate(total, cfg.w_bits)
            results.append(z)
            over.append(o)
        over3 = Signal()
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(v2), over3.eq(v2 & Cat(*over).any())]
            for l in range(cfg.lanes):
                m.d.sync += self.o.payload[l].eq(results[l])
        # The sticky flag follows one cycle after the value that saturated (a registered OR, off
        # the datapath's critical path).
        with m.If(self.sat_clear):
            m.d.sync += [self.saturated.eq(0), over3.eq(0)]
        with m.Elif(over3):
            m.d.sync += self.saturated.eq(1)
        return m
