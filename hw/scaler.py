"""The adaptive scaler: uniform integers u -> fixed-point z = alpha * u, multiplier-free."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.fixed import hw_rshift_round_even, hw_saturate
from pezo.hw.common import check_config
from pezo.sim import scaler as model
from pezo.sim.scaler import scale_register_bits   # the register is defined by the model

__all__ = ["Scaler", "scale_register_bits", "scaler_latency"]


def scaler_latency(cfg) -> int:
    """:attr:`Scaler.latency` of a configuration (no component needed)."""
    return 3 if cfg.scale == "fixed" else 2


class Scaler(wiring.Component):
    """z = saturate(round_half_even(sum_i s_i * u * 2^(T - t_i) / 2^(T - z_frac))), per lane.

    The definition (digits, window T, rounding, register layout) is :mod:`pezo.sim.scaler`'s.
    ``runtime`` scale: each digit is a shifted, optionally negated copy of u selected by the
    ``scale`` input (a barrel shifter per digit and lane); ``fixed`` scale: constant shifts, so the
    block is an adder tree only. Register stages with backpressure: u, then u with its digit
    sum (recomputed once after a ``scale`` change); rounding and saturation follow at the
    output (``runtime``) or rounding in a third stage (``fixed``).

    Parameters
    ----------
    config : GeneratorConfig
    digits : list of (sign, exponent), optional
        The constants of a ``fixed`` scale (default: :func:`pezo.sim.scaler.default_digits`).
    out_skid : bool
        (``fixed`` scale) Add an output skid slot so that ``o.ready`` does not drive the stage
        enables (for timing inside the engine; same latency and values, one more held
        number). Ignored for a ``runtime`` scale, whose output stage is recomputed on a scale
        change.
    in_skid : bool
        Stage A's skid slot (default): ``i.ready`` is a register, so the ready chain from the
        consumer ends here. Without it (the training design's lean engine, built for area)
        ``i.ready`` is the stages' advance, combinational from ``o.ready``; same values and
        latency, one number fewer held.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(signed(width), out_lanes)))
    o : Out(stream.Signature(ArrayLayout(signed(z_int + z_frac), out_lanes)))
    scale : In(scale_register_bits)  (``runtime`` only)
        The digits; they apply to every value not yet transferred.
    flush : In(1)
        Drop the numbers held in the stages (used on seed load / rewind).
    scale_changed : In(1)
        Pulse in the cycle ``scale`` changes: the output is invalid in the next cycle while the
        held value is rescaled.
    held : Out(range(6))
        Numbers held in the stages (for the pool offset the generator reports).
    saturated : Out(1)
        Sticky: some output saturated since reset or ``sat_clear`` (it rises one cycle after
        the saturated number leaves).
    sat_clear : In(1)
    """

    def __init__(self, config, *, digits=None, out_skid=False, in_skid=True):
        self._cfg = cfg = check_config(config)
        if not isinstance(out_skid, bool):
            raise TypeError(f"out_skid must be a bool, not {out_skid!r}")
        if not isinstance(in_skid, bool):
            raise TypeError(f"in_skid must be a bool, not {in_skid!r}")
        self._in_skid = in_skid
        self._out_skid = out_skid and cfg.scale == "fixed"
        if digits is not None and cfg.scale != "fixed":
            raise ValueError("Constant digits apply only to a 'fixed' scale")
        self._digits = list(model.default_digits(cfg) if digits is None else digits)
        ports = {
            "i": In(stream.Signature(data.ArrayLayout(signed(cfg.width), cfg.out_lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(cfg.z_bits), cfg.out_lanes))),
            "flush": In(1),
            "scale_changed": In(1),
            "held": Out(range(6)),
            "saturated": Out(1),
            "sat_clear": In(1),
        }
        if cfg.scale == "runtime":
            ports["scale"] = In(scale_register_bits(cfg),
                                init=model.encode_scale(self._digits, cfg))
        super().__init__(ports)

    config = property(lambda self: self._cfg)
    digits = property(lambda self: list(self._digits))
    @property
    def latency(self):
        """Register stages: 3 for a ``fixed`` scale (u, digit sum, rounded z), 2 for ``runtime``."""
        return scaler_latency(self._cfg)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        T = model.top_exponent(cfg, self._digits)
        E = cfg.scale_shift_bits
        shift = T - cfg.z_frac
        # Two stages. A holds u as it arrived (with a skid slot); B holds u and the CSD sum of its digits
        # (registered: the adders are off the output path), rounding and saturation follow at
        # the output. B's sum is recomputed every cycle it is not reloaded, so after a scale
        # change (``scale_changed``) the output is invalid for exactly one cycle and then carries
        # the new scale: a scale change applies to every value not yet transferred, and only
        # transferred values can raise the saturation flag (as in the golden model).
        ua = Signal(data.ArrayLayout(signed(cfg.width), cfg.out_lanes))
        ub = Signal(data.ArrayLayout(signed(cfg.width), cfg.out_lanes))
        va, vb, stale = Signal(), Signal(), Signal()
        us = Signal(data.ArrayLayout(signed(cfg.width), cfg.out_lanes))
        vs = Signal()
        # A ``fixed`` scale never changes, so a third stage C registers the rounded z (only the
        # saturation is left at the output); a ``runtime`` scale rounds at the output.
        piped = cfg.scale == "fixed"
        vc = Signal()
        # ``out_skid`` (``fixed`` scale): an output skid slot K behind C. The stages advance while
        # K is empty (a register), so ``o.ready`` drives only K's flag and the saturation flag,
        # not the enables of every stage (the consumer's ready was the engine's critical path).
        skid = self._out_skid
        vk = Signal()
        out_valid = (vc | vk) if skid else vc if piped else vb & ~stale
        m.d.comb += [self.o.valid.eq(out_valid), self.held.eq(va + vb + vc + vs + vk)]
        # The stages advance together (one enable, no ready chain through the stages): whenever
        # the output is empty or taken, and not in the cycle after a scale change.
        if skid:
            advance = ~vk
        elif piped:
            advance = ~vc | self.o.ready
        else:
            advance = (~vb | self.o.ready) & ~stale
        take_c = take_b = load_a = advance
        # A is a skid buffer: ``i.ready`` is a register (the skid slot is empty), so the ready
        # chain from the consumer ends here instead of running on into the pool or bank.
        # Without the slot A loads whenever the stages advance, which is ``i.ready``.
        m.d.comb += self.i.ready.eq(~vs if self._in_skid else load_a)
        m.d.sync += stale.eq(self.scale_changed)
        with m.If(self.flush):
            m.d.sync += [va.eq(0), vb.eq(0), vs.eq(0)]
        with m.Else():
            with m.If(load_a):
                with m.If(vs):
                    m.d.sync += [va.eq(1), ua.eq(us), vs.eq(0)]
                with m.Else():
                    m.d.sync += [va.eq(self.i.valid), ua.eq(self.i.payload)]
            if self._in_skid:
                with m.Elif(self.i.valid & ~vs):
                    m.d.sync += vs.eq(1)
            with m.If(take_b):
                m.d.sync += [vb.eq(va), ub.eq(ua)]
        if self._in_skid:
            with m.If(~vs):     # the skid slot's data follows the input while it is empty
                m.d.sync += us.eq(self.i.payload)
        # The digit sum is of A's u when B reloads, of B's own u in the cycle after a scale
        # change (B does not reload then); the select is a register, off the adders' path.
        src = Signal(data.ArrayLayout(signed(cfg.width), cfg.out_lanes))
        m.d.comb += src.eq(Mux(stale, ub, ua))
        acc_en = take_b | stale

        sat_any = []
        for lane in range(cfg.out_lanes):
            u = src[lane]
            terms = []
            if cfg.scale == "runtime":
                R = (1 << E) - 1
                for d in range(cfg.scale_digits):
                    field = self.scale[d * (E + 2):(d + 1) * (E + 2)]
                    en, neg, sh = field[0], field[1], field[2:]
                    shifted = Signal(signed(cfg.width + R), name=f"l{lane}_d{d}")
                    m.d.comb += shifted.eq(u << (sh ^ R))         # u * 2^(T - t_min - sh)
                    terms.append(Mux(en, Mux(neg, -shifted, shifted), 0))
            else:
                for s, t in self._digits:
                    term = u << (T - t)
                    terms.append(term if s > 0 else -term)
            acc = Signal(signed(cfg.width + (T - model.t_min(cfg)) + cfg.scale_digits + 1),
                         name=f"l{lane}_acc")
            with m.If(acc_en):
                m.d.sync += acc.eq(sum(terms) if terms else Const(0))
            rounded = hw_rshift_round_even(acc, shift)
            if piped:       # stage C holds the rounded value; saturation is at the output
                rc = Signal(signed(len(rounded)), name=f"l{lane}_rounded")
                with m.If(take_c):
                    m.d.sync += rc.eq(rounded)
                rounded = rc
            z, over = hw_saturate(rounded, cfg.z_bits)
            if skid:        # K holds C's output when it is not taken
                zk = Signal(signed(cfg.z_bits), name=f"l{lane}_zk")
                ok = Signal(name=f"l{lane}_ok")
                with m.If(~vk):
                    m.d.sync += [zk.eq(z), ok.eq(over)]
                z, over = Mux(vk, zk, z), Mux(vk, ok, over)
            m.d.comb += self.o.payload[lane].eq(z)
            sat_any.append(over)
        if piped:
            with m.If(self.flush):
                m.d.sync += [vc.eq(0), vk.eq(0)]
            with m.Else():
                with m.If(take_c):
                    m.d.sync += vc.eq(vb)
                if skid:    # K fills when C's value is not taken as C moves on, empties when taken
                    m.d.sync += vk.eq(Mux(vk, ~self.o.ready, vc & ~self.o.ready))

        # The sticky flag rises one cycle after a saturated number leaves (the transfer and the
        # lanes' saturation are registered first: timing, as in the MAC); a clear drops what
        # left in its own cycle and before.
        left, out_sat = Signal(), Signal()
        m.d.sync += [left.eq(self.o.valid & self.o.ready & ~self.sat_clear),
                     out_sat.eq(Cat(*sat_any).any())]
        with m.If(self.sat_clear):
            m.d.sync += self.saturated.eq(0)
        with m.Elif(left & out_sat):
            m.d.sync += self.saturated.eq(1)
        return m
