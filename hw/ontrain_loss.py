"""The on-chip trainer's loss unit: per-sample base-2 cross-entropy and argmax of K logits
(golden model :func:`pezo.sim.ontrain.loss_table`; definition in docs/on_device.md, section 5)."""

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.sim.ontrain import MAX_CLASSES, Arith, exp_table, log_table

__all__ = ["LossUnit"]

MIN_CLASSES = 2
LABEL_BITS = 4          # y and pred: 0..15
SHIFT_CAP = 16          # e_k = EXP[..] >> min(d_k >> logit_frac, 16), as in the golden model
_COARSE = 2             # the 0..15 shift is two 4:1 mux stages: by 4 * sh[2:4], then by sh[0:2]
_TAIL = 4               # cycles from pass 2's last class to o.valid


class LossUnit(wiring.Component):
    """Loss L and argmax of one sample's K logits, bit-exact with
    :func:`pezo.sim.ontrain.loss_table` and with NumPy's ``argmax`` (the first index among equal
    maxima), for every input and every :class:`~pezo.sim.ontrain.Arith`.

    With lf = ``logit_frac``, lb = ``log_bits``, Lf = ``loss_frac`` (8, 8, 12 by default)::

        m   = max_k s_k            pred = the first k with s_k = m
        d_k = m - s_k              e_k  = EXP[d_k mod 2^lf] >> min(d_k >> lf, 16)
        S   = sum_k e_k            p    = floor(log2 S),  j = (S >> (p - lb)) mod 2^lb
        L   = min(((p - 15) << Lf) + LOG[j] + (d_y << (Lf - lf)), 2^20 - 1)

    Built for area: the sample's logits arrive one class per beat, twice (the producer replays
    them from its block-RAM queue, so the unit holds no logit), past a single 17-bit subtractor.

    * **Load** (K beats, class 0 first). The subtractor compares each logit with the running
      maximum m (strictly greater replaces it, and class 0 always does: ties keep the first
      index). The label is taken with class 0.
    * **Pass 2** (the same K logits again, in the same order) starts when the output side is
      free (the previous sample's result computed and taken, or being taken). The same
      subtractor gives d_k = m - s_k, whose low lf bits go straight to the EXP read address;
      d_y is caught on its way past. After the last class ``i.ready`` stays high and the next
      sample's load overlaps this one's tail.
    * **Tail** (4 cycles, a pipeline behind pass 2). EXP read (block RAM, synchronous port),
      the shift's zero flag (d_k >> lf >= 16) and amount registered | shift by 0, 4, 8 or 12
      (two 2:1 mux levels, zero when flagged or idle) | shift by 0..3 (two 2:1 mux levels) and
      S += e_k (the only adder, ceil(log2(K 2^15 + 1)) bits: 19, or 20 for K = 16, where
      S = 2^19 when all logits are equal) | the leading one p of S (bits 15 .. top, a priority
      mux) picks j, the lb bits below it, as the LOG read address (block RAM), p - 15
      registered | ((p - 15 + LOG[j] >> Lf) << Lf) + LOG[j] mod 2^Lf + (d_y << (Lf - lf)) over
      20 bits, saturated to 2^20 - 1 on its carry out (or d_y bits shifted past bit 19) into the
      output register.

    Every register stage has at most one carry chain (<= 20 bits with its carry out) and a
    small mux, for 48 MHz on the iCE40 UP5K. Tables: EXP (2^lf x 16 bits) and LOG (2^lb x
    12 bits by default) are :class:`~amaranth.lib.memory.Memory` ROMs initialised from
    :func:`~pezo.sim.ontrain.exp_table` and :func:`~pezo.sim.ontrain.log_table`: one EBR each.

    Cycles. With ``i.valid`` and ``o.ready`` always high a sample (2 K beats) is taken every
    :attr:`cycles_per_sample` = max(2 K, K + 5) cycles (load and pass 2; for K < 5 the tail
    sets the pace), e.g. 20 for K = 10. The result is on ``o`` :attr:`latency` = 4 cycles
    after the edge that takes the sample's last pass-2 logit.
    Backpressure works throughout: ``o.valid``, once raised, stays with its payload until
    taken, pass 2 waits for the output side, and ``i.ready`` (a registered flag) is high
    while a load or a pass 2 takes logits.

    Parameters
    ----------
    n_classes : int
        K, the number of logits per sample, 2..16.
    arith : Arith
        The formats (``logit_frac``, ``log_bits``, ``loss_frac``; ``EXP_FRAC``, ``LOSS_BITS``).

    Members
    -------
    i : In(stream.Signature(StructLayout({"s": signed(16), "y": unsigned(4)})))
        One logit (Q8.8 by default) per beat, 2 K beats per sample: its K logits in class
        order, then the same K again (pass 2; a different second round gives an unspecified
        loss). ``y`` is the sample's label, read with the first beat, 0 <= y < K (for y >= K
        the loss is unspecified; pred is still exact).
    o : Out(stream.Signature(StructLayout({"loss": unsigned(20), "pred": unsigned(4),
                                          "y": unsigned(4)})))
        The loss L (Q8.12 by default, saturated at 2^20 - 1), the argmax and the sample's label
        (so a consumer counts pred == y without a queue of labels), in input order.

    Raises
    ------
    TypeError
        If ``n_classes`` is not an integer or ``arith`` not an :class:`Arith`.
    ValueError
        If ``n_classes`` is outside 2..16.
    """

    def __init__(self, n_classes: int, arith: Arith = Arith()):
        if isinstance(n_classes, bool) or not isinstance(n_classes, int):
            raise TypeError(f"Class count (n_classes) must be an integer, not {n_classes!r}")
        if not MIN_CLASSES <= n_classes <= MAX_CLASSES:
            raise ValueError(f"Class count (n_classes) must be in {MIN_CLASSES}..{MAX_CLASSES}, "
                             f"not {n_classes!r}")
        if not isinstance(arith, Arith):
            raise TypeError(f"Arithmetic formats (arith) must be an Arith, not {arith!r}")
        self._k = n_classes
        self._arith = arith
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "s": signed(arith.LOGIT_BITS),
                "y": unsigned(LABEL_BITS)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "loss": unsigned(arith.LOSS_BITS),
                "pred": unsigned(LABEL_BITS),
                "y": unsigned(LABEL_BITS)}))),
        })

    n_classes = property(lambda self: self._k)
    arith = property(lambda self: self._arith)
    cycles_per_sample = property(lambda self: max(2 * self._k, self._k + _TAIL + 1),
                                 doc="Cycles between samples accepted back to back "
                                     "(``i.valid`` and ``o.ready`` always high).")
    latency = property(lambda self: _TAIL,
                       doc="Cycles from the edge that takes a sample's last pass-2 logit to "
                           "its ``o.valid``.")

    def elaborate(self, platform):
        m = Module()
        K, a = self._k, self._arith
        lf, lb, Lf, W = a.logit_frac, a.log_bits, a.loss_frac, a.LOSS_BITS
        SB, EF = a.LOGIT_BITS, a.EXP_FRAC
        s_bits = (K << EF).bit_length()         # S <= K 2^15 (equal when all logits are equal)
        exp, log = exp_table(a).tolist(), log_table(a).tolist()
        assert exp[0] == 1 << EF and max(exp) == exp[0]    # the max term makes S >= 2^15
        assert EF - lb >= 0 and lf + 4 < SB                 # j lies inside S; the cap test
        assert max(log) <= 1 << Lf                          # LOG[j] >> Lf is one bit

        m.submodules.exp = exp_mem = memory.Memory(
            shape=unsigned(max(exp).bit_length()), depth=len(exp), init=exp)
        m.submodules.log = log_mem = memory.Memory(
            shape=unsigned(max(log).bit_length()), depth=len(log), init=log)
        exp_rd, log_rd = exp_mem.read_port(), log_mem.read_port()

        # The load and pass 2 ----------------------------------------------------------------
        y = Signal(LABEL_BITS, reset_less=True)
        cnt = Signal(range(K))          # the class arriving (load or pass 2)
        mx = Signal(signed(SB), reset_less=True)
        arg = Signal(LABEL_BITS, reset_less=True)
        dy = Signal(SB, reset_less=True)                  # d_y = m - s_y, 0 .. 2^16 - 1
        diff = Signal(signed(SB + 1))                     # m - s_k, the one subtractor
        wait = Signal()                 # loaded, pass 2 waits for the output side
        p2 = Signal()                   # pass 2: d_k into the tail
        taking = Signal(init=1)         # the load: i.ready
        last = cnt == K - 1
        take = taking & self.i.valid
        take2 = p2 & self.i.valid       # a pass-2 beat

        # Tail ---------------------------------------------------------------------------------
        sh1, zero1, l1 = Signal(4, reset_less=True), Signal(init=1), Signal()   # EXP read
        ea, sh2, l2 = Signal(exp_rd.data.shape()), Signal(_COARSE), Signal()
        acc, t1 = Signal(s_bits), Signal()                                      # S
        pm, t2 = Signal(range(s_bits - EF), reset_less=True), Signal()          # LOG read
        # o's payload, without reset: saturation is then the flip-flops' synchronous set
        loss = Signal(W, reset_less=True)
        pred, y_out = Signal(LABEL_BITS, reset_less=True), Signal(LABEL_BITS, reset_less=True)

        # Pass 2 may start when the output side (tail and o) holds nothing, or only an output
        # being taken this cycle.
        free = Signal()
        m.d.comb += [free.eq(~(p2 | l1 | l2 | t1 | t2) & (~self.o.valid | self.o.ready)),
                     diff.eq(mx - self.i.payload.s),
                     self.i.ready.eq(taking | p2),
                     self.o.payload.loss.eq(loss), self.o.payload.pred.eq(pred),
                     self.o.payload.y.eq(y_out)]

        with m.If(take | take2):
            m.d.sync += cnt.eq(Mux(last, 0, cnt + 1))
        with m.If(take):
            # s_k > m, or class 0, which starts the scan
            with m.If(diff[SB] | (cnt == 0)):
                m.d.sync += [mx.eq(self.i.payload.s), arg.eq(cnt)]
            with m.If(cnt == 0):
                m.d.sync += y.eq(self.i.payload.y)
            with m.If(last):
                m.d.sync += [taking.eq(0), p2.eq(free), wait.eq(~free)]
        with m.If(wait & free):
            m.d.sync += [wait.eq(0), p2.eq(1)]
        with m.If(take2):
            with m.If(cnt == y):
                m.d.sync += dy.eq(diff[:SB])
            with m.If(last):
                m.d.sync += [p2.eq(0), taking.eq(1), pred.eq(arg), y_out.eq(y)]

        # EXP read; the shift: zero when d >> lf >= 16 (or no class), else d >> lf (4 bits)
        m.d.comb += exp_rd.addr.eq(diff[:lf])
        m.d.sync += [sh1.eq(diff[lf:lf + 4]), zero1.eq(~take2 | diff[lf + 4:SB].any()),
                     l1.eq(take2 & last)]
        # shift by 4 * sh[2:4], or zero; then by sh[0:2] into the accumulator
        e = exp_rd.data
        for b in reversed(range(_COARSE, 4)):
            e = Mux(sh1[b], e >> (1 << b), e)
        m.d.sync += [ea.eq(Mux(zero1, 0, e)), sh2.eq(sh1[:_COARSE]), l2.eq(l1)]
        e = ea
        for b in reversed(range(_COARSE)):
            e = Mux(sh2[b], e >> (1 << b), e)
        m.d.sync += [acc.eq(acc + e), t1.eq(l2)]   # S += e_k (e_k = 0 between samples)

        # The leading one of S picks the LOG address; p - 15 beside it
        p = C(0, len(pm))
        for q in range(EF + 1, s_bits):
            p = Mux(acc[q], q - EF, p)
        j = acc[EF - lb:]
        for b in range(len(pm)):
            j = Mux(p[b], j >> (1 << b), j)
        m.d.comb += log_rd.addr.eq(j[:lb])
        m.d.sync += [pm.eq(p), t2.eq(t1)]

        # L = ((p - 15 + LOG >> Lf) << Lf) + LOG mod 2^Lf + (d_y << (Lf - lf)), saturated
        lg = log_rd.data
        hi, carry = [], lg[Lf] if len(lg) > Lf else C(0, 1)
        for bit in pm:                                    # p - 15 + LOG >> Lf, no carry chain
            hi.append(bit ^ carry)
            carry = carry & bit
        base = Cat(lg[:Lf], *hi)
        dy_shifted = dy << (Lf - lf)                      # d_y in loss units, up to 28 bits
        dy_over = dy_shifted[W:].any() if len(dy_shifted) > W else 0
        total = Signal(W + 1)
        m.d.comb += total.eq(dy_shifted[:W] + base)
        with m.If(t2):
            m.d.sync += [loss.eq(Mux(dy_over | total[W], (1 << W) - 1, total[:W])),
                         self.o.valid.eq(1), acc.eq(0)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
