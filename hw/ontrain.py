"""The on-chip trainer (issue 25): the whole MeZO step in gateware, bit-exact with
:func:`pezo.sim.ontrain.train_on_chip` (docs/on_device.md defines every value it computes).

:class:`OnChipTrainer` wraps the training design's :class:`~pezo.hw.engine.PerturbEngine` and
adds, beside it:

* the data SPRAM (banks 0-2: the packed samples of the three splits, written by ``load``) and
  the standardisation table T[f][x] (EBR, written by ``load``); on families without SPRAM (the
  ECP5) the data and log memories are block RAM of the same contract
  (:func:`pezo.hw.spram.single_port_memory`);
* the minibatch sampler (:class:`pezo.hw.ontrain_sampler.SamplerUnit`) and an index buffer, so
  the second forward pass sees the first one's samples;
* a *fill* unit: a sample's SPRAM words -> its codes -> T lookups -> one lane of the feature
  buffer (two halves: the next group of samples is filled while the current one is forwarded);
* the forward datapath: ``group`` samples at a time, the engine's READ stream of the weights
  (m = 2 per word, the host's layout: W (F x K) row-major, then b) broadcast to 2 x ``group``
  multipliers (SB_MAC16 on the UP5K) whose products enter rotating rings of exact 40-bit
  accumulators (one ring of K / m accumulators per sample and lane: no multiplexer, the ring
  turns once per word). The bias row is multiplied by 2^t_frac (b << t_frac) and every
  accumulator starts at the rounding constant 2^(r-1);
* the loss unit (:class:`pezo.hw.ontrain_loss.LossUnit`) with its argmax, the coefficient (a
  serial 8-bit multiply and a serial shift with round-half-even), the step controller with the
  schedule, the evaluation countdown, the best-weights checkpoint (EBR) and the loss log (SPRAM
  bank 3: 8 words per step, a ring of :data:`LOG_STEPS` steps).

Cycles (group G, batch B, F features, K classes, m = 2): a group's forward pass is one READ of
the (F + 1) K / m words plus about 10 cycles; a step is 2 B / G of them plus four engine passes
and four SEEDs (``step_cycles`` of a run is counted by the testbench).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.hw.common import NO_RW_CHECK, collision_read
from pezo.hw.engine import EngineOp, PerturbEngine, status_layout
from pezo.hw.ontrain_coef import CoefUnit
from pezo.hw.ontrain_loss import LossUnit
from pezo.hw.ontrain_prog import (P_BASE, S, S_BASE, TSTATUS_FIELDS, InPort, Mode, OutPort,
                                  TrainErr, Unit, register_init, step_program, train_beats,
                                  train_layout, tstatus_beats, tstatus_layout)
from pezo.hw.ontrain_sampler import SamplerUnit
from pezo.hw.ontrain_seq import Sequencer
from pezo.hw.spram import READ_LATENCY as SPRAM_LATENCY, single_port_memory
from pezo.sim.engine import Err
from pezo.sim.ontrain_seq import N_REGS
from pezo.sim.ontrain import (DATA_CAPACITY_WORDS, SPRAM_BANK_WORDS, Arith, TrainerConfig,
                              words_per_sample)

__all__ = ["OnChipTrainer", "TrainErr", "TrainOp", "train_layout", "tstatus_layout",
           "flags_layout", "trainer_command_layout", "train_beats", "tstatus_beats", "LoadKind",
           "LOG_WORDS_PER_STEP", "LOG_STEPS", "ACC_BITS"]

#: Words the log keeps per step (sum_plus lo/hi, sum_minus lo/hi, c, flags, 2 spare) and the
#: steps its ring holds (SPRAM bank 3: 16,384 words).
LOG_WORDS_PER_STEP = 8
LOG_STEPS = SPRAM_BANK_WORDS // LOG_WORDS_PER_STEP
#: The forward accumulators: exact for every operand (65 products of 16 x 16 bits < 2^37).
ACC_BITS = 40
SUM_BITS = 32


class LoadKind:
    DATA = 0            # a data SPRAM word
    TABLE = 1           # a standardisation table entry (address f * 2^b + x)
    COMMIT = 2          # the data and table are complete (the host checked their CRC)
    INVALIDATE = 3      # a LOAD begins: TRAIN is refused until the next COMMIT


class TrainOp:
    """The 4-bit opcodes of the training commands (``cmd.payload.train`` high); the frame
    opcode bytes are 0x10 + these (:data:`pezo.boards.protocol.TrainOp`)."""
    LOAD = 0            # arg: start word [0:16], kind [24:26], count (32-bit beats) [32:64];
                        # COMMIT: arg [0:24] is the data's tag (TSTATUS shows it)
    TRAIN = 1           # count = train_beats(); payload: train_layout() LSB first
    TSTATUS = 2         # count = tstatus_beats(); reply: tstatus_layout() LSB first
    READ_LOG = 3        # arg: start word (even) [0:14], count [32:64]; two log words per beat
    STOP = 4


def trainer_command_layout():
    """The engine's command layout plus ``train``: the opcode is a :class:`TrainOp`."""
    return data.StructLayout({"op": EngineOp, "arg": 64, "train": 1})


def flags_layout():
    """The trainer's status flags (TSTATUS word 0)."""
    return data.StructLayout({"running": 1, "done": 1, "loaded": 1, "error": 3})


class OnChipTrainer(wiring.Component):
    """The training design's core: engine, data, forward pass, loss and step control.

    Parameters
    ----------
    config : TrainerConfig
        The shape: F, K, feature bits, group size, index buffer depth.
    arith : Arith

    Members
    -------
    cmd : In(stream.Signature(:func:`trainer_command_layout`))
        The bridge's commands. ``train`` low: an engine command, passed to the engine while no
        run is in progress (refused with ``Err.UNSUPPORTED`` during a run); ``train`` high: a
        :class:`TrainOp` (LOAD, TRAIN, TSTATUS, READ LOG, STOP), answered by the trainer with the
        same handshakes an engine WRITE (``wdata`` beats) or READ (``rdata`` beats) uses.
        STOP ends the run after the current step, which completes (the weights are never left
        perturbed); the run then evaluates, restores its checkpoint and tests as at a last step.
    wdata, rdata, status
        As the engine's (:class:`~pezo.hw.engine.PerturbEngine`); ``status`` shows the trainer's
        verdict (error, error code, busy) on a training command or a refused engine command.
    tstatus : Out(:func:`tstatus_layout`)
    """

    def __init__(self, config, arith=Arith()):
        if not isinstance(config, TrainerConfig):
            raise TypeError(f"Configuration must be a TrainerConfig, not {config!r}")
        if not isinstance(arith, Arith):
            raise TypeError(f"arith must be an Arith, not {arith!r}")
        self._cfg = config
        self._F, self._K, self._b = config.n_features, config.n_classes, config.feature_bits
        self._G, self._max_batch, self._arith = config.group, config.max_batch, arith
        self._ecfg = ecfg = config.engine()
        # its command sources hold the argument (the sequencer's A, the bridge's frame)
        self.engine = PerturbEngine(ecfg, held_arg=True, lean=True)
        row = data.ArrayLayout(signed(ecfg.w_bits), ecfg.lanes)
        super().__init__({
            "cmd": In(stream.Signature(trainer_command_layout())),
            "wdata": In(stream.Signature(row)),
            "rdata": Out(stream.Signature(row)),
            "status": Out(status_layout(ecfg)),
            "flags": Out(flags_layout()),
            "log_words": Out(14),
        })

    #: The serial bridge passes the training commands to this component (``cmd.payload.train``).
    training_commands = True
    config = property(lambda self: self._cfg)
    engine_config = property(lambda self: self._ecfg)
    n_features = property(lambda self: self._F)
    n_classes = property(lambda self: self._K)
    feature_bits = property(lambda self: self._b)
    group = property(lambda self: self._G)
    max_batch = property(lambda self: self._max_batch)
    arith = property(lambda self: self._arith)

    @property
    def words_per_sample(self):
        return words_per_sample(self._F, self._b)

    def elaborate(self, platform):
        m = Module()
        F, K, b, G, a = self._F, self._K, self._b, self._G, self._arith
        ecfg = self._ecfg
        L = ecfg.lanes
        Kw = K // L                         # weight words per row
        words = ecfg.words                  # (F + 1) K / L
        wps = self.words_per_sample
        per = 16 // b
        assert per >= SPRAM_LATENCY         # a word's codes take longer than the next read
        r_shift = a.t_frac + ecfg.w_frac - a.logit_frac
        fb = F.bit_length()                 # feature-buffer address bits per half (rows 0..F)

        m.submodules.engine = eng = self.engine
        m.submodules.sampler = smp = SamplerUnit(16)
        m.submodules.loss = lu = LossUnit(K, a)
        # SPRAM on the UltraPlus (and its model in simulation), block RAM elsewhere (ECP5)
        m.submodules.dmem = dmem = single_port_memory(16, DATA_CAPACITY_WORDS, platform)
        m.submodules.lmem = lmem = single_port_memory(16, SPRAM_BANK_WORDS, platform)
        # No read of these memories uses the data of an address written in the same cycle
        # (NO_RW_CHECK; the simulation inverts such data: pezo.hw.common.collision_read).
        m.submodules.table = table = memory.Memory(shape=signed(16), depth=F << b, init=[],
                                                   attrs=NO_RW_CHECK)
        t_wr, t_rd = table.write_port(), table.read_port()
        t_data = collision_read(m, t_rd, t_wr, platform)
        # row F of each half is the bias row's operand 2^t_frac for every sample, set by the
        # memory's initial contents and never written (the fill writes rows 0..F-1)
        one_row = sum((1 << a.t_frac) << (16 * s) for s in range(G))
        fb_init = [one_row if (i & ((1 << fb) - 1)) == F else 0 for i in range(2 << fb)]
        m.submodules.fbuf = fbuf = memory.Memory(shape=unsigned(16 * G), depth=2 << fb,
                                                 init=fb_init,
                                                 attrs=NO_RW_CHECK)
        fb_wr, fb_rd = fbuf.write_port(granularity=16), fbuf.read_port()
        fb_data = collision_read(m, fb_rd, fb_wr, platform)
        m.submodules.ibuf = ibuf = memory.Memory(shape=16, depth=self._max_batch, init=[],
                                                 attrs=NO_RW_CHECK)
        ib_wr, ib_rd = ibuf.write_port(), ibuf.read_port()
        ib_data = collision_read(m, ib_rd, ib_wr, platform)
        # the checkpoint (words 0..words-1) and the sequencer's registers (REG0..REG0+63)
        REG0 = -(-words // N_REGS) * N_REGS
        m.submodules.ckpt = ckpt = memory.Memory(
            shape=max(32, L * ecfg.w_bits), depth=REG0 + N_REGS,
            init=[0] * REG0 + register_init(), attrs=NO_RW_CHECK)
        ck_wr, ck_rd = ckpt.write_port(), ckpt.read_port()
        ck_data = collision_read(m, ck_rd, ck_wr, platform)

        # Run state: the flags in flip-flops, the rest in the sequencer's registers -------------
        ts = self.flags
        running, done, loaded = Signal(), Signal(), Signal()
        err = Signal(3)
        m.d.comb += [ts.running.eq(running), ts.done.eq(done), ts.loaded.eq(loaded),
                     ts.error.eq(err)]
        run_cycles = Signal(32)      # clock cycles of the run (TRAIN to the end of its test)
        with m.If(running):
            m.d.sync += run_cycles.eq(run_cycles + 1)
        stop_req = Signal()
        stop_p = Signal()
        with m.If(stop_p & running):
            m.d.sync += stop_req.eq(1)

        # The host's side (the bridge's frames): engine commands pass through to the engine while
        # no run is in progress; training commands (``cmd.payload.train``) go to the host FSM
        # below, which answers them on the same ports.
        hc = self.cmd.payload
        h_idle = Signal()            # the host FSM takes a command
        h_wtake = Signal()           # the host FSM takes wdata beats (LOAD, TRAIN)
        h_wready = Signal()
        h_rsrc = Signal()            # the host FSM answers on rdata (TSTATUS, READ LOG)
        h_rvalid = Signal()
        h_rdata = Signal(L * ecfg.w_bits)
        hsel = Signal()              # the status shows the host FSM's verdict
        herr, herr_code, hbusy = Signal(), Signal(2), Signal()
        pass_cmd = ~running & ~hc.train

        # Engine port: the run's commands, or the host's ----------------------------------------
        t_cmd_valid = Signal()
        t_op = Signal(4)
        t_arg = Signal(64)
        t_rready = Signal()
        t_wvalid = Signal()
        t_wdata = Signal(L * ecfg.w_bits)
        est = eng.status
        m.d.comb += [
            eng.cmd.valid.eq(Mux(running, t_cmd_valid, self.cmd.valid & pass_cmd & h_idle)),
            eng.cmd.payload.op.as_value().eq(Mux(running, t_op, hc.op.as_value())),
            eng.cmd.payload.arg.eq(Mux(running, t_arg, hc.arg)),
            self.cmd.ready.eq(h_idle & Mux(pass_cmd, eng.cmd.ready, 1)),
            eng.wdata.valid.eq(Mux(running, t_wvalid, self.wdata.valid & ~h_wtake)),
            eng.wdata.payload.as_value().eq(Mux(running, t_wdata,
                                                self.wdata.payload.as_value())),
            self.wdata.ready.eq(Mux(h_wtake, h_wready, eng.wdata.ready & ~running)),
            eng.rdata.ready.eq(Mux(running, t_rready, self.rdata.ready & ~h_rsrc)),
            self.rdata.valid.eq(Mux(h_rsrc, h_rvalid, eng.rdata.valid & ~running)),
            self.rdata.payload.as_value().eq(Mux(h_rsrc, h_rdata, eng.rdata.payload.as_value())),
            self.status.eq(est),
            self.status.busy.eq(hbusy | (est.busy & ~running)),
            self.status.error.eq(Mux(hsel, herr, est.error)),
            self.status.error_code.eq(Mux(hsel, herr_code, est.error_code)),
        ]

        # Load (driven by the host FSM) -----------------------------------------------------------
        ld_go = Signal()
        ld_kind = Signal(2)
        ld_addr = Signal(16)
        ld_data = Signal(16)
        m.d.comb += [t_wr.addr.eq(ld_addr), t_wr.data.eq(ld_data),
                     t_wr.en.eq(ld_go & (ld_kind == LoadKind.TABLE))]
        fill_addr = Signal(16)
        fill_re = Signal()
        m.d.comb += [dmem.addr.eq(Mux(running, fill_addr, ld_addr)), dmem.wdata.eq(ld_data),
                     dmem.we.eq(ld_go & (ld_kind == LoadKind.DATA)), dmem.re.eq(fill_re)]

        # Pass context (the controller starts a pass; fill, forward and loss run it) -------------
        mode = Signal(2)
        n_pass = Signal(16)
        base = Signal(16)
        pass_go = Signal()
        loss_sum = Signal(SUM_BITS)
        correct = Signal(16)
        losses_left = Signal(16)     # samples whose loss is still to be added this pass

        # Fill --------------------------------------------------------------------------------------
        full = Signal(2)             # feature-buffer halves holding a group not yet forwarded
        count = [Signal(range(G + 1), name=f"count{h}") for h in range(2)]
        labels = [[Signal(4, name=f"label{h}_{s}") for s in range(G)] for h in range(2)]
        j = Signal(16)               # samples filled this pass
        j_left = Signal(16)          # n_pass - j (compares with constants only: timing)
        j_last, fill_done = j_left == 1, j_left == 0
        slot = Signal(range(G))
        hf = Signal()
        saddr = Signal(16)           # the sample's next SPRAM word
        eaddr = Signal(16)           # evaluation: the next sample's first word
        wleft = Signal(range(wps + 1))
        cw = Signal(16)              # the word being unpacked
        ci = Signal(range(per + 1))
        f = Signal(range(F + per + 1))
        lat = Signal(range(SPRAM_LATENCY + 1))
        prod_idx = Signal(16)
        # the table lookup's pipeline register: the buffer write one cycle later
        wv, wf, wslot, whf = Signal(), Signal(fb), Signal(range(G)), Signal()
        m.d.sync += wv.eq(0)
        m.d.comb += [t_rd.addr.eq(Cat(cw[:b], f[:max(1, (F - 1).bit_length())])
                                  if F > 1 else cw[:b]),
                     fb_wr.addr.eq(Cat(wf, whf)),
                     fb_wr.data.eq(Cat(*([t_data] * G))),
                     fb_wr.en.eq(Mux(wv, 1 << wslot, 0)),
                     ib_wr.data.eq(saddr), fill_addr.eq(saddr)]
        last_word = wleft == 1
        with m.FSM(name="fill"):
            with m.State("IDLE"):
                with m.If(pass_go):
                    m.d.sync += [j.eq(0), j_left.eq(n_pass), slot.eq(0), hf.eq(0),
                                 eaddr.eq(base)]
                    m.next = "SRC"
            with m.State("SRC"):
                with m.If(mode == Mode.PLUS):
                    m.d.comb += [smp.req.valid.eq(1), smp.req.payload.eq(0)]
                    with m.If(smp.req.ready):
                        m.next = "IDX"
                with m.Elif(mode == Mode.MINUS):
                    m.d.comb += ib_rd.addr.eq(j)
                    m.next = "IBUF"
                with m.Else():
                    m.d.sync += [saddr.eq(eaddr), eaddr.eq(eaddr + wps)]
                    m.next = "HALF"
            with m.State("IDX"):
                m.d.comb += smp.o.ready.eq(1)
                with m.If(smp.o.valid):
                    m.d.sync += prod_idx.eq(smp.o.payload[:16] * wps)
                    m.next = "IDX2"
            with m.State("IDX2"):
                m.d.sync += saddr.eq(base + prod_idx)
                m.next = "IDX3"
            with m.State("IDX3"):
                m.d.comb += [ib_wr.addr.eq(j), ib_wr.en.eq(1)]
                m.next = "HALF"
            with m.State("IBUF"):
                m.d.sync += saddr.eq(ib_data)
                m.next = "HALF"
            with m.State("HALF"):
                with m.If(~full.bit_select(hf, 1)):
                    m.d.comb += fill_re.eq(1)
                    m.d.sync += [wleft.eq(wps), f.eq(0), lat.eq(SPRAM_LATENCY - 1),
                                 saddr.eq(saddr + 1)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.sync += lat.eq(lat - 1)
                with m.If(lat == 1):
                    m.next = "WORD"
            with m.State("WORD"):
                # the word is on dmem.rdata; ask for the next one at once (it arrives in
                # SPRAM_LATENCY <= per cycles, when this word's codes are done)
                m.d.sync += [cw.eq(dmem.rdata), ci.eq(0)]
                with m.If(last_word):
                    for h in range(2):
                        for s in range(G):
                            with m.If((hf == h) & (slot == s)):
                                m.d.sync += labels[h][s].eq(dmem.rdata[12:16])
                with m.Else():
                    m.d.comb += fill_re.eq(1)
                    m.d.sync += saddr.eq(saddr + 1)
                m.next = "CODES"
            with m.State("CODES"):
                # one code per cycle: T lookup at {f, x}; the buffer write follows a cycle later
                m.d.sync += [cw.eq(cw >> b), ci.eq(ci + 1), f.eq(f + 1),
                             wv.eq(f < F), wf.eq(f[:fb]), wslot.eq(slot), whf.eq(hf)]
                with m.If(ci == per - 1):
                    m.d.sync += wleft.eq(wleft - 1)
                    with m.If(last_word):
                        m.next = "NEXT"
                    with m.Else():
                        m.next = "WORD"
            with m.State("NEXT"):
                m.d.sync += [j.eq(j + 1), j_left.eq(j_left - 1)]
                with m.If((slot == G - 1) | j_last):
                    for h in range(2):
                        with m.If(hf == h):
                            m.d.sync += [full[h].eq(1), count[h].eq(slot + 1)]
                    m.d.sync += [slot.eq(0), hf.eq(~hf)]
                with m.Else():
                    m.d.sync += slot.eq(slot + 1)
                with m.If(j_last):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "SRC"

        # Forward ---------------------------------------------------------------------------------
        # The accumulators: one block-RAM word per ring position k (K / m of them), holding the
        # 40-bit sums of every sample and lane (and a constant row: see below); a word's read
        # (as it is taken) and its write (the next cycle) are one cycle apart, and a position
        # comes round again K / m >= 2 words later (for K / m = 1 the read is transparent to
        # the write).
        acc_init = 1 << (r_shift - 1)
        SL = G * L
        m.submodules.accs = accs = memory.Memory(
            shape=data.ArrayLayout(signed(ACC_BITS), SL), depth=Kw + 1,
            init=[[0] * SL] * Kw + [[acc_init] * SL], attrs=NO_RW_CHECK if Kw > 1 else None)
        ac_wr = accs.write_port()
        ac_rd = accs.read_port(transparent_for=(ac_wr,) if Kw == 1 else ())
        # K / m > 1: a read meets the write of its address only in a stall, when the read is
        # not used (a word's position differs from the one before it)
        ac_data = collision_read(m, ac_rd, ac_wr, platform) if Kw > 1 else ac_rd.data
        hw = Signal()                # the half being forwarded
        fw_cmd = Signal()            # the forward unit asks the engine for READ
        fw_take = Signal()
        left = Signal(range(words + 1))
        kp = Signal(range(Kw))       # the offered word's ring position
        ka = Signal(range(Kw))       # the position of the word taken last cycle
        fcnt = Signal(range(F + 1))  # the offered word's row
        row0 = Signal()              # fcnt == 0, a register
        va = Signal()                # a word was taken last cycle: its sums are written now
        prods = [[Signal(signed(32), name=f"prod_s{s}_l{l}", reset_less=True) for l in range(L)]
                 for s in range(G)]
        m.d.sync += va.eq(0)
        # The feature buffer is read a cycle ahead, at the row of the word offered next (the
        # row after this one when this cycle takes a row's last word), so the row is on its
        # port as the word is taken: the word goes into the multipliers (SB_MAC16 on the UP5K,
        # products in their output registers) as it is taken, with no register of its own.
        take_w = fw_take & eng.rdata.valid
        row_end = take_w & (kp == Kw - 1)
        m.d.comb += [fb_rd.addr.eq(Cat(Mux(row_end, fcnt + 1, fcnt)[:fb], hw)), fb_rd.en.eq(1)]
        with m.If(take_w):
            m.d.sync += [va.eq(1), left.eq(left - 1), ka.eq(kp)]
            with m.If(row_end):
                m.d.sync += [kp.eq(0), fcnt.eq(fcnt + 1), row0.eq(0)]
            with m.Else():
                m.d.sync += kp.eq(kp + 1)
        wb_bits = ecfg.w_bits
        word = eng.rdata.payload.as_value()
        for s in range(G):
            t_a = fb_data[16 * s:16 * s + 16].as_signed()
            for l in range(L):
                m.d.sync += prods[s][l].eq(t_a * word[wb_bits * l:wb_bits * (l + 1)].as_signed())
        # No reset and no multiplexer: a row-0 word reads row K / m of the accumulator memory
        # instead of its position, which holds the rounding constant 2^(r-1) in every sum (set
        # by the memory's initial contents, never written), so its sum starts fresh.
        feeding = Signal()
        f_issue = Signal()
        fk_word = Signal(range(Kw))
        m.d.comb += [ac_wr.addr.eq(ka), ac_wr.en.eq(va),
                     ac_rd.addr.eq(Mux(feeding, fk_word, Mux(row0, Kw, kp))),
                     ac_rd.en.eq(1)]
        for s in range(G):
            for l in range(L):
                m.d.comb += ac_wr.data[s * L + l].eq(
                    ac_data[s * L + l] + prods[s][l])

        # The group's logits leave the accumulators one class per cycle, sample after sample:
        # a read, then sat(acc >> r, 16) by bit tests into a register, then a queue (block
        # RAM) in front of the loss unit, which takes them at its own pace while the next group
        # is forwarded. The queue gives the loss unit each sample's K logits twice (its load
        # and pass 2: it holds no logit itself) and frees them after the second. The labels
        # go into a queue of registers, one per sample, at the sample's first read; the loss
        # unit's class-0 beat carries its sample's label.
        lo16, hi16 = -(1 << 15), (1 << 15) - 1

        def sat16(acc):
            """sat(acc >> r, 16) by bit tests: the bits above the 16 kept must all equal the
            sign (no comparator)."""
            v = acc[r_shift:]
            top = v[15:]
            ovf = ~(top.all() | ~top.any())
            return Mux(ovf, Mux(v[-1], lo16, hi16), v[:16].as_signed())

        n_here = Signal(range(G + 1))
        m.d.comb += n_here.eq(Mux(hw, count[1], count[0]))
        lq_depth = 2 * G * K         # two groups' logits: a FEED never waits for room
        QD = 1 << lq_depth.bit_length()      # > lq_depth: wp - q_base is the level
        m.submodules.lq = lq = memory.Memory(shape=16, depth=QD, init=[], attrs=NO_RW_CHECK)
        q_wr, q_rd = lq.write_port(), lq.read_port()
        q_data = collision_read(m, q_rd, q_wr, platform)
        q_wp, q_base, q_rp = Signal(range(QD)), Signal(range(QD)), Signal(range(QD))
        q_level = Signal(range(QD))
        m.d.comb += q_level.eq(q_wp - q_base)
        # room for a group's logits, registered (DRAIN waits for it; nothing is written to the
        # queue then, so the level only falls and the flag is at most one cycle late)
        q_room = Signal()
        m.d.sync += q_room.eq(q_level <= lq_depth - G * K)
        yq_depth = 1 << (2 * G - 1).bit_length()
        yq = [Signal(4, name=f"yq{i}", reset_less=True) for i in range(yq_depth)]
        yq_w, yq_r = Signal(range(yq_depth)), Signal(range(yq_depth))
        fq = Signal(range(G + 1))    # the sample being read
        fk_lane = Signal(range(L))
        rd_v, lv_v = Signal(), Signal()
        rq, rl = Signal(range(G)), Signal(range(L))
        lv = Signal(16)
        m.d.comb += f_issue.eq(feeding & (fq != n_here))
        m.d.sync += [rd_v.eq(f_issue), lv_v.eq(rd_v),
                     lv.eq(sat16(ac_data[Cat(rl, rq) if L > 1 else rq]))]
        m.d.comb += [q_wr.en.eq(lv_v), q_wr.addr.eq(q_wp), q_wr.data.eq(lv)]
        with m.If(lv_v):
            m.d.sync += q_wp.eq(q_wp + 1)
        with m.If(f_issue):
            m.d.sync += [rq.eq(fq), rl.eq(fk_lane),
                         fk_lane.eq(Mux(fk_lane == L - 1, 0, fk_lane + 1))]
            with m.If((fk_lane == 0) & (fk_word == 0)):
                label = labels[0][0]
                for s in range(G):
                    for h in range(2):
                        label = Mux((fq == s) & (hw == h), labels[h][s], label)
                with m.Switch(yq_w):
                    for i in range(yq_depth):
                        with m.Case(i):
                            m.d.sync += yq[i].eq(label)
                m.d.sync += yq_w.eq(yq_w + 1)
            with m.If(fk_lane == L - 1):
                with m.If(fk_word == Kw - 1):
                    m.d.sync += [fk_word.eq(0), fq.eq(fq + 1)]
                with m.Else():
                    m.d.sync += fk_word.eq(fk_word + 1)
        lu_cls = Signal(range(K))    # the class of the loss unit's next beat
        q_second = Signal()          # the sample's second round (pass 2)
        y_head = yq[0]
        for i in range(1, yq_depth):
            y_head = Mux(yq_r == i, yq[i], y_head)
        # q_rp is the entry on the read port; the port reads the next one each cycle, which is
        # valid when written before this cycle (so never the entry written in it)
        q_valid = Signal()
        q_next = Signal(range(QD))
        q_take = lu.i.valid & lu.i.ready
        m.d.comb += [lu.i.valid.eq(q_valid), lu.i.payload.s.eq(q_data.as_signed()),
                     lu.i.payload.y.eq(y_head), q_rd.addr.eq(q_next), q_next.eq(q_rp)]
        with m.If(q_take):
            m.d.sync += lu_cls.eq(Mux(lu_cls == K - 1, 0, lu_cls + 1))
            with m.If(lu_cls != K - 1):
                m.d.comb += q_next.eq(q_rp + 1)
            with m.Elif(~q_second):          # the load is done: pass 2 from the first logit
                m.d.comb += q_next.eq(q_base)
                m.d.sync += q_second.eq(1)
            with m.Else():                   # pass 2 is done: the sample's logits are free
                m.d.comb += q_next.eq(q_base + K)
                m.d.sync += [q_base.eq(q_base + K), q_second.eq(0), yq_r.eq(yq_r + 1)]
        m.d.sync += [q_rp.eq(q_next), q_valid.eq(q_next != q_wp)]

        with m.FSM(name="forward"):
            with m.State("IDLE"):
                with m.If(pass_go):
                    m.d.sync += hw.eq(0)
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(full.bit_select(hw, 1)):
                    m.d.sync += [left.eq(words), kp.eq(0), fcnt.eq(0), row0.eq(1)]
                    m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += fw_cmd.eq(1)
                with m.If(eng.cmd.ready):
                    m.next = "STREAM"
            with m.State("STREAM"):
                m.d.comb += fw_take.eq(1)
                with m.If((left == 1) & eng.rdata.valid):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(~va & ~eng.status.busy & q_room):
                    m.d.sync += [fq.eq(0), fk_lane.eq(0), fk_word.eq(0)]
                    m.next = "FEED"
            with m.State("FEED"):
                m.d.comb += feeding.eq(1)
                with m.If((fq == n_here) & ~rd_v & ~lv_v):
                    m.next = "CLEAR"
            with m.State("CLEAR"):
                for h in range(2):
                    with m.If(hw == h):
                        m.d.sync += full[h].eq(0)
                m.d.sync += hw.eq(~hw)
                m.next = "NEXT"
            with m.State("NEXT"):
                # the pass's last group is out when the fill is done and no half is full
                with m.If(full.any() | ~fill_done):
                    m.next = "WAIT"
                with m.Else():
                    m.next = "IDLE"

        # The loss unit's results: the pass's loss sum and correct count.
        m.d.comb += lu.o.ready.eq(1)
        with m.If(lu.o.valid):
            m.d.sync += [loss_sum.eq(loss_sum + lu.o.payload.loss),
                         correct.eq(correct + (lu.o.payload.pred == lu.o.payload.y)),
                         losses_left.eq(losses_left - 1)]
        with m.If(pass_go):
            m.d.sync += [loss_sum.eq(0), correct.eq(0), losses_left.eq(n_pass)]

        # Step controller: the sequencer and its IO units ------------------------------------------
        # The register file shares the checkpoint's block RAM: the checkpoint at 0..words-1, the
        # registers from REG0. The checkpoint loops (COPY, WB) run while the sequencer waits
        # for them; the host's TSTATUS reads wait for WB; the sequencer's reads wait for both.
        m.submodules.seq = seq = Sequencer(step_program(self._max_batch))
        lmem_addr = Signal(14)               # the log's write (LOGW)
        lmem_we = Signal()
        lmem_wd = Signal(16)
        sa = seq.a
        rf_w = Signal(range(N_REGS))         # the host's register write / read
        rf_wd = Signal(32)
        rf_hwe, rf_hre = Signal(), Signal()
        cp_we, wb_re = Signal(), Signal()    # the checkpoint loops' accesses
        cpy = Signal(range(words + 1))
        m.d.comb += [
            ck_wr.addr.eq(Mux(cp_we, cpy, REG0 + Mux(rf_hwe, rf_w, seq.rf_addr))),
            ck_wr.data.eq(Mux(cp_we, eng.rdata.payload.as_value(), Mux(rf_hwe, rf_wd, sa))),
            ck_wr.en.eq(cp_we | rf_hwe | seq.rf_we),
            ck_rd.addr.eq(Mux(wb_re, cpy, REG0 + Mux(rf_hre, rf_w, seq.rf_addr))),
            ck_rd.en.eq(wb_re | rf_hre | seq.rf_re),
            seq.rf_rdata.eq(ck_data[:32]),
            seq.rf_wait.eq(wb_re | rf_hre),
        ]
        # the OUT registers
        lr_m, r_cur = Signal(8), Signal(signed(8))
        smp_n = Signal(16)
        m.submodules.coef = cu = CoefUnit(held=True)     # A and the OUT registers hold them
        m.d.comb += [cu.i.payload.diff.eq(sa.as_signed()), cu.i.payload.lr_m.eq(lr_m),
                     cu.i.payload.shift.eq(r_cur), smp.n.eq(smp_n), smp.seed.eq(sa)]
        ctl_cmd = Signal()
        ctl_op = Signal(4)
        # the argument, held through each command (the engine keeps no copy): an ENG
        # instruction's from A, the forward pass's, COPY's and WB's the word count
        ctl_eng = Signal()
        m.d.comb += [t_cmd_valid.eq(ctl_cmd | fw_cmd),
                     t_op.eq(Mux(fw_cmd, EngineOp.READ.value, ctl_op)),
                     t_arg.eq(Mux(ctl_eng, Mux(seq.io_sub[4], sa[:16].as_signed(), sa),
                                  words << 32))]
        io_t = Signal()                      # the rdata handshake: the forward unit's, or COPY's
        m.d.comb += [t_rready.eq(fw_take | io_t)]
        log_ptr = Signal(14)
        m.d.comb += self.log_words.eq(log_ptr)
        ph = Signal()                        # the IO instruction's second phase
        wv_r = Signal()
        io, unit, sub = seq.io_req, seq.io_unit, seq.io_sub
        ack = Signal()
        m.d.comb += seq.io_ack.eq(ack)
        with m.If(ack):
            m.d.sync += ph.eq(0)
        with m.If(io):
            with m.Switch(unit):
                with m.Case(Unit.IN):
                    m.d.comb += [ack.eq(1), seq.io_load.eq(1)]
                    with m.Switch(sub[:3]):
                        with m.Case(InPort.LOSS):
                            m.d.comb += seq.io_data.eq(loss_sum)
                        with m.Case(InPort.CORRECT):
                            m.d.comb += seq.io_data.eq(correct)
                        with m.Case(InPort.LOADED):
                            m.d.comb += seq.io_data.eq(loaded)
                        with m.Case(InPort.STOP):
                            m.d.comb += seq.io_data.eq(stop_req)
                        with m.Case(InPort.POW2):
                            m.d.comb += seq.io_data.eq(Const(1, 32) << sa[:4])
                        with m.Case(InPort.CLIPPED):       # the unit's result register
                            m.d.comb += seq.io_data.eq(cu.o.payload.clipped)
                        with m.Case(InPort.COEF):
                            m.d.comb += seq.io_data.eq(cu.o.payload.coef.as_unsigned())
                with m.Case(Unit.OUT):
                    m.d.comb += ack.eq(1)
                    with m.Switch(sub[:3]):
                        with m.Case(OutPort.FLAGS):
                            m.d.sync += [running.eq(sa[0]), done.eq(sa[1]), err.eq(sa[3:6])]
                            with m.If(sa[0] & ~running):
                                m.d.sync += [run_cycles.eq(0), log_ptr.eq(0), stop_req.eq(0)]
                        with m.Case(OutPort.PASS_BASE):
                            m.d.sync += base.eq(sa)
                        with m.Case(OutPort.PASS_N):
                            m.d.sync += n_pass.eq(sa)
                        with m.Case(OutPort.SMP_N):
                            m.d.sync += smp_n.eq(sa)
                        with m.Case(OutPort.LR_M):
                            m.d.sync += lr_m.eq(sa)
                        with m.Case(OutPort.SHIFT):
                            m.d.sync += r_cur.eq(sa)
                with m.Case(Unit.ENG):
                    # the command, then (from the cycle after it is taken) the engine's verdict
                    m.d.comb += [ctl_op.eq(sub[:4]), ctl_eng.eq(1)]
                    with m.If(~ph):
                        m.d.comb += ctl_cmd.eq(1)
                        with m.If(eng.cmd.ready):
                            m.d.sync += ph.eq(1)
                    with m.Elif(~eng.status.busy):
                        with m.If(eng.status.error):
                            m.d.comb += seq.stop.eq(1)
                            m.d.sync += [err.eq(TrainErr.ENGINE), running.eq(0), ph.eq(0)]
                        with m.Else():
                            m.d.comb += [ack.eq(1), seq.io_load.eq(1),
                                         seq.io_data.eq(eng.status.saturated)]
                with m.Case(Unit.FWD):
                    with m.If(~ph):
                        m.d.comb += pass_go.eq(1)
                        m.d.sync += [mode.eq(sub[:2]), ph.eq(1)]
                    with m.Elif(losses_left == 0):      # every sample's loss is in
                        m.d.comb += ack.eq(1)
                with m.Case(Unit.SMP):
                    with m.If(~sub[0]):
                        m.d.comb += [smp.seed_load.eq(1), ack.eq(1)]
                    with m.Elif(~ph):
                        m.d.comb += [smp.req.valid.eq(1), smp.req.payload.eq(1)]
                        with m.If(smp.req.ready):
                            m.d.sync += ph.eq(1)
                    with m.Else():
                        m.d.comb += smp.o.ready.eq(1)
                        with m.If(smp.o.valid):
                            m.d.comb += [ack.eq(1), seq.io_load.eq(1),
                                         seq.io_data.eq(smp.o.payload)]
                with m.Case(Unit.COEF):
                    with m.If(~ph):
                        m.d.comb += cu.i.valid.eq(1)
                        with m.If(cu.i.ready):
                            m.d.sync += ph.eq(1)
                    with m.Else():
                        m.d.comb += cu.o.ready.eq(1)
                        with m.If(cu.o.valid):
                            c = cu.o.payload.coef
                            m.d.comb += [ack.eq(1), seq.io_load.eq(1),
                                         seq.io_data.eq(Cat(c, cu.o.payload.clipped, c == 0))]
                with m.Case(Unit.LOGW):
                    # two log words: A's low half, then its high half
                    m.d.comb += [lmem_we.eq(1), lmem_addr.eq(Cat(ph, log_ptr[1:])),
                                 lmem_wd.eq(Mux(ph, sa[16:], sa[:16]))]
                    with m.If(~ph):
                        m.d.sync += ph.eq(1)
                    with m.Else():
                        m.d.comb += ack.eq(1)
                        m.d.sync += log_ptr.eq(log_ptr + 2)
                with m.Case(Unit.COPY):
                    # the weights -> the checkpoint: one word per rdata beat
                    with m.If(~ph):
                        m.d.comb += [ctl_cmd.eq(1), ctl_op.eq(EngineOp.READ.value)]
                        with m.If(eng.cmd.ready):
                            m.d.sync += [cpy.eq(0), ph.eq(1)]
                    with m.Else():
                        m.d.comb += [io_t.eq(1), cp_we.eq(eng.rdata.valid)]
                        with m.If(eng.rdata.valid):
                            m.d.sync += cpy.eq(cpy + 1)
                        with m.If((cpy == words) & ~eng.status.busy):
                            m.d.comb += ack.eq(1)
                with m.Case(Unit.WB):
                    # the checkpoint -> the weights: one word every other cycle (read, offer)
                    with m.If(~ph):
                        m.d.comb += [ctl_cmd.eq(1), ctl_op.eq(EngineOp.WRITE.value)]
                        with m.If(eng.cmd.ready):
                            m.d.sync += [cpy.eq(0), wv_r.eq(0), ph.eq(1)]
                    with m.Else():
                        m.d.comb += [wb_re.eq(1), t_wdata.eq(ck_data), t_wvalid.eq(wv_r)]
                        m.d.sync += wv_r.eq(cpy != words)
                        with m.If(wv_r & eng.wdata.ready):
                            m.d.sync += [cpy.eq(cpy + 1), wv_r.eq(0)]
                        with m.If((cpy == words) & ~eng.status.busy):
                            m.d.comb += ack.eq(1)
                with m.Case(Unit.FAIL):
                    m.d.comb += seq.stop.eq(1)
                    m.d.sync += [err.eq(sub[:3]), running.eq(0), done.eq(0), ph.eq(0)]

        # Log SPRAM: the controller's writes, or the host's reads (one in flight) -------------
        lr_wait = Signal(range(SPRAM_LATENCY + 1))
        lr_have = Signal()
        lg_req, lg_take = Signal(), Signal()
        lg_addr = Signal(14)
        lg_ready = ~lmem_we & (lr_wait == 0) & ~lr_have
        m.d.comb += [lmem.addr.eq(Mux(lmem_we, lmem_addr, lg_addr)),
                     lmem.we.eq(lmem_we), lmem.wdata.eq(lmem_wd),
                     lmem.re.eq(lg_req & lg_ready)]
        with m.If(lmem.re):
            m.d.sync += lr_wait.eq(SPRAM_LATENCY)
        with m.Elif(lr_wait != 0):
            m.d.sync += lr_wait.eq(lr_wait - 1)
            with m.If(lr_wait == 1):
                m.d.sync += lr_have.eq(1)
        with m.If(lg_take):
            m.d.sync += lr_have.eq(0)

        # Host FSM: the training commands ---------------------------------------------------------
        tb, sb = train_beats(), tstatus_beats()
        # The command's fields and checks are registered on acceptance, from the payload (no
        # copy of the 64-bit argument): start, count and kind, and the checks' flags.
        h_op = Signal(4)
        a_start, a_count, a_kind = hc.arg[:16], hc.arg[32:], hc.arg[24:26]
        h_kind = Signal(2)
        count_small = Signal()       # 1 <= count < 2^15
        h_end = Signal(18)           # start + 2 count (when count_small)
        stray_load, stray_log = Signal(), Signal()   # address bits LOAD / READ LOG must not set
        h_odd = Signal()             # READ LOG: an odd start
        count_tb, count_sb = Signal(), Signal()
        beats = Signal(16)
        haddr = Signal(16)
        hbeat = Signal(32)
        ts_i = Signal(range(sb + 1))    # the TSTATUS word
        ERR_ARG, ERR_UNSUP, ERR_OPCODE = int(Err.ARG), int(Err.UNSUPPORTED), int(Err.OPCODE)
        cycles_word = list(TSTATUS_FIELDS).index("cycles")

        def reject(code):
            m.d.sync += [herr.eq(1), herr_code.eq(code)]
            m.next = "IDLE"

        with m.FSM(name="host") as hfsm:
            m.d.comb += hbusy.eq(~hfsm.ongoing("IDLE"))
            with m.State("IDLE"):
                m.d.comb += h_idle.eq(1)
                with m.If(self.cmd.valid & ~pass_cmd):
                    m.d.sync += [h_op.eq(hc.op.as_value()), hsel.eq(1),
                                 herr.eq(0), herr_code.eq(0), h_kind.eq(a_kind),
                                 count_small.eq((a_count[:15] != 0) & (a_count[15:] == 0)),
                                 h_end.eq(a_start + (a_count[:15] << 1)), haddr.eq(a_start),
                                 beats.eq(a_count[:16]), ts_i.eq(0),
                                 stray_load.eq((hc.arg[16:24] != 0) | (hc.arg[26:32] != 0)),
                                 stray_log.eq(hc.arg[14:32] != 0), h_odd.eq(a_start[0]),
                                 count_tb.eq(a_count == tb), count_sb.eq(a_count == sb)]
                    with m.If(~hc.train):          # an engine command during a run
                        m.d.sync += [herr.eq(1), herr_code.eq(ERR_UNSUP)]
                    with m.Else():
                        m.next = "DISPATCH"
                        with m.If((hc.op.as_value() == TrainOp.LOAD) & (a_kind == LoadKind.COMMIT)
                                  & ~running):
                            # the data's tag: a TSTATUS word (no run: the sequencer is idle)
                            m.d.comb += [rf_hwe.eq(1), rf_w.eq(S["data_tag"]),
                                         rf_wd.eq(hc.arg[:24])]
                with m.Elif(self.cmd.valid & eng.cmd.ready):
                    m.d.sync += hsel.eq(0)
            with m.State("DISPATCH"):
                with m.Switch(h_op):
                    with m.Case(TrainOp.LOAD):
                        with m.If(running):
                            reject(ERR_UNSUP)
                        with m.Elif(h_kind == LoadKind.COMMIT):     # its tag is written
                            m.d.sync += loaded.eq(1)
                            m.next = "IDLE"
                        with m.Elif(h_kind == LoadKind.INVALIDATE):
                            m.d.sync += loaded.eq(0)
                            m.next = "IDLE"
                        with m.Elif(~count_small | stray_load
                                    | (h_end > Mux(h_kind == LoadKind.DATA,
                                                   DATA_CAPACITY_WORDS, F << b))):
                            reject(ERR_ARG)
                        with m.Else():
                            m.next = "LOAD"
                    with m.Case(TrainOp.TRAIN):
                        with m.If(running):
                            reject(ERR_UNSUP)
                        with m.Elif(~count_tb):
                            reject(ERR_ARG)
                        with m.Else():
                            m.next = "TRAIN"
                    with m.Case(TrainOp.TSTATUS):
                        with m.If(~count_sb):
                            reject(ERR_ARG)
                        with m.Else():
                            m.next = "TS_RD"
                    with m.Case(TrainOp.READ_LOG):
                        with m.If(~count_small | stray_log | h_odd
                                  | (h_end > SPRAM_BANK_WORDS)):
                            reject(ERR_ARG)
                        with m.Else():
                            m.next = "LOG_A"
                    with m.Case(TrainOp.STOP):
                        m.d.comb += stop_p.eq(1)
                        m.next = "IDLE"
                    with m.Default():
                        reject(ERR_OPCODE)
            with m.State("LOAD"):
                m.d.comb += [h_wtake.eq(1), h_wready.eq(1)]
                with m.If(self.wdata.valid):
                    m.d.sync += hbeat.eq(self.wdata.payload.as_value())
                    m.next = "LOAD1"
            # (the memories' addresses come from haddr itself, no adder: timing)
            with m.State("LOAD1"):
                m.d.comb += [ld_go.eq(1), ld_kind.eq(h_kind), ld_addr.eq(haddr),
                             ld_data.eq(hbeat[:16])]
                m.d.sync += haddr.eq(haddr + 1)
                m.next = "LOAD2"
            with m.State("LOAD2"):
                m.d.comb += [ld_go.eq(1), ld_kind.eq(h_kind), ld_addr.eq(haddr),
                             ld_data.eq(hbeat[16:])]
                m.d.sync += [haddr.eq(haddr + 1), beats.eq(beats - 1)]
                with m.If(beats == 1):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "LOAD"
            with m.State("TRAIN"):
                # each beat is a parameter register (the sequencer is idle: no run)
                m.d.comb += [h_wtake.eq(1), h_wready.eq(1), rf_w.eq(P_BASE + ts_i),
                             rf_wd.eq(self.wdata.payload.as_value()),
                             rf_hwe.eq(self.wdata.valid)]
                with m.If(self.wdata.valid):
                    m.d.sync += [ts_i.eq(ts_i + 1), beats.eq(beats - 1)]
                    with m.If(beats == 1):
                        m.next = "START"
            with m.State("START"):
                m.d.comb += seq.start.eq(1)
                m.d.sync += [done.eq(0), err.eq(0)]
                m.next = "START_W"
            with m.State("START_W"):
                # the program's checks: it either starts the run or stops with an error
                with m.If(running | ~seq.busy):
                    with m.If(err != 0):
                        m.d.sync += [herr.eq(1), herr_code.eq(ERR_ARG)]
                    m.next = "IDLE"
            # TSTATUS: word i is the flags, the cycle counter or register S_BASE + i (read when
            # the checkpoint's write-back does not hold the port; the sequencer waits)
            with m.State("TS_RD"):
                # not while the sequencer writes (its ST of the register would collide)
                m.d.comb += [rf_w.eq(S_BASE + ts_i), rf_hre.eq(~wb_re & ~seq.rf_we)]
                with m.If(~wb_re & ~seq.rf_we):
                    m.next = "TS_LATCH"
            with m.State("TS_LATCH"):
                m.d.sync += hbeat.eq(Mux(ts_i == 0, ts.as_value(),
                                         Mux(ts_i == cycles_word, run_cycles, ck_data[:32])))
                m.next = "TS_OUT"
            with m.State("TS_OUT"):
                m.d.comb += [h_rsrc.eq(1), h_rvalid.eq(1), h_rdata.eq(hbeat)]
                with m.If(self.rdata.ready):
                    m.d.sync += [ts_i.eq(ts_i + 1), beats.eq(beats - 1)]
                    with m.If(beats == 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "TS_RD"
            with m.State("LOG_A"):
                m.d.comb += [lg_req.eq(1), lg_addr.eq(haddr)]
                with m.If(lg_ready):
                    m.d.sync += haddr.eq(haddr + 1)
                    m.next = "LOG_AW"
            with m.State("LOG_AW"):
                with m.If(lr_have):
                    m.d.comb += lg_take.eq(1)
                    m.d.sync += hbeat[:16].eq(lmem.rdata)
                    m.next = "LOG_B"
            with m.State("LOG_B"):
                m.d.comb += [lg_req.eq(1), lg_addr.eq(haddr)]
                with m.If(lg_ready):
                    m.d.sync += haddr.eq(haddr + 1)
                    m.next = "LOG_BW"
            with m.State("LOG_BW"):
                with m.If(lr_have):
                    m.d.comb += lg_take.eq(1)
                    m.d.sync += hbeat[16:].eq(lmem.rdata)
                    m.next = "LOG_OUT"
            with m.State("LOG_OUT"):
                m.d.comb += [h_rsrc.eq(1), h_rvalid.eq(1), h_rdata.eq(hbeat)]
                with m.If(self.rdata.ready):
                    m.d.sync += beats.eq(beats - 1)
                    with m.If(beats == 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "LOG_A"
        return m
