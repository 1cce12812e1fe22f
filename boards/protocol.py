"""The board's command link, owned once: frames, replies, status word, CRC, and a reference model.

The host talks to the engine on the board through :class:`pezo.boards.bridge.SerialBridge` over an
8N1 UART. This module is the single definition of the byte protocol; the bridge's hardware, its
tests, the host's :class:`pezo.host.serial.SerialTransport` and docs/protocol.md follow it.

Host -> board, one **frame** per command::

    SYNC  SEQ  OP  ARG[8]  HCRC  [PAYLOAD[n]  PCRC]

* ``SYNC`` = 0xA5 starts a frame; between frames the bridge discards any other byte.
* ``SEQ``: the host's sequence number (0-255, +1 per new frame; a retry repeats it).
* ``OP``: an engine opcode (:class:`pezo.sim.engine.Op`, 0-14) or ``STATUS`` (0x80, answered by
  the bridge). Any other byte reaches the engine as opcode 15 (:func:`engine_opcode`), which the
  engine rejects with ``Err.OPCODE``: no byte value aliases onto a command.
* ``ARG``: the 64-bit argument, little-endian.
* ``PAYLOAD``: WRITE only, when 1 <= count <= :func:`write_beats`: ``count * m`` weights, each
  :func:`weight_bytes` bytes two's complement, little-endian. Otherwise empty (a WRITE whose
  count exceeds :func:`write_beats` reaches the engine with bit 63 of its argument set, an
  impossible count, and is rejected with ARG).
* ``HCRC``: CRC-8/ROHC (polynomial 0x07, initial value 0xFF, LSB first like the UART, no final
  XOR) of ``SEQ`` through ``ARG``, checked before the header is used (so a corrupted count cannot change the
  frame's length); ``PCRC`` (WRITE frames with a payload only): CRC-8 of ``PAYLOAD``. The bridge
  buffers the whole frame and checks both *before* anything reaches the engine: a corrupted frame
  is never applied. A bad HCRC is answered at once (BAD_CRC) and the bridge hunts for the next
  SYNC; the rest of that frame is discarded as it arrives.

Board -> host, one **reply** per frame (or per incomplete frame, see TIMEOUT)::

    RSYNC  SEQ  KIND  DATA[k]  STATUS[4]  CRC

* ``RSYNC`` = 0x5A; ``SEQ`` echoes the frame's; ``CRC`` covers ``SEQ`` through ``STATUS``.
* ``KIND`` (:class:`Kind`): DONE (executed; the status tells whether the engine accepted it), DATA
  (an accepted READ: ``count * m`` weights follow, sign-extended to :func:`weight_bytes` bytes),
  BAD_CRC (discarded), TIMEOUT (a frame stopped arriving: discarded), DUPLICATE (``SEQ`` equals
  the last executed frame's and the command changes state: not executed again, the status is
  current), LOST (the receiver dropped a byte since the previous frame: this frame may be made of
  the remains of another one, so it is discarded).
* ``STATUS``: :func:`status_bytes` - byte 0 = error | error_code << 1 | saturated << 3 |
  filling << 4 | last_pass << 5 | overrun << 7, bytes 1-3 = pregen pool offset.

**Link rules.** One frame in flight: the host sends the next frame only after the previous reply
(the bridge takes bytes only while it receives a frame; the UART holds one more byte, and a byte
beyond that is lost and sets ``overrun`` in every later status until an accepted CLEAR). The
first frame whose header completes after a lost byte is answered LOST and not executed (its
SYNC may be a real one followed by another frame's later bytes, which an 8-bit CRC would pass
1 time in 256). An
incomplete frame is dropped after :data:`TIMEOUT_BYTES` byte times without a byte (a TIMEOUT reply
follows), so the link resynchronises on its own. A lost reply is recovered by resending the same
frame with the same ``SEQ``: if the first copy was executed, the reply is DUPLICATE and the command
is not applied twice. NOP, READ and STATUS are never treated as duplicates (re-running them
changes nothing); a host starts with a NOP so that its first ``SEQ`` cannot collide with an
earlier session's.
"""

from enum import IntEnum

import numpy as np

from pezo.sim.engine import STATUS, EngineModel, Op

__all__ = ["CRC_INIT", "SYNC", "RSYNC", "STATUS_OP", "UNKNOWN_OPCODE", "Kind", "MAX_WRITE_BYTES",
           "TIMEOUT_BYTES", "crc8", "weight_bytes", "beat_bytes", "write_beats", "engine_opcode",
           "changes_state", "payload_beats", "encode_frame", "encode_weights", "decode_weights",
           "status_bytes", "decode_status", "encode_reply", "reply_length", "decode_reply",
           "BridgeModel", "ProtocolError"]

SYNC = 0xA5
RSYNC = 0x5A
STATUS_OP = 0x80
#: The 4-bit engine opcode every non-engine opcode byte becomes (no engine command has it).
UNKNOWN_OPCODE = 0x0F
#: The largest WRITE payload one frame carries (the bridge's frame buffer).
MAX_WRITE_BYTES = 256
#: Inter-byte timeout of an incomplete frame, in byte times (10 bit times each).
TIMEOUT_BYTES = 256

assert UNKNOWN_OPCODE not in {int(o) for o in Op}


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


def payload_beats(cfg, op_byte, arg) -> int:
    """Words of WRITE payload a frame with this header carries (0 for every other frame)."""
    count = (int(arg) >> 32) & 0xFFFFFFFF
    return count if int(op_byte) == Op.WRITE and 1 <= count <= write_beats(cfg) else 0


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


def encode_frame(cfg, seq, op, arg=0, wdata=None) -> bytes:
    """One host frame. ``wdata`` (WRITE): the words to write, (count, m) integers; required
    exactly when the header says the frame carries a payload."""
    seq, op, arg = int(seq), int(op), int(arg) & ((1 << 64) - 1)
    if not 0 <= seq < 256:
        raise ValueError(f"Sequence number must be in 0..255, not {seq!r}")
    engine_opcode(op)
    beats = payload_beats(cfg, op, arg)
    head = bytes([seq, op]) + arg.to_bytes(8, "little")
    frame = bytes([SYNC]) + head + bytes([crc8(head)])
    if beats:
        if wdata is None:
            raise ValueError(f"A WRITE frame of {beats} word(s) needs its weights")
        payload = encode_weights(cfg, wdata)
        if len(payload) != beats * beat_bytes(cfg):
            raise ValueError(f"WRITE of {beats} word(s) needs {beats * cfg.lanes} weights, "
                             f"not {len(payload) // weight_bytes(cfg)}")
        frame += payload + bytes([crc8(payload)])
    return frame


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
    a TIMEOUT reply). Receive overruns are a matter of timing and are not modelled."""

    def __init__(self, cfg, engine=None):
        self.cfg = cfg
        self.engine = engine if engine is not None else EngineModel(cfg)
        self.buf = bytearray()
        self.last_seq = None
        self.overrun = 0
        self.lost = False                  # a byte was lost since the last frame (lose())

    def lose(self):
        """The receiver dropped a byte (an overrun): sets the status bit, and the next frame is
        answered LOST."""
        self.overrun = 1
        self.lost = True

    def _need(self):
        """Bytes the frame in ``buf`` has in all, once its header (with HCRC) is in."""
        arg = int.from_bytes(self.buf[3:11], "little")
        n = payload_beats(self.cfg, self.buf[2], arg) * beat_bytes(self.cfg)
        return 12 + (n + 1 if n else 0)

    def feed(self, data):
        out = bytearray()
        for b in bytes(data):
            if not self.buf:
                if b == SYNC:
                    self.buf.append(b)
                continue
            self.buf.append(b)
            if len(self.buf) == 12 and (self.lost or crc8(self.buf[1:12]) != 0):
                seq, self.buf = self.buf[1], bytearray()
                kind = Kind.LOST if self.lost else Kind.BAD_CRC
                self.lost = False
                out += encode_reply(seq, kind, b"", self._status())
            elif len(self.buf) >= 12 and len(self.buf) == self._need():
                frame, self.buf = bytes(self.buf), bytearray()
                out += self._execute(frame)
        return bytes(out)

    def idle(self):
        if not self.buf:
            return b""
        seq = self.buf[1] if len(self.buf) > 1 else 0
        self.buf = bytearray()
        self.lost = False
        return encode_reply(seq, Kind.TIMEOUT, b"", self._status())

    def _status(self):
        return status_bytes(self.engine.status(), self.overrun)

    def _execute(self, frame):
        seq, op = frame[1], frame[2]
        if len(frame) > 12 and crc8(frame[12:]) != 0:   # the payload's CRC (header: checked)
            return encode_reply(seq, Kind.BAD_CRC, b"", self._status())
        arg = int.from_bytes(frame[3:11], "little")
        if op == STATUS_OP:
            self.last_seq = seq
            return encode_reply(seq, Kind.DONE, b"", self._status())
        if changes_state(op) and seq == self.last_seq:
            return encode_reply(seq, Kind.DUPLICATE, b"", self._status())
        self.last_seq = seq
        eop = engine_opcode(op)
        wdata = None
        if eop == Op.WRITE:
            beats = payload_beats(self.cfg, op, arg)
            if beats:
                wdata = decode_weights(self.cfg, frame[12:-1])
            else:
                arg |= 1 << 63             # too long for one frame: an impossible count
        r = self.engine.execute(eop, arg, wdata)
        if eop == Op.CLEAR and not self.engine.status()["error"]:
            self.overrun = 0               # an accepted CLEAR (it leaves the error flag clear)
        if r is not None:                  # an accepted READ
            return encode_reply(seq, Kind.DATA, encode_weights(self.cfg, r), self._status())
        return encode_reply(seq, Kind.DONE, b"", self._status())
