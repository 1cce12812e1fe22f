"""The board's command port: host frames in, engine commands out, replies back.

:class:`SerialBridge` implements the byte protocol of :mod:`pezo.boards.protocol` (COBS-encoded
frames between zero delimiters with sequence number and CRC-16; replies with kind, data, status
word and CRC-8; duplicate suppression; an inter-byte timeout) in front of
:class:`pezo.hw.engine.PerturbEngine`. Frames are decoded as they arrive; the whole frame, WRITE
payload included, is received into a buffer and its length and CRC checked at its closing
delimiter, before the engine sees the command, so a corrupted frame never changes the engine and
no frame can begin inside another's payload.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.boards.protocol import (CRC16, CRC_INIT, HEADER_BYTES, MIN_FRAME, RSYNC, STATUS_OP,
                                  SYNC, UNKNOWN_OPCODE, Kind, TrainOp, beat_bytes, weight_bytes,
                                  write_beats)
from pezo.config import EngineConfig
from pezo.hw.common import NO_RW_CHECK, collision_read, one_hot_states
from pezo.hw.engine import PerturbEngine
from pezo.sim.engine import Op

__all__ = ["SerialBridge", "crc8_next"]


def crc8_next(crc, byte):
    """The CRC-8/ROHC register (:func:`pezo.boards.protocol.crc8`: polynomial 0x07 taken LSB
    first) after ``byte``, as an 8-bit expression (the bit-serial update unrolled over 8 bits)."""
    c = [crc[i] ^ byte[i] for i in range(8)]
    for _ in range(8):
        lsb = c[0]
        c = [c[1], c[2], c[3], c[4], c[5], c[6] ^ lsb, c[7] ^ lsb, lsb]     # >> 1, ^ 0xE0
    return Cat(*c)


class SerialBridge(wiring.Component):
    """Frames of bytes in, engine commands out; replies as bytes (:mod:`pezo.boards.protocol`).

    Parameters
    ----------
    config : EngineConfig
    timeout : int
        Clock cycles without a byte after which an incomplete frame is dropped (a TIMEOUT reply
        follows). :class:`pezo.boards.top.BoardTop` sets :data:`pezo.boards.protocol.
        TIMEOUT_BYTES` byte times.
    engine : wiring.Component or None
        The engine behind the bridge (default: a :class:`PerturbEngine` of ``config``); formal
        checks put a behavioural stand-in with the same ports here.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes from the host.
    o : Out(stream.Signature(8))
        Bytes to the host.
    overrun : In(1)
        A pulse from the receiver when it lost a byte: sets the status word's sticky ``overrun``
        bit (cleared by an accepted CLEAR).
    error : Out(1), saturated : Out(1)
        The engine's sticky flags (for LEDs).
    """

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))
    overrun: In(1)
    error: Out(1)
    saturated: Out(1)

    def __init__(self, config, timeout=4096, engine=None):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"Configuration must be an EngineConfig, not {config!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 16:
            raise ValueError(f"Timeout must be an integer number of cycles >= 16, not "
                             f"{timeout!r}")
        if config.weights == "stream":
            raise ValueError("The serial bridge does not carry STREAM (words in and rows out "
                             "in one command): an engine built with weights='stream' runs on "
                             "the golden model or in the Amaranth simulator (docs/scale.md)")
        self._cfg = config
        self._timeout = timeout
        # ``engine``: a component with PerturbEngine's ports in its place (the formal checks
        # put a behavioural stand-in there: pezo.formal)
        self._engine = PerturbEngine(config) if engine is None else engine
        #: The engine answers the training commands (:class:`pezo.boards.protocol.TrainOp`,
        #: frame opcodes 0x10-0x14): an :class:`pezo.hw.ontrain.OnChipTrainer`.
        self._train = bool(getattr(self._engine, "training_commands", False))
        #: Probes for formal checks (pezo.formal): a frame whose CRCs checked is being
        #: executed; its opcode is WRITE.
        self.formal = {"frame_ok": Signal(), "is_write": Signal(), "listening": Signal()}
        super().__init__()

    config = property(lambda self: self._cfg)
    timeout = property(lambda self: self._timeout)
    engine = property(lambda self: self._engine)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        m.submodules.engine = eng = self._engine
        wb, lanes, bb = weight_bytes(cfg), cfg.lanes, beat_bytes(cfg)
        max_beats = write_beats(cfg)
        buf_bytes = max_beats * bb
        # The frame buffer takes every decoded byte after the header (the payload and the CRC
        # behind it); bytes beyond it are counted, not stored (the frame is then too long).
        # (a power-of-two depth: yosys guards the write port of any other depth with an address
        # compare, which put a carry chain in front of the block RAM's write enable)
        buf_depth = 1 << (buf_bytes + 1).bit_length()
        # It is written while a frame arrives and read after it, in WDATA: in the training
        # design (built for area) its collisions are undefined (NO_RW_CHECK)
        m.submodules.buf = buf = memory.Memory(shape=8, depth=buf_depth, init=[],
                                               attrs=NO_RW_CHECK if self._train else None)
        bw, br = buf.write_port(), buf.read_port(transparent_for=())
        br_data = collision_read(m, br, bw, platform) if self._train else br.data
        m.submodules.fcrc = fcrc = CRC16.create()        # the frames' CRC-16 (amaranth.lib.crc)

        # Frame fields ---------------------------------------------------------------------------
        seq, op, arg = Signal(8), Signal(8), Signal(64)
        crc = Signal(8)                        # the reply's CRC-8
        eop = Signal(4)                        # the engine opcode (protocol.engine_opcode)
        is_w, is_r, is_q, is_clear, stateful = (Signal(name=n) for n in
                                                ("is_w", "is_r", "is_q", "is_clear", "stateful"))
        last_seq, last_valid = Signal(8), Signal()
        kind = Signal(3)
        overrun_r = Signal()
        idle = Signal(range(self._timeout + 1))
        etrain = Signal()                      # a training command (TrainOp)
        if self._train:
            m.d.comb += eng.cmd.payload.train.eq(etrain)
        m.d.comb += [eng.cmd.payload.op.as_value().eq(eop), eng.cmd.payload.arg.eq(arg),
                     self.error.eq(eng.status.error), self.saturated.eq(eng.status.saturated)]
        lost = Signal()                        # a byte was lost since the last complete frame
        m.d.comb += self.formal["is_write"].eq(eop == Op.WRITE)

        # Registered copies of the engine's handshake/status signals: the bridge's decisions do
        # not chain through the engine's control logic.
        est = eng.status
        busy_r, wready_r, rvalid_r = Signal(), Signal(), Signal()
        m.d.sync += [busy_r.eq(est.busy), wready_r.eq(eng.wdata.ready),
                     rvalid_r.eq(eng.rdata.valid)]
        # An executed CLEAR that the engine accepted (its error flag is then clear) clears the
        # overrun record too, in the status of its own reply already.
        cleared = Signal()
        m.d.comb += cleared.eq(is_clear & self.formal["frame_ok"] & ~est.error)
        status = Cat(est.error, est.error_code, est.saturated, est.filling, est.last_pass,
                     overrun_r & ~cleared, est.offset)
        status_reg = Signal(32)

        # beats still to transfer in WDATA / RDATA: an engine command moves at most its words
        # (the engine refuses more); a training command up to a frame's beats (LOAD, TRAIN) or
        # 2^15 - 1 (READ LOG; TSTATUS is 15), whatever the engine's size
        most = max(cfg.words, max_beats, (1 << 15) - 1) if self._train else cfg.words
        left = Signal(range(most + 1))
        done = Signal()                        # left == 0, registered
        wbeat = Signal(8 * bb)                 # WRITE: the beat being assembled
        wn = Signal(range(bb + 1))             # WRITE: bytes of the beat so far
        wfull = Signal()                       # WRITE: a whole beat is assembled
        ra = Signal(range(buf_bytes + 1))      # WRITE: next buffer byte to read
        rd_pending = Signal()                  # WRITE: a buffer read is in flight
        m.d.comb += [br.addr.eq(ra),
                     eng.wdata.payload.eq(
                         Cat(wbeat[j * 8 * wb:j * 8 * wb + cfg.w_bits] for j in range(lanes)))]
        ext = [Signal(signed(8 * wb), name=f"ext{j}") for j in range(lanes)]
        m.d.comb += [ext[j].eq(eng.rdata.payload[j]) for j in range(lanes)]   # sign-extend
        packed = Cat(*ext)
        rn = Signal(range(bb + 1))             # READ: bytes of the word still to send
        rword = Signal(8 * bb)                 # READ: the word taken from the engine, shifting out
        rready = Signal()                      # READ: rdata.ready, a flip-flop (timing)

        # Reply output; the reply CRC covers every byte but RSYNC and the CRC itself.
        on = Signal(range(5))                  # bytes sent in R_HDR / R_STAT
        data_sent = Signal()                   # DATA: header and data are out, status next
        obyte = Signal(8)
        ocrc = Signal()                        # this byte enters the reply CRC
        # The CRC takes each byte one cycle after it left (registered byte and enable): the XOR
        # network does not sit behind the output byte mux (timing; R_CRC0 waits for the last one).
        crc_byte, crc_en = Signal(8), Signal()
        m.d.sync += [crc_byte.eq(obyte), crc_en.eq(self.o.valid & self.o.ready & ocrc)]
        m.d.comb += self.o.payload.eq(obyte)

        st, goto = one_hot_states(m, ("HUNT", "RECV", "END0", "END1", "END2", "END", "VERDICT0",
                                      "VERDICT", "ISSUE",
                                      "ROUTE0", "ROUTE", "WDATA", "RDATA", "WAIT", "R_HDR",
                                      "R_STAT", "R_CRC0", "R_CRC"), init="HUNT")

        def reply(k):
            m.d.sync += kind.eq(k)

        # Receive ----------------------------------------------------------------------------------
        # HUNT discards bytes up to a delimiter (after reset and after a TIMEOUT); RECV takes the
        # bytes of a frame up to its closing delimiter. Both take a byte every cycle.
        # Stage 1, the COBS decoder: a code byte c announces c - 1 data bytes and, unless c is
        # 0xFF, a zero after them, which is yielded when the next code byte comes (a zero before
        # the closing delimiter is not part of the frame). One decoded byte at most per byte in,
        # registered (dv, db).
        # Stage 0 (timing): a byte is taken one cycle after it arrives, when whether it is the
        # delimiter or 0xFF is known from flip-flops (the compares ran into the state flags
        # through the decoder's conditions). The payload is stable while ``valid`` (a stream's
        # rule), so the flags registered in the cycle before describe the byte on offer.
        seen = Signal()                        # the byte on offer was there last cycle too
        delim, is_ff = Signal(), Signal()      # ... and is 0x00 / 0xFF
        byte = self.i.payload
        m.d.sync += [seen.eq(self.i.valid & ~self.i.ready), delim.eq(byte == SYNC),
                     is_ff.eq(byte == 0xFF)]
        m.d.comb += [self.formal["listening"].eq(st["HUNT"] | st["RECV"]),
                     self.i.ready.eq((st["HUNT"] | st["RECV"]) & seen)]
        i_valid = self.i.valid & seen          # a byte whose flags are ready
        take = Signal()                        # a byte of the frame (not a delimiter) arrives
        m.d.comb += take.eq(st["RECV"] & i_valid & ~delim)
        code_left = Signal(8)                  # data bytes still to come in this COBS block
        code_zero = Signal(init=1)             # code_left == 0, kept as a register (timing)
        is_one = Signal()                      # the byte on offer is 0x01 (registered)
        m.d.sync += is_one.eq(byte == 1)
        code_ff = Signal()                     # the block's code is 0xFF (no zero after it)
        code_first = Signal()                  # no code byte yet in this frame
        raw_n = Signal(range(MIN_FRAME + 1))   # bytes since the opening delimiter (saturating)
        dv, db = Signal(), Signal(8)           # the decoded byte, registered
        m.d.sync += dv.eq(0)
        with m.If(take):
            with m.If(raw_n != MIN_FRAME):
                m.d.sync += raw_n.eq(raw_n + 1)
            with m.If(code_zero):
                m.d.sync += [code_left.eq(byte - 1), code_zero.eq(is_one), code_ff.eq(is_ff),
                             code_first.eq(0), db.eq(0), dv.eq(~code_first & ~code_ff)]
            with m.Else():
                m.d.sync += [code_left.eq(code_left - 1), code_zero.eq(code_left == 1),
                             db.eq(byte), dv.eq(1)]
        cobs_ok = Signal()                     # the last COBS block was complete at the delimiter
        with m.Elif(st["HUNT"] | (st["RECV"] & i_valid & delim)):
            m.d.sync += [raw_n.eq(0), code_left.eq(0), code_zero.eq(1), code_ff.eq(1),
                         code_first.eq(1), cobs_ok.eq(code_zero)]
        # Stage 2: decoded bytes into the header registers, the frame buffer and the CRC. ``n``
        # counts decoded bytes (saturating beyond the longest frame).
        n_max = HEADER_BYTES + buf_bytes + 2 + 1
        n = Signal(range(n_max + 1))
        # They are reset a cycle after a frame's first byte (a code byte, which yields nothing;
        # the first decoded byte comes a cycle later still), so they hold the closed frame while
        # END* judge it. The buffer's address and enable are registers (wa, pay): every decoded
        # byte from the 11th on is written, up to the buffer's end.
        first = Signal()
        m.d.sync += first.eq(take & (raw_n == 0))
        wa = Signal(range(buf_depth))
        pay = Signal()                         # the next decoded byte goes to the buffer
        m.d.comb += [fcrc.data.eq(db), fcrc.valid.eq(dv), fcrc.start.eq(first),
                     bw.addr.eq(wa), bw.data.eq(db), bw.en.eq(dv & pay)]
        # Where the next decoded byte goes, as one-hot flags kept beside n (registers: the
        # 64-bit argument register's enable does not hang off a compare on n).
        at_seq, at_op, at_arg = Signal(), Signal(), Signal()
        with m.If(first):
            m.d.sync += [wa.eq(0), pay.eq(0), n.eq(0), seq.eq(0),
                         at_seq.eq(1), at_op.eq(0), at_arg.eq(0)]
        with m.Elif(dv):
            m.d.sync += [at_seq.eq(0), at_op.eq(at_seq)]
            with m.If(at_op):
                m.d.sync += at_arg.eq(1)
            with m.If(n == HEADER_BYTES - 1):
                m.d.sync += [pay.eq(1), at_arg.eq(0)]
            with m.If(pay):
                m.d.sync += wa.eq(wa + 1)
                with m.If(wa == buf_bytes + 1):
                    m.d.sync += pay.eq(0)
            with m.If(n != n_max):
                m.d.sync += n.eq(n + 1)
        with m.If(dv & at_seq):
            m.d.sync += seq.eq(db)
        with m.If(dv & at_op):
            m.d.sync += op.eq(db)
        with m.If(dv & at_arg):
            m.d.sync += arg.eq(Cat(arg[8:], db))
        # The inter-byte timer runs while a frame has begun (one assignment structure: separate
        # sites per state would chain their multiplexers).
        receiving = Signal()
        idle_hit = Signal()                    # idle reaches the timeout next cycle (registered)
        timed_out = Signal()
        m.d.comb += [receiving.eq(st["RECV"] & (raw_n != 0)),
                     timed_out.eq(receiving & ~self.i.valid & idle_hit)]
        with m.If(~receiving | self.i.valid):
            m.d.sync += [idle.eq(0), idle_hit.eq(0)]
        with m.Else():
            m.d.sync += [idle.eq(idle + 1), idle_hit.eq(idle == self._timeout - 2)]
        with m.If(self.overrun):
            m.d.sync += [overrun_r.eq(1), lost.eq(1)]
        # The reply CRC-8: reset at a reply's start; reply bytes enter it a cycle after they left.
        with m.If(st["R_HDR"] & (on == 0)):
            m.d.sync += crc.eq(CRC_INIT)
        with m.Elif(crc_en):
            m.d.sync += crc.eq(crc8_next(crc, crc_byte))
        hunt_next = Signal()                   # go to HUNT after this reply (a TIMEOUT)
        with m.If(st["HUNT"]):
            m.d.sync += [self.formal["frame_ok"].eq(0), hunt_next.eq(0), data_sent.eq(0)]
            with m.If(i_valid & delim):
                goto("HUNT", "RECV")
        with m.If(st["RECV"]):
            m.d.sync += [self.formal["frame_ok"].eq(0), data_sent.eq(0)]
            with m.If(timed_out):
                m.d.sync += hunt_next.eq(1)
                goto("RECV", "WAIT")
            with m.Elif(i_valid & delim & (raw_n == MIN_FRAME)):
                goto("RECV", "END0")           # shorter: noise between frames, no reply
        # END0: the header's verdicts (the header was decoded long before; the last decoded byte
        # reaches n and the CRC in this cycle). END1: the length the header asks for, and the CRC;
        # END2: the length against it; END decides from flip-flops only (timing).
        crc_ok, w_fits, len_ok = Signal(), Signal(), Signal()
        need = Signal(range(n_max + 1))
        prod = Signal(range(max_beats * bb + 1))
        with m.If(st["END0"]):
            count = arg[32:]
            nb = max_beats.bit_length()
            fits = (count[:nb] != 0) & (count[nb:] == 0) & (count[:nb] <= max_beats)
            w_op = op == Op.WRITE
            r_op = op == Op.READ
            quiet = (op != Op.NOP) & (op != Op.READ) & (op != STATUS_OP)
            known = op < 16
            if self._train:
                # the training commands: LOAD and TRAIN carry a payload like WRITE, TSTATUS and
                # READ LOG answer with data like READ and are never duplicates
                t_op = (op[4:] == TrainOp.LOAD >> 4) & (op[:4] <= max(TrainOp) & 0xF)
                m.d.sync += etrain.eq(t_op)
                w_op = w_op | (t_op & ((op[:4] == TrainOp.LOAD & 0xF)
                                       | (op[:4] == TrainOp.TRAIN & 0xF)))
                t_r = t_op & ((op[:4] == TrainOp.TSTATUS & 0xF)
                              | (op[:4] == TrainOp.READ_LOG & 0xF))
                r_op = r_op | t_r
                quiet = quiet & ~t_r
                known = known | t_op
            m.d.sync += [eop.eq(Mux(known, op[:4], UNKNOWN_OPCODE)),
                         is_w.eq(w_op), is_r.eq(r_op), is_q.eq(op == STATUS_OP),
                         is_clear.eq(op == Op.CLEAR),
                         stateful.eq(quiet),
                         w_fits.eq(w_op & fits), prod.eq(count[:nb] * bb)]
            with m.If(w_op & ~fits):
                # too long for one frame: bit 63 makes the count impossible (rejected with ARG)
                m.d.sync += arg[63].eq(1)
            goto("END0", "END1")
        with m.If(st["END1"]):
            m.d.sync += [need.eq(HEADER_BYTES + 2 + Mux(w_fits, prod, 0)),
                         crc_ok.eq(fcrc.match_detected)]
            goto("END1", "END2")
        with m.If(st["END2"]):
            m.d.sync += len_ok.eq(n == need)
            goto("END2", "END")
        with m.If(st["END"]):
            with m.If(lost | ~cobs_ok | ~crc_ok | ~len_ok):
                # a byte was lost since the last frame (this one may hold the remains of two),
                # or the frame is malformed, of the wrong length or corrupted: not executed
                with m.If(~self.overrun):
                    m.d.sync += lost.eq(0)
                goto("END", "WAIT")
            with m.Else():
                goto("END", "VERDICT0")
        dup = Signal()                          # VERDICT0's check, registered for VERDICT
        with m.If(st["VERDICT0"]):
            m.d.sync += dup.eq(stateful & last_valid & (seq == last_seq))
            goto("VERDICT0", "VERDICT")
        with m.If(st["VERDICT"]):
            with m.If(is_q):
                m.d.sync += [last_seq.eq(seq), last_valid.eq(1)]
                goto("VERDICT", "WAIT")
            with m.Elif(dup):
                goto("VERDICT", "WAIT")
            with m.Else():
                m.d.sync += [last_seq.eq(seq), last_valid.eq(1), self.formal["frame_ok"].eq(1)]
                goto("VERDICT", "ISSUE")
        # The reply kind: one assignment structure.
        with m.If(timed_out):
            reply(Kind.TIMEOUT)
        with m.Elif(st["END"]):
            reply(Mux(lost, Kind.LOST, Kind.BAD_CRC))     # used only when the frame is dropped
        with m.Elif(st["VERDICT"]):
            reply(Mux(dup & ~is_q, Kind.DUPLICATE, Kind.DONE))
        with m.Elif(st["ROUTE"] & is_r & rvalid_r):
            reply(Kind.DATA)

        # Execute ----------------------------------------------------------------------------------
        with m.If(st["ISSUE"]):
            m.d.comb += eng.cmd.valid.eq(1)
            with m.If(eng.cmd.ready):
                goto("ISSUE", "ROUTE0")
        with m.If(st["ROUTE0"]):
            # The engine checks the command in the next cycle (busy is high from then on); the
            # bridge sees the engine's handshake and busy signals through registers (timing),
            # so it waits one more cycle before it looks at them.
            goto("ROUTE0", "ROUTE")
        with m.If(st["ROUTE"]):
            # A WRITE or READ the engine takes shows as wdata.ready / rdata.valid, one it
            # rejects as busy falling.
            with m.If(is_w & wready_r):
                m.d.sync += [left.eq(arg[32:32 + len(left)]), wn.eq(0), done.eq(0),
                             wfull.eq(0), ra.eq(0), rd_pending.eq(0)]
                goto("ROUTE", "WDATA")
            with m.Elif(is_r & rvalid_r):
                m.d.sync += [left.eq(arg[32:32 + len(left)]), rn.eq(0), done.eq(0),
                             rready.eq(1)]
                goto("ROUTE", "R_HDR")
            with m.Elif(~busy_r | ~(is_w | is_r)):
                goto("ROUTE", "WAIT")
        # A beat is offered exactly while it is assembled (wfull is set only in WDATA and is
        # clear when WDATA ends), so the engine's wdata.valid is that flip-flop itself (timing:
        # it enables the engine's write counters).
        m.d.comb += eng.wdata.valid.eq(wfull)
        with m.If(st["WDATA"]):
            # Bytes come from the frame buffer (one read per two cycles); wfull / done are
            # registers: the handshakes with the engine are decided from flip-flops only.
            with m.If(done):
                goto("WDATA", "WAIT")
            with m.Elif(wfull):
                with m.If(eng.wdata.ready):
                    m.d.sync += [wn.eq(0), wfull.eq(0), left.eq(left - 1), done.eq(left == 1)]
            with m.Elif(rd_pending):
                m.d.sync += [wbeat.eq(Cat(wbeat[8:], br_data)), wn.eq(wn + 1),
                             wfull.eq(wn == bb - 1), rd_pending.eq(0)]
            with m.Else():
                m.d.sync += [ra.eq(ra + 1), rd_pending.eq(1)]
        with m.If(st["RDATA"]):
            # One word register: the engine's next word is taken (rready, a flip-flop: the
            # engine's read loop sees a register as its ready) only when the bytes of the previous
            # one are all out.
            m.d.comb += eng.rdata.ready.eq(rready)
            with m.If(eng.rdata.valid & rready):
                m.d.sync += [rword.eq(packed), rn.eq(bb), left.eq(left - 1),
                             done.eq(left == 1), rready.eq(0)]
            with m.Elif(rn != 0):
                m.d.comb += [self.o.valid.eq(1), ocrc.eq(1)]
                with m.If(self.o.ready):
                    m.d.sync += [rword.eq(rword >> 8), rn.eq(rn - 1),
                                 rready.eq((rn == 1) & ~done)]
            with m.Elif(done):
                m.d.sync += data_sent.eq(1)
                goto("RDATA", "WAIT")
        with m.If(st["WAIT"]):
            with m.If(~busy_r):
                m.d.sync += status_reg.eq(status)
                with m.If(cleared):
                    m.d.sync += overrun_r.eq(self.overrun)
                with m.If(data_sent):
                    goto("WAIT", "R_STAT")
                with m.Else():
                    goto("WAIT", "R_HDR")

        # Reply ------------------------------------------------------------------------------------
        # ``on`` counts the bytes of the header (3) and of the status (4); one structure.
        with m.If((st["R_HDR"] | st["R_STAT"]) & self.o.ready):
            m.d.sync += on.eq(Mux(st["R_HDR"] & (on == 2), 0, on + 1))
        with m.Elif(~st["R_HDR"] & ~st["R_STAT"]):
            m.d.sync += on.eq(0)
        with m.If(st["R_HDR"]):
            m.d.comb += [self.o.valid.eq(1), ocrc.eq(on != 0)]
            with m.If(self.o.ready):
                with m.If(on == 2):
                    with m.If(kind == Kind.DATA):
                        goto("R_HDR", "RDATA")
                    with m.Else():
                        goto("R_HDR", "R_STAT")
        with m.If(st["R_STAT"]):
            m.d.comb += [self.o.valid.eq(1), ocrc.eq(1)]
            with m.If(self.o.ready):
                m.d.sync += status_reg.eq(status_reg >> 8)
                with m.If(on == 3):
                    goto("R_STAT", "R_CRC0")
        with m.If(st["R_CRC0"]):
            goto("R_CRC0", "R_CRC")                     # the last status byte enters the CRC
        with m.If(st["R_CRC"]):
            m.d.comb += self.o.valid.eq(1)
            with m.If(self.o.ready):
                with m.If(hunt_next):
                    goto("R_CRC", "HUNT")
                with m.Else():
                    goto("R_CRC", "RECV")
        # The output byte: an AND-OR over one-hot selects (the sources are registers and the
        # selects one LUT each), not a chain of per-state multiplexers (timing).
        sel = [(st["R_HDR"] & (on == 0), Const(RSYNC, 8)), (st["R_HDR"] & (on == 1), seq),
               (st["R_HDR"] & (on == 2), kind), (st["R_STAT"], status_reg[:8]),
               (st["RDATA"], rword[:8]), (st["R_CRC"], crc)]
        wide = [(sel_i, Cat(v, Const(0, 8))) for sel_i, v in sel]   # each source, 8+ bits
        m.d.comb += obyte.eq(Cat(*[Cat(*[sel_i & v[b] for sel_i, v in wide]).any()
                                   for b in range(8)]))
        return m
