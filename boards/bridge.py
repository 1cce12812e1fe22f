"""Byte protocol between a serial port and the engine (the board's command port).

Host -> board, one frame per command (little-endian):

* 1 byte: the engine opcode (:class:`pezo.sim.engine.Op`), or 0x0F for a status query;
* 8 bytes: the 64-bit argument;
* WRITE only: ``count * m`` weights, each ``ceil(b / 8)`` bytes two's complement (the host must
  send values that fit b bits; :class:`pezo.host.engine.EngineClient` checks).

Board -> host, for every frame once the engine is idle again: READ data first (``count * m``
weights, sign-extended to ``ceil(b / 8)`` bytes each), then a 4-byte status word: byte 0 =
error | error_code << 1 | saturated << 3 | filling << 4 | last_pass << 5; bytes 1-3 = offset.
A WRITE or READ whose argument the engine rejects carries no data either way.
"""

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.config import EngineConfig
from pezo.hw.common import one_hot_states
from pezo.hw.engine import PerturbEngine
from pezo.sim.engine import Op

__all__ = ["SerialBridge", "STATUS_QUERY", "weight_bytes"]

STATUS_QUERY = 0x0F


def weight_bytes(cfg) -> int:
    return -(-cfg.w_bits // 8)


class SerialBridge(wiring.Component):
    """Frames of bytes in, engine commands out; replies (data, status) as bytes.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes from the host.
    o : Out(stream.Signature(8))
        Bytes to the host.
    error : Out(1), saturated : Out(1)
        The engine's sticky flags (for LEDs).
    """

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))
    error: Out(1)
    saturated: Out(1)

    def __init__(self, config):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"Configuration must be an EngineConfig, not {config!r}")
        self._cfg = config
        super().__init__()

    config = property(lambda self: self._cfg)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        m.submodules.engine = eng = PerturbEngine(cfg)
        wb = weight_bytes(cfg)
        lanes = cfg.lanes
        beat_bytes = lanes * wb

        frame = Signal(72)
        nbytes = Signal(range(max(beat_bytes, 9) + 1))
        op = frame[:8]
        m.d.comb += [eng.cmd.payload.op.as_value().eq(op[:4]), eng.cmd.payload.arg.eq(frame[8:]),
                     self.error.eq(eng.status.error), self.saturated.eq(eng.status.saturated)]

        wbeat = Signal(8 * beat_bytes)          # WRITE: the beat being assembled
        beat = Signal(8 * beat_bytes)           # READ: the word being serialised
        wn = Signal(range(beat_bytes + 1))      # WRITE: bytes of the beat so far
        rn = Signal(range(beat_bytes + 1))      # READ: bytes still to send
        m.d.comb += eng.wdata.payload.eq(
            Cat(wbeat[j * 8 * wb:j * 8 * wb + cfg.w_bits] for j in range(lanes)))
        ext = [Signal(signed(8 * wb), name=f"ext{j}") for j in range(lanes)]
        m.d.comb += [ext[j].eq(eng.rdata.payload[j]) for j in range(lanes)]   # sign-extend
        packed = Cat(*ext)
        est = eng.status
        status = Cat(est.error, est.error_code, est.saturated, est.filling, est.last_pass,
                     Const(0, 1), est.offset)
        status_reg = Signal(32)

        # Registered copies of the engine's handshake/status signals: the bridge's decisions do
        # not chain through the engine's control logic.
        busy_r, wready_r, rvalid_r = Signal(), Signal(), Signal()
        m.d.sync += [busy_r.eq(est.busy), wready_r.eq(eng.wdata.ready),
                     rvalid_r.eq(eng.rdata.valid)]
        left = Signal(range(cfg.words + 1))    # beats still to transfer in WDATA / RDATA
        done = Signal()                        # left == 0, registered
        wfull = Signal()                       # WDATA: a whole beat is assembled
        rword = Signal(8 * beat_bytes)         # RDATA: the word taken from the engine
        rword_v = Signal()
        rready = Signal()                      # RDATA: rdata.ready, a flip-flop (timing)
        is_w, is_r, is_q = Signal(), Signal(), Signal()    # the frame's opcode, decoded

        st, goto = one_hot_states(m, ("CMD", "ISSUE", "ROUTE0", "ROUTE", "WDATA", "RDATA", "WAIT",
                                      "STATUS"), init="CMD")

        with m.If(st["CMD"]):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [frame.eq(Cat(frame[8:], self.i.payload)), nbytes.eq(nbytes + 1)]
                with m.If(nbytes == 8):
                    nxt = frame[8:16]      # the opcode byte once this last byte is in
                    m.d.sync += [nbytes.eq(0), is_w.eq(nxt == Op.WRITE),
                                 is_r.eq(nxt == Op.READ), is_q.eq(nxt == STATUS_QUERY)]
                    goto("CMD", "ISSUE")
        with m.If(st["ISSUE"]):
            with m.If(is_q):
                goto("ISSUE", "WAIT")
            with m.Else():
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
                m.d.sync += [left.eq(frame[40:40 + len(left)]), wn.eq(0), done.eq(0),
                             wfull.eq(0)]
                goto("ROUTE", "WDATA")
            with m.Elif(is_r & rvalid_r):
                m.d.sync += [left.eq(frame[40:40 + len(left)]), rn.eq(0), done.eq(0),
                             rword_v.eq(0), rready.eq(1)]
                goto("ROUTE", "RDATA")
            with m.Elif(~busy_r | ~(is_w | is_r)):
                goto("ROUTE", "WAIT")
        with m.If(st["WDATA"]):
            # wfull / rword_v / done are registers: the handshakes with the engine are decided
            # from flip-flops only.
            with m.If(done):
                goto("WDATA", "WAIT")
            with m.Elif(wfull):
                m.d.comb += eng.wdata.valid.eq(1)
                with m.If(eng.wdata.ready):
                    m.d.sync += [wn.eq(0), wfull.eq(0), left.eq(left - 1), done.eq(left == 1)]
            with m.Else():
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [wbeat.eq(Cat(wbeat[8:], self.i.payload)),
                                 wn.eq(wn + 1), wfull.eq(wn == beat_bytes - 1)]
        with m.If(st["RDATA"]):
            # rready is high exactly while no word is held and words remain (it is only ever
            # set in RDATA): the engine's read loop sees a flip-flop as its ready.
            m.d.comb += eng.rdata.ready.eq(rready)
            with m.If(eng.rdata.valid & rready):
                m.d.sync += [rword.eq(packed), rword_v.eq(1), left.eq(left - 1),
                             done.eq(left == 1), rready.eq(0)]
            with m.If(rn != 0):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(beat[:8])]
                with m.If(self.o.ready):
                    m.d.sync += [beat.eq(beat >> 8), rn.eq(rn - 1)]
            with m.Elif(rword_v):
                m.d.sync += [beat.eq(rword), rn.eq(beat_bytes), rword_v.eq(0),
                             rready.eq(~done)]
            with m.Elif(done):
                goto("RDATA", "WAIT")
        with m.If(st["WAIT"]):
            with m.If(~busy_r):
                m.d.sync += [status_reg.eq(status), nbytes.eq(0)]
                goto("WAIT", "STATUS")
        with m.If(st["STATUS"]):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(status_reg[:8])]
            with m.If(self.o.ready):
                m.d.sync += [status_reg.eq(status_reg >> 8), nbytes.eq(nbytes + 1)]
                with m.If(nbytes == 3):
                    m.d.sync += nbytes.eq(0)
                    goto("STATUS", "CMD")
        return m
