"""The host's serial link to a board: :class:`SerialTransport`, an engine transport over the
protocol of :mod:`pezo.boards.protocol` through pyserial.

``port`` is anything ``serial.serial_for_url`` opens: a device (``/dev/ttyUSB1`` for an
iCEBreaker's second FTDI channel), a pseudo-terminal path or ``socket://127.0.0.1:N`` (the
Verilator-built board, :mod:`pezo.sim.cosim.board`).

Every frame waits for its reply (one frame in flight). A reply that does not come within
``timeout`` seconds, or comes corrupted, or reports BAD_CRC, TIMEOUT or LOST, makes the transport wait
for the board's inter-byte timeout, drain the line and send the same frame again with the same
sequence number, up to ``retries`` times: the bridge executes a repeated state-changing frame
only once (it answers DUPLICATE), so no command is ever applied twice, and a resend after LOST
arrives whole (the bridge answers only after a frame's closing delimiter), so one resend
recovers. After the retries, :class:`LinkError` names the command and what went wrong.
``stats`` counts frames, retries, DUPLICATE / BAD_CRC / TIMEOUT / LOST replies and the bytes
written and read.
"""

import random
import time

import numpy as np
import serial

from pezo.boards.protocol import (RSYNC, STATUS_OP, TIMEOUT_BYTES, Kind, ProtocolError,
                                  decode_reply, decode_weights, encode_frame, reply_length,
                                  write_beats)
from pezo.sim.engine import Op

__all__ = ["SerialTransport", "LinkError"]


class LinkError(RuntimeError):
    """The board did not answer a frame correctly after every retry."""


class SerialTransport:
    """Engine commands over a serial line to a board (or a simulated board).

    Parameters
    ----------
    cfg : EngineConfig
        The configuration the board was built with.
    port : str or serial.Serial-like
        A pyserial URL or device path, or an open object with ``read``, ``write``,
        ``reset_input_buffer`` and ``close``.
    baud : int
        Line rate (the board's UART: 115200 for ``make synth`` bitstreams).
    timeout : float
        Seconds to wait for a reply (also the pause before a retry).
    retries : int
        Times a frame is sent again before :class:`LinkError`.
    closing : object with close() or None
        Closed with the transport (the simulated board behind ``port``).
    train : bool
        The board is the training design: LOAD and TRAIN frames carry payloads
        (:func:`pezo.boards.protocol.payload_beats`); see :mod:`pezo.host.board_train`.
    """

    name = "serial"

    def __init__(self, cfg, port, baud=115200, timeout=2.0, retries=3, seed=None, closing=None,
                 train=False):
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"Timeout must be a positive number of seconds, not {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"Retries must be a non-negative integer, not {retries!r}")
        self.cfg = cfg
        self.train = bool(train)       # the board is the training design (LOAD/TRAIN payloads)
        self._closing = closing
        self.baud = baud
        self.timeout = float(timeout)
        self.retries = retries
        if isinstance(port, str):
            try:
                self.port = serial.serial_for_url(port, baudrate=baud, timeout=self.timeout)
            except (serial.SerialException, ValueError) as e:
                raise LinkError(f"Cannot open serial port {port!r}: {e}") from None
        else:
            self.port = port
        self.cycles = 0
        self.stats = {"frames": 0, "retries": 0, "duplicates": 0, "bad_crc": 0, "timeouts": 0,
                      "lost": 0, "bytes_out": 0, "bytes_in": 0}
        self.overrun = 0
        self._seq = random.Random(seed).randrange(256)
        self._status = None
        self.port.reset_input_buffer()
        self._exchange(Op.NOP, 0)          # establishes this session's sequence numbers

    # The link --------------------------------------------------------------------------------------
    def _read_exact(self, n):
        data = self.port.read(n)
        self.stats["bytes_in"] += len(data)
        if len(data) != n:
            raise TimeoutError(f"{len(data)} of {n} reply bytes within {self.timeout} s")
        return data

    def _read_reply(self, seq, op, arg):
        """The reply to frame ``seq``; replies to earlier frames (late answers to a frame that
        was retried) are skipped."""
        while True:
            b = self._read_exact(1)
            if b[0] != RSYNC:
                continue                              # junk between replies
            head = self._read_exact(2)
            reply = b + head + self._read_exact(reply_length(self.cfg, head[1], op, arg) - 3)
            if head[0] != seq:
                continue
            return decode_reply(self.cfg, reply, seq=seq, op_byte=op, arg=arg)

    def _exchange(self, op, arg, wdata=None):
        seq = self._seq
        self._seq = (seq + 1) % 256
        frame = encode_frame(self.cfg, seq, op, arg, wdata, train=self.train)
        problems = []
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retries"] += 1
                # let the bridge drop whatever it holds (inter-byte timeout), then drain
                time.sleep(max(self.timeout / 4, TIMEOUT_BYTES * 10 / self.baud * 2))
                self.port.reset_input_buffer()
            self.port.write(frame)
            self.stats["frames"] += 1
            self.stats["bytes_out"] += len(frame)
            try:
                kind, data, st = self._read_reply(seq, op, arg)
            except (TimeoutError, ProtocolError) as e:
                problems.append(str(e))
                continue
            if kind in (Kind.BAD_CRC, Kind.TIMEOUT, Kind.LOST):
                self.stats[{Kind.BAD_CRC: "bad_crc", Kind.TIMEOUT: "timeouts",
                            Kind.LOST: "lost"}[kind]] += 1
                problems.append(f"the board answered {kind.name}")
                continue
            if kind == Kind.DUPLICATE:
                self.stats["duplicates"] += 1
            self.overrun = st.pop("overrun")
            self._status = st
            return kind, data
        name = Op(op).name if op in Op._value2member_map_ else f"opcode {op:#04x}"
        raise LinkError(f"No valid reply to {name} (sequence {seq}) after {self.retries + 1} "
                        f"attempt(s): {'; '.join(problems)}")

    # Transport -------------------------------------------------------------------------------------
    def command(self, op, arg=0, wdata=None, rcount=0):
        op, arg = int(op), int(arg) & ((1 << 64) - 1)
        if op == Op.WRITE:
            start, count = arg & 0xFFFFFFFF, arg >> 32
            beats = write_beats(self.cfg)
            if 1 <= count and start + count <= self.cfg.words and count > beats:
                # a valid block longer than one frame carries: consecutive WRITE frames
                rows = np.asarray(wdata).reshape(count, self.cfg.lanes)
                for k in range(0, count, beats):
                    n = min(beats, count - k)
                    self._exchange(op, ((n << 32) | (start + k)), rows[k:k + n])
                    if self._status["error"]:
                        break
                return None
            if not 1 <= count <= beats:
                wdata = None
            elif wdata is not None:
                wdata = np.asarray(wdata).reshape(count, self.cfg.lanes)
        kind, data = self._exchange(op, arg, wdata)
        if kind == Kind.DATA:
            return decode_weights(self.cfg, data)
        return None

    def status(self):
        if self._status is None:
            self._exchange(STATUS_OP, 0)
        return dict(self._status)

    def query_status(self):
        """A fresh status from the board (a STATUS frame), with the ``overrun`` bit."""
        self._exchange(STATUS_OP, 0)
        return {**self._status, "overrun": self.overrun}

    def close(self):
        self.port.close()
        if self._closing is not None:
            self._closing.close()


