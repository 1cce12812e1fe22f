"""Fuzzing the board link: random and mutated frames into a board (the Verilator-built one by
default), checked against the golden engine.

Every case is one command frame, sent intact or mutated: truncated (the rest never comes), one bit
flipped, a burst of up to 8 bits flipped, junk bytes before it, or sent back to back with a second
frame (breaking the one-frame-in-flight rule, so the receiver may overrun). The fuzzer then reads
the replies until the link is settled and holds the board to three rules:

* **liveness** - a STATUS query is answered within ``probe_timeout`` seconds after every case (at
  most ``probes`` attempts, each after the bridge's inter-byte timeout has passed);
* **integrity** - a frame counts as executed only when the board answers DONE or DATA with its
  sequence number; every reply's status equals the golden engine's
  (:class:`pezo.sim.engine.EngineModel`) given exactly the executed frames, and so do all weights,
  read back every ``check_every`` cases and at the end;
* **no ghost commands** - no DONE/DATA/DUPLICATE reply ever answers a frame the fuzzer did not send
  (a corrupted frame or junk executed as a command).

Payload bytes, junk bytes, opcodes and sequence numbers never take the SYNC value 0xA5, so that a
mutated frame cannot contain a complete fake frame of its own; the fuzzer tests the link's
recovery, not the 1-in-256 odds of an 8-bit CRC (docs/protocol.md).
"""

import collections
import random
import time

import numpy as np
import serial

from pezo.boards.protocol import (RSYNC, STATUS_OP, SYNC, Kind, ProtocolError, beat_bytes,
                                  decode_reply, decode_weights, encode_frame, write_beats)
from pezo.host.serial_link import LinkError
from pezo.sim.cosim.board import SimBoard
from pezo.sim.engine import EngineModel, Op, encode_signed

__all__ = ["run_fuzz", "FuzzFailure", "MUTATIONS"]

MUTATIONS = ("none", "truncate", "bitflip", "burst_flip", "junk", "back_to_back")


class FuzzFailure(AssertionError):
    """The board broke one of the fuzzer's rules; the message names the case."""


class _Link:
    """Raw bytes to and from the board, replies parsed as they arrive; the last exchanges are
    kept for failure reports."""

    def __init__(self, cfg, port):
        self.cfg = cfg
        try:
            self.port = serial.serial_for_url(port, baudrate=115200, timeout=0.01)
        except (serial.SerialException, ValueError) as e:
            raise LinkError(f"Cannot open serial port {port!r}: {e}") from None
        self.port.reset_input_buffer()
        self.buf = bytearray()
        self.expect_len = {}            # seq -> reply length of a DATA reply
        self.history = collections.deque(maxlen=24)

    def write(self, data):
        self.history.append(("host", bytes(data).hex()))
        self.port.write(data)

    def replies(self, until=None, settle=0.0, timeout=2.0):
        """Parsed replies (seq, kind, data, status) until ``until(reply)`` is true for one of
        them (then returns at once) or, with ``settle``, until no byte came for ``settle``
        seconds; at most ``timeout`` seconds."""
        out, end, last = [], time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < end:
            chunk = self.port.read(max(1, self.port.in_waiting))
            now = time.monotonic()
            if chunk:
                self.buf += chunk
                last = now
            while True:
                r = self._parse_one()
                if r is None:
                    break
                out.append(r)
                if until is not None and until(r):
                    return out, True
            if settle and not chunk and now - last >= settle and not self.buf:
                return out, until is None
        return out, False

    def _parse_one(self):
        buf = self.buf
        if buf and buf[0] != RSYNC:
            raise ProtocolError(f"reply stream does not start with {RSYNC:#04x}: "
                                f"{bytes(buf[:16]).hex()}")
        if len(buf) < 3:
            return None
        seq, kind = buf[1], buf[2]
        n = 8 + (self.expect_len.get(seq, 0) if kind == Kind.DATA else 0)
        if len(buf) < n:
            return None
        reply = bytes(buf[:n])
        del buf[:n]
        self.history.append(("board", reply.hex()))
        k, data, st = decode_reply(self.cfg, reply)
        return seq, k, data, st

    def close(self):
        self.port.close()


def _no_sync(rng, n):
    return bytes(b if b != SYNC else SYNC ^ 0xFF for b in rng.randbytes(n))


def run_fuzz(cfg, cases=1000, seed=1, port=None, progress=None, check_every=100,
             probe_timeout=2.0, probes=3, settle=0.04):
    """Fuzz the link of a board with engine configuration ``cfg``: ``port`` (a pyserial URL) or,
    if None, a Verilator-built board started here. Returns the statistics; raises
    :class:`FuzzFailure` naming the first broken rule."""
    board = SimBoard(cfg) if port is None else None
    link = _Link(cfg, port or board.port)
    try:
        return _fuzz(cfg, link, cases, seed, progress, check_every, probe_timeout, probes,
                     settle)
    except FuzzFailure as e:
        recent = "\n".join(f"  {who:5} {data}" for who, data in link.history)
        raise FuzzFailure(f"{e}\nlast exchanges (oldest first):\n{recent}") from None
    finally:
        link.close()
        if board is not None:
            board.close()


def _fuzz(cfg, link, cases, seed, progress, check_every, probe_timeout, probes, settle):
    rng = random.Random(seed)
    gold = EngineModel(cfg)
    stats = {"cases": 0, "case_frames": 0, "frames": 0, "executed": 0, "mutations": dict.fromkeys(MUTATIONS, 0),
             "replies": {k.name: 0 for k in Kind}, "probe_retries": 0, "max_probe_s": 0.0,
             "weight_checks": 0, "bytes_sent": 0}
    seqs = [s for s in range(256) if s != SYNC]
    state = {"k": rng.randrange(len(seqs)), "last_exec": None}
    sent = {}                                          # seq -> (op, arg, wdata) of our frames
    words, m = cfg.words, cfg.lanes
    lim = 1 << (cfg.w_bits - 1)

    def next_seq():
        state["k"] = (state["k"] + 1) % len(seqs)
        return seqs[state["k"]]

    def weight():
        while True:                                    # keep SYNC out of payloads
            v = rng.randrange(-lim, lim)
            if SYNC not in v.to_bytes(-(-cfg.w_bits // 8), "little", signed=True):
                return v

    def random_command():
        r = rng.random()
        if r < 0.15:
            count = rng.randrange(1, min(words, write_beats(cfg)) + 1)
            start = rng.randrange(0, words - count + 1)
            data = np.array([[weight() for _ in range(m)] for _ in range(count)])
            return Op.WRITE, (count << 32) | start, data
        if r < 0.25:
            count = rng.randrange(1, words + 1)
            return Op.READ, (count << 32) | rng.randrange(0, words - count + 1), None
        if r < 0.4:
            return Op.PERTURB, rng.choice([0, 1, 0, 1, 2]), None
        if r < 0.5:
            return Op.UPDATE, encode_signed(rng.randrange(-(1 << (cfg.coef_bits - 3)),
                                                          1 << (cfg.coef_bits - 3))), None
        if r < 0.58:
            return Op.MU, encode_signed(rng.randrange(1, 1 << (cfg.coef_bits - 4))), None
        if r < 0.66:
            return Op.SEED, rng.randrange(1 << 32), None
        if r < 0.72:
            return Op.CLEAR, rng.choice([0, 1, 1, 3]), None
        if r < 0.78:
            return STATUS_OP, 0, None
        if r < 0.84:
            return Op.NOP, 0, None
        if r < 0.90:
            return rng.choice([b for b in range(11, 256) if b not in (STATUS_OP, SYNC)]), 0, None
        op = rng.choice([Op.SEED, Op.MU, Op.WRITE, Op.READ, Op.ROUNDING, Op.OFFSET, Op.SCALE])
        return op, rng.randrange(1 << 64), None      # arbitrary arguments (mostly rejected)

    def frame_for(seq, cmd):
        op, arg, data = cmd
        f = encode_frame(cfg, seq, op, arg, data)
        sent[seq] = cmd
        if op == Op.READ:
            link.expect_len[seq] = ((arg >> 32) & 0xFFFFFFFF) * beat_bytes(cfg)
        stats["frames"] += 1
        return f

    def account(replies, label):
        for seq, kind, data, st in replies:
            stats["replies"][kind.name] += 1
            if kind in (Kind.DONE, Kind.DATA, Kind.DUPLICATE):
                if seq not in sent:
                    raise FuzzFailure(f"{label}: a {kind.name} reply to sequence {seq}, a frame "
                                      f"the fuzzer never sent (a ghost command)")
            if kind in (Kind.DONE, Kind.DATA):
                op, arg, data_w = sent.pop(seq)
                state["last_exec"] = seq
                stats["executed"] += 1
                if op != STATUS_OP:
                    eop = op if op < 16 else 15
                    a = arg
                    if eop == Op.WRITE and (a >> 32) > write_beats(cfg):
                        a |= 1 << 63
                    r = gold.execute(eop, a, data_w)
                    if (r is not None) != (kind == Kind.DATA):
                        raise FuzzFailure(f"{label}: reply {kind.name} to {op:#04x} but the golden "
                                          f"engine {'accepted' if r is not None else 'rejected'} "
                                          f"the READ")
                    if r is not None and not (decode_weights(cfg, data) == r).all():
                        raise FuzzFailure(f"{label}: READ data differ from the golden engine")
            want = gold.status()
            got = {k: st[k] for k in want}
            if got != want:
                raise FuzzFailure(f"{label}: status {got} != golden {want} (reply {kind.name}, "
                                  f"sequence {seq})")

    def probe(label):
        t0 = time.monotonic()
        for attempt in range(probes):
            if attempt:
                stats["probe_retries"] += 1
                rs, _ = link.replies(settle=settle * 5, timeout=probe_timeout)
                account(rs, label)
            seq = next_seq()
            f = frame_for(seq, (STATUS_OP, 0, None))
            link.write(f)
            stats["bytes_sent"] += len(f)
            rs, ok = link.replies(until=lambda r, s=seq: r[0] == s and r[1] != Kind.TIMEOUT,
                                  timeout=probe_timeout)
            account(rs, label)
            if ok:
                stats["max_probe_s"] = max(stats["max_probe_s"], time.monotonic() - t0)
                return
        raise FuzzFailure(f"{label}: no answer to a STATUS query after {probes} attempts "
                          f"({time.monotonic() - t0:.1f} s)")

    def check_weights(label):
        seq = next_seq()
        link.write(frame_for(seq, (Op.READ, words << 32, None)))
        rs, ok = link.replies(until=lambda r, s=seq: r[0] == s, timeout=probe_timeout)
        account(rs, label)
        if not ok:
            raise FuzzFailure(f"{label}: no answer to the weight read-back")
        stats["weight_checks"] += 1
        if not (gold.weights.reshape(-1, m) == decode_weights(cfg, rs[-1][2])).all():
            raise FuzzFailure(f"{label}: weights differ from the golden engine's")

    # a known start: weights, mu, a seed
    gold_w = np.array([[rng.randrange(-lim // 4, lim // 4) for _ in range(m)]
                       for _ in range(words)])
    for cmd in [(Op.NOP, 0, None), (Op.CLEAR, 0, None), (Op.MU, 2000, None), (Op.SEED, 7, None)]:
        seq = next_seq()
        link.write(frame_for(seq, cmd))
        account(link.replies(until=lambda r, s=seq: r[0] == s)[0], "setup")
    for k in range(0, words, write_beats(cfg)):
        n = min(write_beats(cfg), words - k)
        seq = next_seq()
        link.write(frame_for(seq, (Op.WRITE, (n << 32) | k, gold_w[k:k + n])))
        account(link.replies(until=lambda r, s=seq: r[0] == s)[0], "setup")

    t_start = time.monotonic()
    for case in range(cases):
        mut = rng.choices(MUTATIONS, weights=[50, 12, 12, 8, 10, 8])[0]
        stats["mutations"][mut] += 1
        stats["cases"] += 1
        label = f"case {case} ({mut})"
        repeat = rng.random() < 0.05 and state["last_exec"] is not None
        seq = state["last_exec"] if repeat else next_seq()
        cmd = random_command()
        if repeat:
            sent[seq] = cmd                            # a retry of an executed frame's number
        f = frame_for(seq, cmd)
        stats["case_frames"] += 1 + (mut == "back_to_back")
        if mut == "none":
            link.write(f)
            rs, ok = link.replies(until=lambda r, s=seq: r[0] == s, timeout=probe_timeout)
            account(rs, label)
            if not ok:
                raise FuzzFailure(f"{label}: no reply to an intact frame")
        elif mut == "truncate":
            cut = rng.randrange(1, len(f))
            link.write(f[:cut])
            rs, ok = link.replies(until=lambda r: r[1] == Kind.TIMEOUT, timeout=probe_timeout)
            account(rs, label)
            if not ok:
                raise FuzzFailure(f"{label}: no TIMEOUT reply after a frame cut at byte {cut}")
        elif mut in ("bitflip", "burst_flip"):
            g = bytearray(f)
            nbits = 1 if mut == "bitflip" else rng.randrange(2, 9)
            pos = rng.randrange(0, len(g) * 8 - nbits + 1)
            for b in range(pos, pos + nbits):
                if mut == "bitflip" or rng.random() < 0.5 or b in (pos, pos + nbits - 1):
                    g[b // 8] ^= 1 << (b % 8)
            link.write(bytes(g))
            rs, _ = link.replies(settle=settle, timeout=probe_timeout)
            account(rs, label)
        elif mut == "junk":
            link.write(_no_sync(rng, rng.randrange(1, 17)) + f)
            rs, ok = link.replies(until=lambda r, s=seq: r[0] == s, timeout=probe_timeout)
            account(rs, label)
            if not ok:
                raise FuzzFailure(f"{label}: junk before a frame kept it from being answered")
        else:                                          # back_to_back
            seq2 = next_seq()
            f2 = frame_for(seq2, random_command())
            link.write(f + f2)
            rs, _ = link.replies(settle=settle, timeout=probe_timeout)
            account(rs, label)
        # frames never answered stay in `sent`: a late answer (a slow machine) is accounted when
        # it comes, in order; sequence numbers come round again only 255 frames later
        stats["bytes_sent"] += len(f)
        if mut != "none":
            probe(label)
        if rng.random() < 0.2:                         # clear a sticky overrun now and then
            s2 = next_seq()
            link.write(frame_for(s2, (Op.CLEAR, 1, None)))
            account(link.replies(until=lambda r, s=s2: r[0] == s)[0], label)
        if (case + 1) % check_every == 0:
            check_weights(label)
            if progress:
                rate = (case + 1) / (time.monotonic() - t_start)
                progress(f"{case + 1}/{cases} cases, {stats['frames']} frames, "
                         f"{rate:.0f} cases/s")
    check_weights("end")
    stats["seconds"] = time.monotonic() - t_start
    return stats
