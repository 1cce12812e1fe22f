"""The on-chip trainer's minibatch sampler: step seeds and sample indices from its own LFSR
(golden model :class:`pezo.sim.ontrain.Sampler`; definition in docs/on_device.md, section 2)."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.config import GeneratorConfig
from pezo.hw.common import one_hot_states
from pezo.hw.lfsr import UniformBank
from pezo.sim.ontrain import SAMPLER_K, SAMPLER_R, SAMPLER_TWEAK, SEED_BITS
from pezo.sim.seeding import domain_tweak

__all__ = ["SamplerUnit", "sampler_config"]

MAX_N_BITS = 16
_BYTE = 8


def sampler_config() -> GeneratorConfig:
    """The sampler bank's configuration (the golden Sampler's): one 8-bit lane of a k = 64 LFSR,
    32-bit seeds."""
    return GeneratorConfig(lanes=1, width=_BYTE, state_bits=SAMPLER_K, seed_width=SEED_BITS)


class SamplerUnit(wiring.Component):
    """Step seeds and minibatch indices, bit-exact with :class:`pezo.sim.ontrain.Sampler`.

    The bit stream x_0, x_1, ... is the byte stream of a :class:`pezo.hw.lfsr.UniformBank`
    (:func:`sampler_config`, seed domain ``"sampler"``, whose tweak is
    :data:`pezo.sim.ontrain.SAMPLER_TWEAK`), each byte LSB first. Requests consume it in fields,
    LSB = lowest stream index, in the order they are accepted: a step-seed request the next 32
    bits, an index request the next 24 bits r, answered with idx = (r * N) >> 24. Both field
    widths are whole bytes, so a request takes exactly 4 or 3 bytes from the bank, and only
    while it fetches them (no byte is lost or skipped, whatever the stalls). The golden model's
    step is one seed request then B index requests; any other order is served the same way.

    The product is a serial shift-add over the n_bits bits of N (LSB first): a 24-bit partial
    sum plus r or 0 (chosen a cycle ahead, so the 25-bit carry chain runs from flip-flops to
    flip-flops) per cycle, the sum's lowest bit shifted out (those bits lie below 2^24 and are
    dropped by the definition). One request is in flight at a time.

    Cycles, with ``req.valid`` and ``o.ready`` high and the bank not loading: a seed request is
    accepted every :attr:`seed_cycles` = 6 cycles (1 accept, 4 bytes, 1 answer), an index
    request every :attr:`index_cycles` = n_bits + 5 (1 accept, 3 bytes, n_bits multiply, 1
    answer); 21 for n_bits = 16. The answer is on ``o`` :attr:`seed_latency` = 5 and
    :attr:`index_latency` = n_bits + 4 cycles after the accepting edge.

    Parameters
    ----------
    n_bits : int
        Width of the split size N, 1..16.

    Members
    -------
    seed : In(32)
        Run seed (sampled in the cycle of ``seed_load``).
    seed_load : In(1)
        One-cycle pulse: load ``seed`` into the bank and restart the stream at x_0 of the new
        seed. A request accepted but not yet answered, or an answer not yet taken, is dropped;
        no request is accepted in that cycle. Reset leaves the unit as after a load of seed 0.
    busy : Out(1)
        The bank is mixing the seed (from the cycle after ``seed_load``, for
        :attr:`load_cycles` cycles); no request is accepted meanwhile.
    n : In(n_bits)
        The split size N, 1 <= N < 2^n_bits; sampled as an index request's last byte arrives
        (hold it while requests are served).
    req : In(stream.Signature(1))
        What to produce next: 1 = a step seed, 0 = an index. Accepted (``ready``) when the unit
        is idle: not busy, no request in flight, no answer waiting.
    o : Out(stream.Signature(32))
        The step seed, or the index zero-extended. ``valid`` is held until the answer is taken;
        the next request is accepted in the cycle after.

    Raises
    ------
    TypeError
        If ``n_bits`` is not an integer.
    ValueError
        If ``n_bits`` is outside 1..16.
    """

    def __init__(self, n_bits: int = MAX_N_BITS):
        if isinstance(n_bits, bool) or not isinstance(n_bits, int):
            raise TypeError(f"Split size width (n_bits) must be an integer, not {n_bits!r}")
        if not 1 <= n_bits <= MAX_N_BITS:
            raise ValueError(f"Split size width (n_bits) must be in 1..{MAX_N_BITS}, "
                             f"not {n_bits!r}")
        self._n_bits = n_bits
        self._bank = UniformBank(sampler_config(), domain="sampler")
        super().__init__({
            "seed": In(SEED_BITS),
            "seed_load": In(1),
            "busy": Out(1),
            "n": In(n_bits),
            "req": In(stream.Signature(1)),
            "o": Out(stream.Signature(SEED_BITS)),
        })

    n_bits = property(lambda self: self._n_bits)
    seed_cycles = property(lambda self: 2 + SEED_BITS // _BYTE,
                           doc="Cycles between seed requests accepted back to back.")
    index_cycles = property(lambda self: 2 + SAMPLER_R // _BYTE + self._n_bits,
                            doc="Cycles between index requests accepted back to back.")
    seed_latency = property(lambda self: self.seed_cycles - 1,
                            doc="Cycles from a seed request's accepting edge to ``o.valid``.")
    index_latency = property(lambda self: self.index_cycles - 1,
                             doc="Cycles from an index request's accepting edge to ``o.valid``.")
    load_cycles = property(lambda self: self._bank.latency - 1,
                           doc="Cycles ``busy`` is high after a ``seed_load``.")

    def elaborate(self, platform):
        m = Module()
        nb, R = self._n_bits, SAMPLER_R
        assert domain_tweak("sampler", SEED_BITS) == SAMPLER_TWEAK    # the golden model's domain
        assert SEED_BITS % _BYTE == 0 and R % _BYTE == 0      # fields are whole bytes
        m.submodules.bank = bank = self._bank
        byte = bank.o.payload[0]

        st, goto = one_hot_states(m, ("IDLE", "FETCH", "MUL", "OUT"), "IDLE")
        acc = Signal(SEED_BITS)     # bytes shift in from the top: the field, then the answer
        kind = Signal()             # 1 = step seed
        cnt = Signal(range(max(SEED_BITS // _BYTE, nb)))   # bytes, then multiply steps, left - 1
        part = Signal(R)            # top R bits of the partial product r * N[0..i]
        add = Signal(R)             # r * N[i], registered: the carry chain starts at flip-flops
        nsh = Signal(nb)            # N >> (i + 1) in multiply step i
        r = acc[SEED_BITS - R:]
        total = Signal(R + 1)

        m.d.comb += [
            bank.seed.eq(self.seed), bank.seed_load.eq(self.seed_load),
            self.busy.eq(bank.loading),
            self.req.ready.eq(st["IDLE"] & ~bank.loading & ~self.seed_load),
            bank.o.ready.eq(st["FETCH"]),
            self.o.valid.eq(st["OUT"]),
            self.o.payload.eq(acc),
            total.eq(part + add),
        ]
        with m.If(st["IDLE"] & self.req.valid & self.req.ready):
            m.d.sync += [kind.eq(self.req.payload),
                         cnt.eq(Mux(self.req.payload, SEED_BITS // _BYTE - 1, R // _BYTE - 1))]
            goto("IDLE", "FETCH")
        with m.If(st["FETCH"] & bank.o.valid):
            m.d.sync += [acc.eq(Cat(acc[_BYTE:], byte)), cnt.eq(cnt - 1)]
            with m.If(cnt == 0):
                r_in = Cat(acc[SEED_BITS - R + _BYTE:], byte)      # r, with this byte
                m.d.sync += [part.eq(0), add.eq(Mux(self.n[0], r_in, 0)), nsh.eq(self.n >> 1),
                             cnt.eq(nb - 1)]
                with m.If(kind):
                    goto("FETCH", "OUT")
                with m.Else():
                    goto("FETCH", "MUL")
        with m.If(st["MUL"]):
            m.d.sync += [part.eq(total[1:]), add.eq(Mux(nsh[0], r, 0)), nsh.eq(nsh >> 1),
                         cnt.eq(cnt - 1)]
            with m.If(cnt == 0):
                # The last step's sum, shifted, is (r * N) >> (24 - n_bits): its top n_bits.
                m.d.sync += acc.eq(total[R + 1 - nb:])
                goto("MUL", "OUT")
        with m.If(st["OUT"] & self.o.ready):
            goto("OUT", "IDLE")
        with m.If(self.seed_load):
            m.d.sync += [s.eq(name == "IDLE") for name, s in st.items()]
        return m
