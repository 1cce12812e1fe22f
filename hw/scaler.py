"""The adaptive scaler: uniform integers u -> fixed-point z = alpha * u, multiplier-free."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.fixed import hw_rshift_round_even, hw_saturate
from pezo.hw.common import check_config
from pezo.sim import scaler as model

__all__ = ["Scaler", "scale_register_bits"]


def scale_register_bits(cfg) -> int:
    """Bits of the runtime scale register: K digits of (en, neg, shift)."""
    return cfg.scale_digits * (cfg.scale_shift_bits + 2)


class Scaler(wiring.Component):
    """z = saturate(round_half_even(sum_i s_i * u * 2^(T - t_i) / 2^(T - z_frac))), per lane.

    The definition (digits, window T, rounding, register layout) is :mod:`pezo.sim.scaler`'s.
    ``runtime`` scale: each digit is a shifted, optionally negated copy of u selected by the
    ``scale`` input (a barrel shifter per digit and lane); ``fixed`` scale: constant shifts, so the
    block is an adder tree only. One register stage (holding u) with backpressure; z is computed
    from the held u and the current ``scale``.

    Parameters
    ----------
    config : GeneratorConfig
    digits : list of (sign, exponent), optional
        The constants of a ``fixed`` scale (default: :func:`pezo.sim.scaler.default_digits`).

    Members
    -------
    i : In(stream.Signature(ArrayLayout(signed(width), out_lanes)))
    o : Out(stream.Signature(ArrayLayout(signed(z_int + z_frac), out_lanes)))
    scale : In(scale_register_bits)  (``runtime`` only)
        The digits; they apply to every value not yet transferred.
    flush : In(1)
        Drop the number held in the stage (used on seed load / rewind).
    saturated : Out(1)
        Sticky: some output saturated since reset or ``sat_clear``.
    sat_clear : In(1)
    """

    def __init__(self, config, *, digits=None):
        self._cfg = cfg = check_config(config)
        if digits is not None and cfg.scale != "fixed":
            raise ValueError("Constant digits apply only to a 'fixed' scale")
        self._digits = list(model.default_digits(cfg) if digits is None else digits)
        ports = {
            "i": In(stream.Signature(data.ArrayLayout(signed(cfg.width), cfg.out_lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(cfg.z_bits), cfg.out_lanes))),
            "flush": In(1),
            "saturated": Out(1),
            "sat_clear": In(1),
        }
        if cfg.scale == "runtime":
            ports["scale"] = In(scale_register_bits(cfg),
                                init=model.encode_scale(self._digits, cfg))
        super().__init__(ports)

    config = property(lambda self: self._cfg)
    digits = property(lambda self: list(self._digits))
    latency = property(lambda self: 1, doc="One register stage: 1 cycle.")

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        T = model.top_exponent(cfg, self._digits)
        E = cfg.scale_shift_bits
        shift = T - cfg.z_frac
        # The stage register holds u; z is computed from it and the *current* scale, so a scale
        # change applies to every value not yet transferred, and only transferred values can
        # raise the saturation flag (as in the golden model).
        held = Signal(data.ArrayLayout(signed(cfg.width), cfg.out_lanes))
        load = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(load)
        with m.If(self.flush):
            m.d.sync += self.o.valid.eq(0)
        with m.Elif(load):
            m.d.sync += [self.o.valid.eq(self.i.valid), held.eq(self.i.payload)]

        sat_any = []
        for lane in range(cfg.out_lanes):
            u = held[lane]
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
            m.d.comb += acc.eq(sum(terms) if terms else Const(0))
            z, over = hw_saturate(hw_rshift_round_even(acc, shift), cfg.z_bits)
            m.d.comb += self.o.payload[lane].eq(z)
            sat_any.append(over)

        with m.If(self.sat_clear):
            m.d.sync += self.saturated.eq(0)
        with m.Elif(self.o.valid & self.o.ready & Cat(*sat_any).any()):
            m.d.sync += self.saturated.eq(1)
        return m
