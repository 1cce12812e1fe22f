"""The fixed-point perturbation MAC: m lanes of w +/- round(coef * z), saturating."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.config import EngineConfig
from pezo.fixed import hw_saturate

__all__ = ["MacOp", "PerturbMAC", "mac_input_layout", "MAC_LATENCY", "rounding_parts",
           "saturating_add", "addend_width"]

#: Register stages of :class:`PerturbMAC` (cycles from input to output without stalls).
MAC_LATENCY = 4


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


def addend_width(cfg) -> int:
    """Bits of a rounded product (p, u) and of the -2p addend, with room for the carry."""
    S = cfg.product_shift
    pw = cfg.coef_bits + cfg.generator.z_bits
    qw = pw - max(S, 0) + 1
    return max(max(qw, 2) - min(S, 0) + 1, cfg.w_bits) + 1


def rounding_parts(m, p, S, pw, name, r=None, use_stoch=0):
    """The two parts of rounding the ``pw``-bit product ``p`` right by ``S`` bits, as
    expressions: (floor(p / 2^S), the half-to-even increment), or, where ``use_stoch``, the
    stochastic (p + r) >> S with increment 0 (``r``: the low S random bits; None without
    stochastic rounding). S <= 0 is an exact left shift."""
    if S <= 0:
        return p << (-S), 0
    if S >= pw:     # shift past the product: sign-extend so that the guard bit exists (#14 D1)
        pe = Signal(signed(S + 1), name=f"prod_ext{name}")
        m.d.comb += pe.eq(p)
        p = pe
    floor = p >> S
    low = p.as_unsigned()[:S]
    sticky = low[:S - 1].any() if S > 1 else 0
    inc = low[S - 1] & (sticky | floor.as_unsigned()[0])
    if r is None:
        return floor, inc
    stoch = (p + Cat(r, Const(0, 1)).as_signed()) >> S
    return Mux(use_stoch, stoch, floor), ~use_stoch & inc


def saturating_add(m, w, a, cin, w_bits, name):
    """w + a + cin in one carry chain (the carry-in rides in as an extra LSB on both operands),
    saturated to ``w_bits``: (result, overflowed) expressions."""
    wide = Signal(signed(len(a) + 2), name=name)
    m.d.comb += wide.eq(Cat(cin, w).as_signed() + Cat(cin, a).as_signed())
    return hw_saturate(wide[1:].as_signed(), w_bits)


class PerturbMAC(wiring.Component):
    """m-lane MAC, bit-exact with :func:`pezo.sim.mac.mac`.

    Stage 1 registers coef * z per lane (one multiplier each: SB_MAC16 blocks on iCE40 UP5K,
    LUT logic elsewhere, whatever yosys infers from ``*``). Stage 2 registers the rounding parts
    (floor and the half-to-even increment, or the stochastic sum with the ``r`` bits). Stage 3
    completes the rounding and forms the addend (p, u, or the complement of 2p: -2p is p
    shifted, never re-rounded). Stage 4 adds it to the weight in one carry chain and saturates
    to the weight format. The stages stall together
    (``i.ready`` = ``~o.valid | o.ready``); the sticky ``saturated`` flag rises one cycle after
    the saturating value leaves.

    Parameters
    ----------
    config : EngineConfig
    products_in_dsp : bool
        The products' registers without reset, so yosys puts them in the SB_MAC16.
    late_w : bool
        The weight comes at stage 4, on ``w_late``, instead of with ``i`` (``i.payload.w`` is
        then unused): no copies of it through stages 1-3. The source must give the weight of
        the word in stage 3 while it is there (the engine reads its memory at the address of
        the word in stage 2, two cycles after the products).
    late_r : bool
        The rounding bits come at stage 1, on ``r_late``, instead of with ``i``.

    Members
    -------
    i : In(stream.Signature(StructLayout({"w", "z"[, "r"]})))
        Weights, perturbations and (stochastic configurations) rounding bits.
    w_late : In(ArrayLayout(signed(b), m))
        With ``late_w``: the weight of the word in stage 3.
    r_late : In(ArrayLayout(unsigned(S), m))
        With ``late_r`` (stochastic configurations): the rounding bits of the word in stage 1,
        where they are used (``i.payload.r`` is then unused).
    o : Out(stream.Signature(ArrayLayout(signed(b), m)))
        New weights.
    op : In(MacOp), coef : In(signed(coef_bits)), stochastic : In(1)
        Operation, coefficient (mu or c) and rounding mode; hold them constant while the MAC holds
        data.
    saturated : Out(1), sat_clear : In(1)
        Sticky saturation flag.
    """

    def __init__(self, config, products_in_dsp=False, late_w=False, late_r=False):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"Configuration must be an EngineConfig, not {config!r}")
        self._cfg = cfg = config
        self._products_in_dsp = bool(products_in_dsp)
        self._late_w = bool(late_w)
        has_r = "r" in dict(mac_input_layout(cfg).members)
        self._late_r = bool(late_r) and has_r
        members = {"w_late": In(data.ArrayLayout(signed(cfg.w_bits), cfg.lanes))} if late_w else {}
        if self._late_r:
            members["r_late"] = In(data.ArrayLayout(unsigned(cfg.product_shift), cfg.lanes))
        super().__init__({
            **members,
            "i": In(stream.Signature(mac_input_layout(cfg))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(cfg.w_bits), cfg.lanes))),
            "op": In(MacOp),
            "coef": In(signed(cfg.coef_bits)),
            "stochastic": In(1),
            "saturated": Out(1),
            "sat_clear": In(1),
        })

    config = property(lambda self: self._cfg)
    latency = property(lambda self: MAC_LATENCY, doc="Four register stages: 4 cycles.")

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
        # products_in_dsp: no reset (the valid flag v1 qualifies them), so yosys takes them into
        # the SB_MAC16's output registers: fewer cells, a slower register (the training design)
        prods = [Signal(signed(pw), name=f"prod{l}", reset_less=self._products_in_dsp)
                 for l in range(cfg.lanes)]
        # late_w: the weight is not carried through stages 1-3 but given at stage 4 on
        # ``w_late`` (the engine reads it from its memory then, two cycles after the products)
        late = self._late_w
        w1 = Signal(data.ArrayLayout(signed(cfg.w_bits), cfg.lanes))
        r1 = Signal(data.ArrayLayout(unsigned(S), cfg.lanes)) if has_r else None
        with m.If(advance):
            m.d.sync += v1.eq(self.i.valid)
            if not late:
                m.d.sync += w1.eq(self.i.payload.w)
            if has_r and not self._late_r:
                m.d.sync += r1.eq(self.i.payload.r)
            for l in range(cfg.lanes):
                m.d.sync += prods[l].eq(self.coef * self.i.payload.z[l])

        # Stage 2: rounding parts -> registers: floor(prod / 2^S) and the half-to-even increment
        # (guard and sticky bits: LUT logic only), or the stochastic sum (prod + r) / 2^S.
        v2 = Signal()
        w2 = Signal(data.ArrayLayout(signed(cfg.w_bits), cfg.lanes))
        aw = addend_width(cfg)
        minus = self.op == MacOp.MINUS2
        use_stoch = (self.op == MacOp.UPDATE) & self.stochastic if has_r else 0
        qf2 = [Signal(signed(aw), name=f"qfloor{l}") for l in range(cfg.lanes)]
        inc2 = [Signal(name=f"inc{l}") for l in range(cfg.lanes)]
        with m.If(advance):
            m.d.sync += v2.eq(v1)
            if not late:
                m.d.sync += w2.eq(w1)
            for l in range(cfg.lanes):
                floor, inc = rounding_parts(m, prods[l], S, pw, f"{l}",
                                            (self.r_late[l] if self._late_r else r1[l]) if has_r
                                            else None, use_stoch)
                m.d.sync += [qf2[l].eq(floor), inc2[l].eq(inc)]

        # Stage 3: q = floor + increment; register the addend of stage 4: q, or ~(q << 1) with a
        # carry-in of 1 for -2q (p shifted, never re-rounded; no second adder).
        v3 = Signal()
        w3 = Signal(data.ArrayLayout(signed(cfg.w_bits), cfg.lanes))
        a3 = [Signal(signed(aw), name=f"addend{l}") for l in range(cfg.lanes)]
        cin3 = Signal()
        with m.If(advance):
            m.d.sync += [v3.eq(v2), cin3.eq(minus)]
            if not late:
                m.d.sync += w3.eq(w2)
            for l in range(cfg.lanes):
                q = Signal(signed(aw), name=f"q{l}")
                m.d.comb += q.eq(qf2[l] + inc2[l])
                m.d.sync += a3[l].eq(Mux(minus, ~(q << 1), q))

        # Stage 4: w + addend + carry-in (one carry chain: the carry-in rides in as an extra LSB
        # on both operands); saturate -> register.
        over = []
        results = []
        for l in range(cfg.lanes):
            w = self.w_late[l] if late else w3[l]
            z, o = saturating_add(m, w, a3[l], cin3, cfg.w_bits, f"sum_x{l}")
            results.append(z)
            over.append(o)
        # Per-lane saturation bits are registered with the results (the OR over the lanes comes
        # after the register, off the adders' path); the sticky flag follows one cycle after
        # the value that saturated.
        over4 = Signal(cfg.lanes)
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(v3), over4.eq(Cat(v3 & o for o in over))]
            for l in range(cfg.lanes):
                m.d.sync += self.o.payload[l].eq(results[l])
        with m.If(self.sat_clear):
            m.d.sync += [self.saturated.eq(0), over4.eq(0)]
        with m.Elif(over4.any()):
            m.d.sync += self.saturated.eq(1)
        return m
