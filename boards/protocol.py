"""The board's command link, owned once: frames, replies, status word, CRC, and a reference model.

The host talks to the engine on the board through :class:`pezo.boards.bridge.SerialBridge` over an
8N1 UART. This module is the single definition of the byte protocol; the bridge's hardware, its
tests, the host's :class:`pezo.host.serial.SerialTransport` and docs/protocol.md follow it.

Host -> board, one **frame** per command, COBS-encoded between two delimiters::

    0x00  COBS( SEQ  OP  ARG[8]  [PAYLOAD[n]]  CRC16[2] )  0x00

* ``SYNC`` = 0x00 delimits frames, and **never occurs inside one**: the frame body is sent in
  Consistent Overhead Byte Stuffing (COBS; Cheshire and Baker 1999), which removes every zero byte
  from it at a cost of one byte per 254 (two bytes for the longest frame). A frame boundary can
  therefore not be found inside a payload, whatever the payload holds: a complete frame hidden in
  a WRITE's weights is data, never a command. The leading delimiter closes whatever the line held
  before (junk, the remains of a dropped frame); between frames any number of delimiters may
  come.
* ``SEQ``: the host's sequence number (0-255, +1 per new frame; a retry repeats it).
* ``OP``: an engine opcode (:class:`pezo.sim.engine.Op`, 0-14) or ``STATUS`` (0x80, answered by
  the bridge). Any other byte reaches the engine as opcode 15 (:func:`engine_opcode`), which the
  engine rejects with ``Err.OPCODE``: no byte value aliases onto a command.
* ``ARG``: the 64-bit argument, little-endian.
* ``PAYLOAD``: WRITE only, when 1 <= count <= :func:`write_beats`: ``count * m`` weights, each
  :func:`weight_bytes` bytes two's complement, little-endian. Otherwise empty (a WRITE whose
  count exceeds :func:`write_beats` reaches the engine with bit 63 of its argument set, an
  impossible count, and is rejected with ARG).
* ``CRC16``: CRC-16/X-25 (also called IBM-SDLC, HDLC's FCS: polynomial 0x1021 taken LSB first
  like the UART, initial value 0xFFFF, final XOR 0xFFFF; :data:`CRC16`, check value of
  b"123456789" 0x906E), little-endian, over ``SEQ`` through ``PAYLOAD``.

The bridge decodes the frame as it arrives, buffers it whole and executes it only when, at its
closing delimiter, the COBS blocks are complete, its length is exactly the length its header asks
for (12 bytes, plus the payload of a WRITE) and the CRC checks: *before* anything reaches the
engine, so a corrupted frame is never applied. A frame that fails is answered BAD_CRC. Between
the delimiters, a frame of fewer than :data:`MIN_FRAME` bytes (less than the shortest frame can
encode to) is noise and is dropped without a reply. Nothing is answered before a frame's closing
delimiter, so the bridge takes every byte of a frame as it comes (a reply never overlaps the
frame it answers).

Board -> host, one **reply** per frame (or per incomplete frame, see TIMEOUT)::

    RSYNC  SEQ  KIND  DATA[k]  STATUS[4]  CRC

* ``RSYNC`` = 0x5A; ``SEQ`` echoes the frame's; ``CRC`` (CRC-8/ROHC, :func:`crc8`) covers
  ``SEQ`` through ``STATUS``. The ``SEQ`` of a frame that is not executed (BAD_CRC, TIMEOUT,
  LOST) is the frame's first decoded byte as it arrived, or 0 when none did
  (:func:`rejected_seq`): it may be wrong, and a host only ever resends on such a reply, which is
  always safe; DONE, DATA and DUPLICATE come only from frames whose CRC checked.
* ``KIND`` (:class:`Kind`): DONE (executed; the status tells whether the engine accepted it), DATA
  (an accepted READ: ``count * m`` weights follow, sign-extended to :func:`weight_bytes` bytes),
  BAD_CRC (malformed, wrong length or wrong CRC: discarded), TIMEOUT (a frame stopped arriving:
  discarded), DUPLICATE (``SEQ`` equals the last executed frame's and the command changes state:
  not executed again, the status is current), LOST (the receiver dropped a byte since the
  previous complete frame: this frame may be made of the remains of others, so it is
  discarded).
* ``STATUS``: :func:`status_bytes` - byte 0 = error | error_code << 1 | saturated << 3 |
  filling << 4 | last_pass << 5 | overrun << 7, bytes 1-3 = pregen pool offset.

**Link rules.** One frame in flight: the host sends the next frame only after the previous reply
(the bridge takes bytes only while it receives a frame; the UART holds one more byte, and a byte
beyond that is lost and sets ``overrun`` in every later status until an accepted CLEAR). The first
frame of :data:`MIN_FRAME` bytes or more that closes after a lost byte is answered LOST and not
executed (it may hold the remains of two frames). Because the bridge answers only after a frame's
closing delimiter, a frame resent after LOST arrives whole and is executed: recovery takes one
resend for every frame kind. An incomplete frame is dropped after :data:`TIMEOUT_BYTES` byte
times without a byte (a TIMEOUT reply follows), and the bridge then discards bytes up to the next
delimiter, so the rest of a frame that arrives late is never read as a frame. A lost reply is
recovered by resending the same frame with the same ``SEQ``: if the first copy was executed, the
reply is DUPLICATE and the command is not applied twice. NOP, READ and STATUS are never treated as
duplicates (re-running them changes nothing); a host starts with a NOP so that its first ``SEQ``
cannot collide with an earlier session's.
"""

from enum import IntEnum

from amaranth.hdl import Shape
from amaranth.lib.crc import catalog as crc_catalog
from cobs import cobs
import numpy as np

from pezo.hw.ontrain import TrainOp as _HwTrainOp, train_beats, train_layout, tstatus_layout
from pezo.sim.engine import STATUS, EngineModel, Op

__all__ = ["CRC_INIT", "CRC16", "MIN_FRAME", "SYNC", "crc16", "cobs_encode", "rejected_seq", "frame_length", "RSYNC", "STATUS_OP", "UNKNOWN_OPCODE", "Kind", "MAX_WRITE_BYTES",
           "TIMEOUT_BYTES", "crc8", "weight_bytes", "beat_bytes", "write_beats", "engine_opcode",
           "changes_state", "payload_beats", "encode_frame", "encode_weights", "decode_weights",
           "status_bytes", "decode_status", "encode_reply", "reply_length", "decode_reply",
           "BridgeModel", "ProtocolError", "TrainOp", "words_rows", "rows_words", "train_rows",
           "decode_tstatus"]

#: The frame delimiter: never inside a (COBS-encoded) frame.
SYNC = 0x00
RSYNC = 0x5A
STATUS_OP = 0x80
#: The 4-bit engine opcode every non-engine opcode byte becomes (no engine command has it).
UNKNOWN_OPCODE = 0x0F
#: The largest WRITE payload one frame carries (the bridge's frame buffer).
MAX_WRITE_BYTES = 256
#: Inter-byte timeout of an incomplete frame, in byte times (10 bit times each).
TIMEOUT_BYTES = 256
#: Bytes of a frame header: SEQ, OP, ARG[8].
HEADER_BYTES = 10
#: The shortest frame between its delimiters: a header and its CRC (12 bytes) encode to 13 or more.
MIN_FRAME = HEADER_BYTES + 2 + 1
#: The frames' CRC: CRC-16/X-25 on 8-bit words (amaranth.lib.crc, whose Processor the bridge
#: instantiates from the same parameters).
CRC16 = crc_catalog.CRC16_X25(data_width=8)

assert UNKNOWN_OPCODE not in {int(o) for o in Op}


class TrainOp(IntEnum):
    """Frame opcode bytes of the training design's commands (docs/on_device.md): answered by
    :class:`pezo.hw.ontrain.OnChipTrainer` behind the bridge, whose 4-bit opcode is the low
    nibble (:class:`pezo.hw.ontrain.TrainOp`). Any other board answers them as unknown opcodes.

    * LOAD: arg = start word [0:16] | kind [24:26] << 24 | count << 32; DATA / TABLE kinds
      carry ``count`` beats of two 16-bit words (``words_rows``); COMMIT / INVALIDATE none.
    * TRAIN: count = :func:`pezo.hw.ontrain.train_beats`; payload: :func:`train_rows`.
    * TSTATUS: count = :func:`pezo.hw.ontrain.tstatus_beats`; DATA reply: :func:`decode_tstatus`.
    * READ_LOG: arg = start word (even) | count << 32; DATA reply: 2 log words per beat.
    * STOP: the run ends after its current step.
    """
    LOAD = 0x10 | _HwTrainOp.LOAD
    TRAIN = 0x10 | _HwTrainOp.TRAIN
    TSTATUS = 0x10 | _HwTrainOp.TSTATUS
    READ_LOG = 0x10 | _HwTrainOp.READ_LOG
    STOP = 0x10 | _HwTrainOp.STOP


class Kind(IntEnum):
    DONE = 0
    DATA = 1
    BAD_CRC = 2
    TIMEOUT = 3
    DUPLICATE = 4
    LOST = 5


class ProtocolError(ValueError):
    """A reply that does not follow the protocol (bad sync, CRC, length or sequence)."""


#: CRC-8/ROHC: polynomial x^8 + x^2 + x + 1 (0x07), initial value 0xFF, bits taken LSB first (the
#: UART's order, so a burst of up to 8 bits on the line is always caught), no final XOR.
CRC_INIT = 0xFF


def _crc_table():
    table = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ 0xE0 if c & 1 else c >> 1       # 0xE0: 0x07 bit-reversed
        table.append(c)
    return table


_CRC = _crc_table()


def crc8(data, crc=CRC_INIT):
    """CRC-8/ROHC of ``data`` (check value of b"123456789": 0xD0); appending it gives 0."""
    for b in bytes(data):
        crc = _CRC[crc ^ b]
    return crc


def crc16(data) -> int:
    """CRC-16/X-25 of ``data`` (check value of b"123456789": 0x906E); a frame carries it
    little-endian after the bytes it covers."""
    return CRC16.compute(bytes(data))


def frame_length(payload_bytes=0) -> int:
    """The most bytes a frame with ``payload_bytes`` of payload takes on the line: the body
    (header, payload, CRC-16), COBS's code bytes (one, plus one per 254 bytes of a zero-free
    run) and the two delimiters. Exact for bodies of at most 254 bytes."""
    body = HEADER_BYTES + int(payload_bytes) + 2
    return body + 1 + body // 254 + 2


def cobs_encode(body) -> bytes:
    """``body`` between two :data:`SYNC` delimiters, COBS-encoded (no zero byte inside)."""
    return bytes([SYNC]) + cobs.encode(bytes(body)) + bytes([SYNC])


def rejected_seq(raw) -> int:
    """The ``SEQ`` a reply to a frame that is not executed carries: the first byte the COBS
    decoder yields from ``raw`` (the bytes after the opening delimiter), 0 when it yields none
    yet. A first code byte of 1 yields a zero first; a larger one, the byte after it."""
    return raw[1] if len(raw) >= 2 and raw[0] > 1 else 0


def weight_bytes(cfg) -> int:
    """Bytes per weight on the wire: ceil(w_bits / 8)."""
    return -(-cfg.w_bits // 8)


def beat_bytes(cfg) -> int:
    """Bytes per memory word (m weights) on the wire."""
    return cfg.lanes * weight_bytes(cfg)


def write_beats(cfg) -> int:
    """The most words one WRITE frame carries: the frame buffer holds ``MAX_WRITE_BYTES`` (at
    least one word)."""
    return max(1, MAX_WRITE_BYTES // beat_bytes(cfg))


def engine_opcode(op_byte) -> int:
    """The 4-bit opcode the engine receives for frame opcode byte ``op_byte``: the byte itself
    for 0-15, :data:`UNKNOWN_OPCODE` for any other byte (STATUS never reaches the engine)."""
    op_byte = int(op_byte)
    if not 0 <= op_byte < 256:
        raise ValueError(f"Opcode byte must be in 0..255, not {op_byte!r}")
    return op_byte if op_byte < 16 else UNKNOWN_OPCODE


def changes_state(op_byte) -> bool:
    """Whether a frame with this opcode byte is subject to duplicate suppression: everything but
    NOP, READ and STATUS."""
    return int(op_byte) not in (Op.NOP, Op.READ, STATUS_OP)


def payload_beats(cfg, op_byte, arg, train=False) -> int:
    """Words of payload a frame with this header carries: WRITE's, and with ``train`` (the
    training design) LOAD's and TRAIN's; 0 for every other frame."""
    count = (int(arg) >> 32) & 0xFFFFFFFF
    ops = (Op.WRITE, TrainOp.LOAD, TrainOp.TRAIN) if train else (Op.WRITE,)
    return count if int(op_byte) in ops and 1 <= count <= write_beats(cfg) else 0


def words_rows(words) -> np.ndarray:
    """16-bit words (unsigned) as payload rows of two signed lanes (a beat: two words)."""
    w = np.asarray(words, dtype=np.int64).reshape(-1)
    if w.size % 2:
        w = np.append(w, 0)
    if w.size and (w.min() < 0 or w.max() > 0xFFFF):
        raise ValueError("Words must be 16-bit values in 0..65535")
    return np.where(w >= 1 << 15, w - (1 << 16), w).reshape(-1, 2)


def rows_words(rows) -> np.ndarray:
    """Payload rows (signed lanes) back to unsigned 16-bit words."""
    return np.asarray(rows, dtype=np.int64).reshape(-1) & 0xFFFF


def _bits_rows(value, beats):
    return words_rows([(value >> (16 * i)) & 0xFFFF for i in range(2 * beats)])


def train_rows(fields: dict) -> np.ndarray:
    """TRAIN's payload: the fields of :func:`pezo.hw.ontrain.train_layout` as rows."""
    layout = train_layout()
    for name, value in fields.items():
        shape = Shape.cast(layout[name].shape)
        lo, hi = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed else \
            (0, 1 << shape.width)
        if not lo <= int(value) < hi:
            raise ValueError(f"TRAIN field {name} = {value!r} does not fit {shape} "
                             f"(accepted: {lo}..{hi - 1})")
    return _bits_rows(layout.const(fields).as_bits(), train_beats())


def decode_tstatus(rows) -> dict:
    """TSTATUS's DATA: the fields of :func:`pezo.hw.ontrain.tstatus_layout` as integers."""
    bits = 0
    for i, w in enumerate(rows_words(rows)):
        bits |= int(w) << (16 * i)
    out = {}
    for name, fld in tstatus_layout():
        v = (bits >> fld.offset) & ((1 << fld.width) - 1)
        if Shape.cast(fld.shape).signed and v >= 1 << (fld.width - 1):
            v -= 1 << fld.width
        out[name] = v
    return out


def encode_weights(cfg, rows) -> bytes:
    """Integer weights (any shape; values must fit w_bits) as payload bytes."""
    wb = weight_bytes(cfg)
    flat = np.asarray(rows, dtype=np.int64).reshape(-1)
    lo, hi = -(1 << (cfg.w_bits - 1)), 1 << (cfg.w_bits - 1)
    if flat.size and (flat.min() < lo or flat.max() >= hi):
        raise ValueError(f"Weights must be {cfg.w_bits}-bit integers in {lo}..{hi - 1}")
    return b"".join(int(v).to_bytes(wb, "little", signed=True) for v in flat)


def decode_weights(cfg, data) -> np.ndarray:
    """Payload bytes -> (words, m) integer weights."""
    wb = weight_bytes(cfg)
    vals = [int.from_bytes(data[i:i + wb], "little", signed=True) for i in range(0, len(data), wb)]
    return np.array(vals, dtype=np.int64).reshape(-1, cfg.lanes)


def encode_frame(cfg, seq, op, arg=0, wdata=None, train=False) -> bytes:
    """One host frame, delimiters included. ``wdata`` (WRITE; with ``train``, LOAD and TRAIN
    too): the words to write, (count, m) integers; required exactly when the header says the
    frame carries a payload."""
    seq, op, arg = int(seq), int(op), int(arg) & ((1 << 64) - 1)
    if not 0 <= seq < 256:
        raise ValueError(f"Sequence number must be in 0..255, not {seq!r}")
    engine_opcode(op)
    beats = payload_beats(cfg, op, arg, train)
    body = bytes([seq, op]) + arg.to_bytes(8, "little")
    if beats:
        if wdata is None:
            raise ValueError(f"A WRITE frame of {beats} word(s) needs its weights")
        payload = encode_weights(cfg, wdata)
        if len(payload) != beats * beat_bytes(cfg):
            raise ValueError(f"WRITE of {beats} word(s) needs {beats * cfg.lanes} weights, "
                             f"not {len(payload) // weight_bytes(cfg)}")
        body += payload
    elif wdata is not None and op == Op.WRITE:
        raise ValueError(f"This WRITE header carries no payload (count "
                         f"{(arg >> 32) & 0xFFFFFFFF}, at most {write_beats(cfg)} per frame), "
                         f"but weights were given")
    return cobs_encode(body + crc16(body).to_bytes(2, "little"))


def status_bytes(status, overrun=0) -> bytes:
    """The 4-byte status word of a status dict (:data:`pezo.sim.engine.STATUS` fields)."""
    b0 = (status["error"] | status["error_code"] << 1 | status["saturated"] << 3
          | status["filling"] << 4 | status["last_pass"] << 5 | int(bool(overrun)) << 7)
    return bytes([b0]) + int(status["offset"]).to_bytes(3, "little")


def decode_status(word) -> dict:
    """The status dict (STATUS fields, ``busy`` 0, plus ``overrun``) of a 4-byte status word."""
    b0 = word[0]
    st = {"busy": 0, "error": b0 & 1, "error_code": (b0 >> 1) & 3, "saturated": (b0 >> 3) & 1,
          "filling": (b0 >> 4) & 1, "last_pass": (b0 >> 5) & 3,
          "offset": int.from_bytes(bytes(word[1:4]), "little")}
    assert tuple(st) == STATUS
    st["overrun"] = b0 >> 7
    return st


def encode_reply(seq, kind, data, status_word) -> bytes:
    body = bytes([int(seq), int(kind)]) + bytes(data) + bytes(status_word)
    return bytes([RSYNC]) + body + bytes([crc8(body)])


def reply_length(cfg, kind, op_byte, arg) -> int:
    """Bytes of a reply of ``kind`` to a frame with this header."""
    k = 1 + 2 + 4 + 1
    if kind == Kind.DATA:
        k += ((int(arg) >> 32) & 0xFFFFFFFF) * beat_bytes(cfg)
    return k


def decode_reply(cfg, reply, seq=None, op_byte=None, arg=0):
    """(kind, data, status dict) of one complete reply; ProtocolError when it is malformed, its
    CRC is wrong or (``seq`` given) it answers another frame."""
    reply = bytes(reply)
    if len(reply) < 8 or reply[0] != RSYNC:
        raise ProtocolError(f"Reply must start with {RSYNC:#04x} and hold at least 8 bytes, not "
                            f"{reply[:8].hex()}")
    if crc8(reply[1:]) != 0:
        raise ProtocolError(f"Reply CRC mismatch: {reply.hex()}")
    rseq, kind = reply[1], reply[2]
    if kind not in Kind._value2member_map_:
        raise ProtocolError(f"Reply kind {kind} is not one of {[int(k) for k in Kind]}")
    if seq is not None and rseq != seq:
        raise ProtocolError(f"Reply answers frame {rseq}, not {seq}")
    data = reply[3:-5]
    if op_byte is not None and len(reply) != reply_length(cfg, kind, op_byte, arg):
        raise ProtocolError(f"Reply of kind {Kind(kind).name} has {len(reply)} bytes, not "
                            f"{reply_length(cfg, kind, op_byte, arg)}")
    return Kind(kind), data, decode_status(reply[-5:-1])


class BridgeModel:
    """The bridge's behaviour, from this module's rules, over the golden engine: bytes in,
    replies out. ``feed(data)`` takes host bytes and returns the reply bytes they produce;
    ``idle()`` is a gap of :data:`TIMEOUT_BYTES` byte times (an incomplete frame is dropped with
    a TIMEOUT reply); ``lose()`` is a byte lost by the receiver. Frames are decoded with the
    ``cobs`` package (not with the bridge's own decoder)."""

    def __init__(self, cfg, engine=None):
        self.cfg = cfg
        self.engine = engine if engine is not None else EngineModel(cfg)
        self.raw = bytearray()             # bytes since the opening delimiter
        self.hunting = True                # discarding up to the next delimiter (after reset
                                           # and after a TIMEOUT)
        self.last_seq = None
        self.overrun = 0
        self.lost = False                  # a byte was lost since the last complete frame

    def lose(self):
        """The receiver dropped a byte (an overrun): sets the status bit, and the next complete
        frame is answered LOST."""
        self.overrun = 1
        self.lost = True

    def feed(self, data):
        out = bytearray()
        for b in bytes(data):
            if b != SYNC:
                if not self.hunting:
                    self.raw.append(b)
                continue
            raw, self.raw = bytes(self.raw), bytearray()
            if self.hunting:
                self.hunting = False
            elif len(raw) >= MIN_FRAME:
                out += self._frame(raw)
        return bytes(out)

    def idle(self):
        if self.hunting or not self.raw:
            return b""
        seq = rejected_seq(self.raw)
        self.raw = bytearray()
        self.hunting = True
        return encode_reply(seq, Kind.TIMEOUT, b"", self._status())

    def _status(self):
        return status_bytes(self.engine.status(), self.overrun)

    def _frame(self, raw):
        if self.lost:
            self.lost = False
            return encode_reply(rejected_seq(raw), Kind.LOST, b"", self._status())
        try:
            frame = cobs.decode(raw)
        except cobs.DecodeError:
            frame = None
        if frame is None or len(frame) < HEADER_BYTES + 2 or crc16(frame[:-2]) != int.from_bytes(
                frame[-2:], "little"):
            return encode_reply(rejected_seq(raw), Kind.BAD_CRC, b"", self._status())
        seq, op = frame[0], frame[1]
        arg = int.from_bytes(frame[2:10], "little")
        n = payload_beats(self.cfg, op, arg) * beat_bytes(self.cfg)
        if len(frame) != HEADER_BYTES + n + 2:
            return encode_reply(seq, Kind.BAD_CRC, b"", self._status())
        return self._execute(seq, op, arg, frame[HEADER_BYTES:HEADER_BYTES + n])

    def _execute(self, seq, op, arg, payload):
        if op == STATUS_OP:
            self.last_seq = seq
            return encode_reply(seq, Kind.DONE, b"", self._status())
        if changes_state(op) and seq == self.last_seq:
            return encode_reply(seq, Kind.DUPLICATE, b"", self._status())
        self.last_seq = seq
        eop = engine_opcode(op)
        wdata = None
        if eop == Op.WRITE:
            if payload:
                wdata = decode_weights(self.cfg, payload)
            else:
                arg |= 1 << 63             # too long for one frame: an impossible count
        r = self.engine.execute(eop, arg, wdata)
        if eop == Op.CLEAR and not self.engine.status()["error"]:
            self.overrun = 0               # an accepted CLEAR (it leaves the error flag clear)
        if r is not None:                  # an accepted READ
            return encode_reply(seq, Kind.DATA, encode_weights(self.cfg, r), self._status())
        return encode_reply(seq, Kind.DONE, b"", self._status())
