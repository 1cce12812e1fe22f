"""The on-chip trainer's loss unit: per-sample base-2 cross-entropy and argmax of K logits
(golden model :func:`pezo.sim.ontrain.loss_table`; definition in docs/on_device.md, section 5)."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.sim.ontrain import MAX_CLASSES, Arith, exp_table, log_table

__all__ = ["LossUnit"]

MIN_CLASSES = 2
LABEL_BITS = 4          # y and pred: 0..15
SHIFT_CAP = 16          # e_k = EXP[..] >> min(d_k >> logit_frac, 16), as in the golden model
_COARSE = 2             # the 0..15 shift is two 4:1 mux stages: by 4 * sh[2:4], then by sh[0:2]


class LossUnit(wiring.Component):
    """Loss L and argmax of one sample's K logits, bit-exact with
    :func:`pezo.sim.ontrain.loss_table` and with NumPy's ``argmax`` (the first index among equal
    maxima), for every input and every :class:`~pezo.sim.ontrain.Arith`.

    With lf = ``logit_frac``, lb = ``log_bits``, Lf = ``loss_frac`` (8, 8, 12 by default)::

        m   = max_k s_k            pred = the first k with s_k = m
        d_k = m - s_k              e_k  = EXP[d_k mod 2^lf] >> min(d_k >> lf, 16)
        S   = sum_k e_k            p    = floor(log2 S),  j = (S >> (p - lb)) mod 2^lb
        L   = min(((p - 15) << Lf) + LOG[j] + (d_y << (Lf - lf)), 2^20 - 1)

    The unit holds up to three samples, one in each of three parts that hand a sample on when
    the next part is free:

    * **Scan** (K cycles). The sample is registered on acceptance and its logits rotate through a
      K-register ring, one class per cycle past a 16-bit signed comparator (strictly greater
      replaces the running maximum, which starts at -32768 with index 0: ties keep the first
      index). The logit of class y is caught on its way past.
    * **Exp sum** (K + 5 cycles). On hand-over the logits are copied into a second ring, with m,
      pred and d_y = m - s_y (a subtractor). One class per cycle enters a pipeline:
      d_k = m - s_k (subtractor) | EXP read (block RAM, synchronous port), the shift's zero flag
      (d_k >> lf >= 16) and amount | shift by 0, 4, 8 or 12 (4:1 mux, zero when flagged) |
      shift by 0..3 (4:1 mux) | S += e_k (the only adder, ceil(log2(K 2^15 + 1)) bits: 19,
      or 20 for K = 16, where S = 2^19 when all logits are equal).
    * **Log** (4 cycles). On hand-over the leading one p of S (bits 15 .. top, a priority mux)
      picks j, the lb bits below it, registered as the LOG read address | LOG read (block RAM),
      ((p - 15) << Lf) + (d_y << (Lf - lf)) over 20 bits with a carry out | + LOG[j] over 20
      bits with a carry out | saturation to 2^20 - 1 (any carry, or d_y bits shifted past
      bit 19) into the output register.

    Every register stage has at most one carry chain (<= 21 bits with its carry out) and a
    small mux, for 48 MHz on the iCE40 UP5K. Tables: EXP (2^lf x 16 bits) and LOG (2^lb x
    12 bits by default) are :class:`~amaranth.lib.memory.Memory` ROMs initialised from
    :func:`~pezo.sim.ontrain.exp_table` and :func:`~pezo.sim.ontrain.log_table`: one EBR each.

    Cycles. With ``i.valid`` and ``o.ready`` always high a sample is accepted every
    :attr:`cycles_per_sample` = K + 6 cycles (the exp sum part's K + 5 and its hand-over), e.g.
    16 for K = 10. Into an empty unit the result is on ``o`` :attr:`latency` = 2 K + 9 cycles
    after the accepting edge. Backpressure works throughout: ``o.valid``, once raised, stays
    with its payload until taken, a part holds its sample until the next part is free, and
    ``i.ready`` (a registered flag) is high exactly when the scan part is empty.

    Parameters
    ----------
    n_classes : int
        K, the number of logits per sample, 2..16.
    arith : Arith
        The formats (``logit_frac``, ``log_bits``, ``loss_frac``; ``EXP_FRAC``, ``LOSS_BITS``).

    Members
    -------
    i : In(stream.Signature(StructLayout({"s": ArrayLayout(signed(16), K), "y": unsigned(4)})))
        One sample: its K logits (Q8.8 by default) and its label y, 0 <= y < K (for y >= K the
        loss is unspecified; pred is still exact).
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
                "s": data.ArrayLayout(signed(arith.LOGIT_BITS), n_classes),
                "y": unsigned(LABEL_BITS)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "loss": unsigned(arith.LOSS_BITS),
                "pred": unsigned(LABEL_BITS),
                "y": unsigned(LABEL_BITS)}))),
        })

    n_classes = property(lambda self: self._k)
    arith = property(lambda self: self._arith)
    cycles_per_sample = property(lambda self: self._k + 6,
                                 doc="Cycles between samples accepted back to back "
                                     "(``i.valid`` and ``o.ready`` always high).")
    latency = property(lambda self: 2 * self._k + 9,
                       doc="Cycles from the accepting edge of a sample into an empty unit to "
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

        m.submodules.exp = exp_mem = memory.Memory(
            shape=unsigned(max(exp).bit_length()), depth=len(exp), init=exp)
        m.submodules.log = log_mem = memory.Memory(
            shape=unsigned(max(log).bit_length()), depth=len(log), init=log)
        exp_rd, log_rd = exp_mem.read_port(), log_mem.read_port()

        # Scan: the running maximum over a rotating ring --------------------------------------
        sa = [Signal(signed(SB), name=f"sa{k}") for k in range(K)]
        a_y = Signal(LABEL_BITS)
        a_cnt = Signal(range(K))
        a_max = Signal(signed(SB))
        a_arg = Signal(LABEL_BITS)
        a_sy = Signal(signed(SB))
        a_scan = Signal()           # rotating: class a_cnt is in sa[0]
        a_done = Signal()           # m, pred and s_y found, waiting for the exp sum part
        a_empty = Signal(init=1)    # registered i.ready

        # Exp sum ------------------------------------------------------------------------------
        sb = [Signal(signed(SB), name=f"sb{k}") for k in range(K)]
        b_max = Signal(signed(SB))
        b_pred = Signal(LABEL_BITS)
        b_y = Signal(LABEL_BITS)
        b_dy = Signal(SB)           # d_y = m - s_y, 0 .. 2^16 - 1
        b_cnt = Signal(range(K))
        b_issue = Signal()
        b_full = Signal()
        d0, v0, l0 = Signal(SB), Signal(), Signal()                 # d_k
        zero1, sh1, v1, l1 = Signal(), Signal(4), Signal(), Signal()  # EXP read under way
        ea, sh2, v2, l2 = Signal(exp_rd.data.shape()), Signal(_COARSE), Signal(), Signal()
        e3, v3, l3 = Signal(exp_rd.data.shape()), Signal(), Signal()  # e_k
        acc = Signal(s_bits)
        s_final = Signal()

        # Log ----------------------------------------------------------------------------------
        c_j = Signal(lb)
        c_pm = Signal(range(s_bits - EF))   # p - 15
        c_dy = Signal(SB)
        c_pred = Signal(LABEL_BITS)
        c_y = Signal(LABEL_BITS)
        c_base = Signal(W + 1)
        c_sum = Signal(W + 1)
        c_ovf = Signal()
        c1, c2, c3 = Signal(), Signal(), Signal()

        a_to_b = Signal()
        b_to_c = Signal()
        m.d.comb += [a_to_b.eq(a_done & ~b_full),
                     b_to_c.eq(s_final & ~(c1 | c2 | c3)),
                     self.i.ready.eq(a_empty)]

        # Scan ---------------------------------------------------------------------------------
        with m.If(self.i.valid & a_empty):
            m.d.sync += [sa[k].eq(self.i.payload.s[k]) for k in range(K)]
            m.d.sync += [a_y.eq(self.i.payload.y), a_cnt.eq(0), a_max.eq(-(1 << (SB - 1))),
                         a_arg.eq(0), a_scan.eq(1), a_empty.eq(0)]
        with m.If(a_scan):
            m.d.sync += [sa[k].eq(sa[(k + 1) % K]) for k in range(K)]
            with m.If(sa[0] > a_max):
                m.d.sync += [a_max.eq(sa[0]), a_arg.eq(a_cnt)]
            with m.If(a_cnt == a_y):
                m.d.sync += a_sy.eq(sa[0])
            m.d.sync += a_cnt.eq(a_cnt + 1)
            with m.If(a_cnt == K - 1):
                m.d.sync += [a_scan.eq(0), a_done.eq(1)]
        with m.If(a_to_b):
            m.d.sync += [a_done.eq(0), a_empty.eq(1)]

        # Exp sum: hand-over, then one class per cycle into the pipeline -----------------------
        with m.If(a_to_b):
            m.d.sync += [sb[k].eq(sa[k]) for k in range(K)]
            m.d.sync += [b_max.eq(a_max), b_pred.eq(a_arg), b_y.eq(a_y), b_dy.eq((a_max - a_sy)[:SB]),
                         b_cnt.eq(0), b_issue.eq(1), b_full.eq(1)]
        with m.If(b_issue):
            m.d.sync += [sb[k].eq(sb[(k + 1) % K]) for k in range(K)]
            m.d.sync += b_cnt.eq(b_cnt + 1)
            with m.If(b_cnt == K - 1):
                m.d.sync += b_issue.eq(0)
        m.d.sync += [d0.eq((b_max - sb[0])[:SB]), v0.eq(b_issue),
                     l0.eq(b_issue & (b_cnt == K - 1))]
        # EXP read; the shift: zero when d >> lf >= 16, else d >> lf (4 bits)
        m.d.comb += exp_rd.addr.eq(d0[:lf])
        m.d.sync += [zero1.eq(d0[lf + 4:] != 0), sh1.eq(d0[lf:lf + 4]), v1.eq(v0), l1.eq(l0)]
        # coarse shift by 4 * sh[2:4], or zero
        with m.Switch(sh1[_COARSE:]):
            for c in range(1 << (4 - _COARSE)):
                with m.Case(c):
                    m.d.sync += ea.eq(Mux(zero1, 0, exp_rd.data >> (c << _COARSE)))
        m.d.sync += [sh2.eq(sh1[:_COARSE]), v2.eq(v1), l2.eq(l1)]
        # fine shift by sh[0:2]
        with m.Switch(sh2):
            for c in range(1 << _COARSE):
                with m.Case(c):
                    m.d.sync += e3.eq(ea >> c)
        m.d.sync += [v3.eq(v2), l3.eq(v2 & l2)]
        # S += e_k; S is final after the last class, cleared when the log part takes it
        with m.If(v3):
            m.d.sync += acc.eq(acc + e3)
        with m.If(v3 & l3):
            m.d.sync += s_final.eq(1)

        # Log: hand-over with the leading one of S, then two adds and the saturation -----------
        with m.If(b_to_c):
            m.d.sync += [s_final.eq(0), b_full.eq(0), acc.eq(0), c1.eq(1),
                         c_dy.eq(b_dy), c_pred.eq(b_pred), c_y.eq(b_y)]
            for n, p in enumerate(range(s_bits - 1, EF, -1)):
                with (m.If if n == 0 else m.Elif)(acc[p]):
                    m.d.sync += [c_pm.eq(p - EF), c_j.eq(acc[p - lb:p])]
            with m.Else():
                m.d.sync += [c_pm.eq(0), c_j.eq(acc[EF - lb:EF])]
        m.d.comb += log_rd.addr.eq(c_j)
        dy_shifted = c_dy << (Lf - lf)                  # d_y in loss units, up to 28 bits
        dy_over = dy_shifted[W:].any() if len(dy_shifted) > W else 0
        with m.If(c1):
            m.d.sync += [c_base.eq((c_pm << Lf) + dy_shifted[:W]), c_ovf.eq(dy_over),
                         c1.eq(0), c2.eq(1)]
        with m.If(c2):
            m.d.sync += [c_sum.eq(c_base[:W] + log_rd.data), c_ovf.eq(c_ovf | c_base[W]),
                         c2.eq(0), c3.eq(1)]
        with m.If(c3 & ~self.o.valid):
            m.d.sync += [self.o.payload.loss.eq(Mux(c_ovf | c_sum[W], (1 << W) - 1, c_sum[:W])),
                         self.o.payload.pred.eq(c_pred), self.o.payload.y.eq(c_y), self.o.valid.eq(1), c3.eq(0)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
