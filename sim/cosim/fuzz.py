"""Fuzzing the board link: random and mutated frames into a board (the Verilator-built one by
default), checked against the golden engine.

The fuzzer generates what the line can carry, all of it: sequence numbers, opcodes, arguments,
payload bytes and junk take every byte value, the delimiter 0x00 and the old sync byte 0xA5
included. Every case is one command frame, sent intact or mutated:

* ``truncate`` - the rest never comes (TIMEOUT);
* ``bitflip`` / ``burst_flip`` - one bit, or a burst of 2-8 bits, flipped on the line (a flip can
  create a delimiter and split the frame);
* ``junk`` - 1-12 junk bytes before it (fewer than a frame: dropped silently, the frame is
  answered); ``long_junk`` - 13-40 (answered BAD_CRC; the frame after it may be answered LOST);
* ``back_to_back`` - a second frame right behind it, breaking the one-frame-in-flight rule, so the
  receiver may overrun;
* ``pause`` - the frame split at a random byte with a pause of 0-40 ms (under and over the
  bridge's inter-byte timeout; how much simulated time a pause is depends on the machine, so
  both sides are drawn);
* ``hidden`` - a WRITE whose payload holds a complete valid frame, sent intact, with a corrupted
  header byte and a pause before the payload, with a zero created just before the hidden
  frame's image, or with a data byte of the image flipped;
* ``lost_resend`` - a long READ and a WRITE back to back (the WRITE's bytes overrun the UART
  while the READ is answered), then the WRITE resent with its sequence number until it is not
  answered LOST: the first resend must recover.

The fuzzer then reads the replies until the link is settled and holds the board to its rules:

* **liveness** - a STATUS query is answered within ``probe_timeout`` seconds after every case (at
  most ``probes`` attempts, each after the bridge's inter-byte timeout has passed);
* **integrity** - a frame counts as executed only when the board answers DONE or DATA with its
  sequence number; every reply's status equals the golden engine's
  (:class:`pezo.sim.engine.EngineModel`) given exactly the executed frames, and so do all weights,
  read back every ``check_every`` cases and at the end;
* **no ghost commands** - no DONE/DATA/DUPLICATE reply ever answers a frame the fuzzer did not
  send: hidden frames carry sequence numbers (:data:`HIDDEN_SEQS`) that no real frame uses, so an
  executed hidden frame is caught by its reply alone.

Each run draws a fresh seed unless one is given; the seed is in the statistics (and printed by
``pezo board fuzz``), and ``--seed`` / ``make fuzz SEED=`` replays a run.
"""

import collections
import os
import random
import time

from cobs import cobs
import numpy as np
import serial

from pezo.boards.protocol import (MIN_FRAME, RSYNC, STATUS_OP, SYNC, Kind, ProtocolError,
                                  beat_bytes, decode_reply, decode_weights, encode_frame,
                                  weight_bytes, write_beats)
from pezo.host.serial_link import LinkError
from pezo.sim.cosim.board import SimBoard
from pezo.sim.engine import EngineModel, Op, encode_signed

__all__ = ["run_fuzz", "FuzzFailure", "MUTATIONS", "HIDDEN_SEQS"]

MUTATIONS = ("none", "truncate", "bitflip", "burst_flip", "junk", "long_junk", "back_to_back",
             "pause", "hidden", "lost_resend")
#: Relative frequencies of the mutations.
WEIGHTS = (40, 8, 10, 7, 6, 3, 7, 7, 8, 4)
#: Sequence numbers of the frames hidden in payloads, never used by a real frame.
HIDDEN_SEQS = range(0xE0, 0xF0)


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


def _junk(rng, n):
    """``n`` junk bytes, every value likely (the delimiter and the old sync byte often)."""
    return bytes(rng.choice([SYNC, 0xA5, rng.randrange(256)]) for _ in range(n))


def _code_positions(frame):
    """Indices of an encoded frame's COBS code bytes (the rest is data)."""
    out, k = set(), 1
    while k < len(frame) - 1:
        out.add(k)
        k += frame[k]
    return out


def run_fuzz(cfg, cases=1000, seed=None, port=None, progress=None, check_every=100,
             probe_timeout=2.0, probes=3, settle=0.04):
    """Fuzz the link of a board with engine configuration ``cfg``: ``port`` (a pyserial URL) or,
    if None, a Verilator-built board started here. ``seed`` None draws a fresh one (it is
    returned in the statistics as ``seed``). Returns the statistics; raises
    :class:`FuzzFailure` naming the first broken rule and the seed that replays it."""
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"Fuzz seed must be a non-negative integer, not {seed!r}")
    board = SimBoard(cfg) if port is None else None
    link = _Link(cfg, port or board.port)
    try:
        return _fuzz(cfg, link, cases, seed, progress, check_every, probe_timeout, probes,
                     settle)
    except FuzzFailure as e:
        recent = "\n".join(f"  {who:5} {data}" for who, data in link.history)
        raise FuzzFailure(f"{e} (replay: --seed {seed})\nlast exchanges (oldest first):\n"
                          f"{recent}") from None
    finally:
        link.close()
        if board is not None:
            board.close()


def _fuzz(cfg, link, cases, seed, progress, check_every, probe_timeout, probes, settle):
    rng = random.Random(seed)
    gold = EngineModel(cfg)
    stats = {"seed": seed, "cases": 0, "case_frames": 0, "frames": 0, "executed": 0,
             "mutations": dict.fromkeys(MUTATIONS, 0), "replies": {k.name: 0 for k in Kind},
             "probe_retries": 0, "max_probe_s": 0.0, "weight_checks": 0, "bytes_sent": 0,
             "hidden_frames": 0, "lost_resends": 0, "sync_bytes_in_bodies": 0}
    seqs = [s for s in range(256) if s not in HIDDEN_SEQS]
    state = {"k": rng.randrange(len(seqs)), "last_exec": None}
    sent = {}                                          # seq -> (op, arg, wdata) of our frames
    words, m = cfg.words, cfg.lanes
    lim = 1 << (cfg.w_bits - 1)
    wbytes = weight_bytes(cfg)

    def next_seq():
        state["k"] = (state["k"] + 1) % len(seqs)
        return seqs[state["k"]]

    def weight():
        r = rng.random()                               # zero bytes and 0xA5 bytes often
        if r < 0.2:
            return 0
        if r < 0.3:
            return -1
        if r < 0.4:
            v = int.from_bytes(bytes([0xA5] * wbytes), "little", signed=True)
            return v if -lim <= v < lim else rng.randrange(-lim, lim)
        return rng.randrange(-lim, lim)

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
            return Op.SEED, rng.choice([0, 0xA5, 0xA5A5A5A5, rng.randrange(1 << 32)]), None
        if r < 0.72:
            return Op.CLEAR, rng.choice([0, 1, 1, 3]), None
        if r < 0.78:
            return STATUS_OP, 0, None
        if r < 0.84:
            return Op.NOP, 0, None
        if r < 0.90:
            return rng.choice([b for b in range(11, 256) if b != STATUS_OP]), 0, None
        op = rng.choice([Op.SEED, Op.MU, Op.WRITE, Op.READ, Op.ROUNDING, Op.OFFSET, Op.SCALE])
        return op, rng.randrange(1 << 64), None      # arbitrary arguments (mostly rejected)

    def frame_for(seq, cmd):
        op, arg, data = cmd
        f = encode_frame(cfg, seq, op, arg, data)
        # the delimiter's value inside the frame's body (encoded away by COBS on the line)
        stats["sync_bytes_in_bodies"] += cobs.decode(f[1:-1]).count(SYNC)
        sent[seq] = cmd
        if op == Op.READ:
            link.expect_len[seq] = ((arg >> 32) & 0xFFFFFFFF) * beat_bytes(cfg)
        stats["frames"] += 1
        return f

    def hidden_write():
        """A WRITE whose payload ends with a complete valid frame (with a hidden sequence
        number); returns (its frame, the index of the hidden frame's image in it)."""
        hseq = rng.choice(HIDDEN_SEQS)
        inner_cmd = rng.choice([(Op.WRITE, 1 << 32, np.array([[weight() for _ in range(m)]])),
                                (Op.CLEAR, 1, None), (Op.SEED, rng.randrange(1 << 32), None),
                                (Op.PERTURB, 1, None)])
        inner = encode_frame(cfg, hseq, *inner_cmd)
        bb = beat_bytes(cfg)
        count = -(-(len(inner) + 1) // bb)
        if count > min(words, write_beats(cfg)):
            return None, None
        pad = bytes(rng.randrange(256) for _ in range(count * bb - len(inner)))
        raw = bytearray(pad + inner)
        # keep every weight in range (the bytes beyond w_bits of each weight are its sign)
        for k in range(0, len(raw), wbytes):
            v = int.from_bytes(raw[k:k + wbytes], "little", signed=True)
            if not -lim <= v < lim:
                return None, None
        w = decode_weights(cfg, bytes(raw))
        start = rng.randrange(0, words - count + 1)
        seq = next_seq()
        f = frame_for(seq, (Op.WRITE, (count << 32) | start, w))
        stats["hidden_frames"] += 1
        return f, f.index(inner[1:-1])

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

    def write(data):
        link.write(data)
        stats["bytes_sent"] += len(data)

    def probe(label):
        t0 = time.monotonic()
        for attempt in range(probes):
            if attempt:
                stats["probe_retries"] += 1
                rs, _ = link.replies(settle=settle * 5, timeout=probe_timeout)
                account(rs, label)
            seq = next_seq()
            write(frame_for(seq, (STATUS_OP, 0, None)))
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
        write(frame_for(seq, (Op.READ, words << 32, None)))
        rs, ok = link.replies(until=lambda r, s=seq: r[0] == s, timeout=probe_timeout)
        account(rs, label)
        if not ok:
            raise FuzzFailure(f"{label}: no answer to the weight read-back")
        stats["weight_checks"] += 1
        if not (gold.weights.reshape(-1, m) == decode_weights(cfg, rs[-1][2])).all():
            raise FuzzFailure(f"{label}: weights differ from the golden engine's")

    def answered(label, seq, what):
        rs, ok = link.replies(until=lambda r, s=seq: r[0] == s, timeout=probe_timeout)
        account(rs, label)
        if not ok:
            raise FuzzFailure(f"{label}: no reply to {what}")
        return rs[-1][1]

    # a known start: weights, mu, a seed
    gold_w = np.array([[rng.randrange(-lim // 4, lim // 4) for _ in range(m)]
                       for _ in range(words)])
    for cmd in [(Op.NOP, 0, None), (Op.CLEAR, 0, None), (Op.MU, 2000, None), (Op.SEED, 7, None)]:
        seq = next_seq()
        write(frame_for(seq, cmd))
        answered("setup", seq, "a set-up frame")
    for k in range(0, words, write_beats(cfg)):
        n = min(write_beats(cfg), words - k)
        seq = next_seq()
        write(frame_for(seq, (Op.WRITE, (n << 32) | k, gold_w[k:k + n])))
        answered("setup", seq, "a set-up frame")

    t_start = time.monotonic()
    for case in range(cases):
        mut = rng.choices(MUTATIONS, weights=WEIGHTS)[0]
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
            write(f)
            answered(label, seq, "an intact frame")
        elif mut == "truncate":
            cut = rng.randrange(1, len(f) - 1)
            write(f[:cut])
            rs, _ = link.replies(settle=settle * 3, timeout=probe_timeout)
            account(rs, label)
        elif mut in ("bitflip", "burst_flip"):
            g = bytearray(f)
            nbits = 1 if mut == "bitflip" else rng.randrange(2, 9)
            pos = rng.randrange(0, len(g) * 8 - nbits + 1)
            for b in range(pos, pos + nbits):
                if mut == "bitflip" or rng.random() < 0.5 or b in (pos, pos + nbits - 1):
                    g[b // 8] ^= 1 << (b % 8)
            write(bytes(g))
            rs, _ = link.replies(settle=settle, timeout=probe_timeout)
            account(rs, label)
        elif mut == "junk":
            write(_junk(rng, rng.randrange(1, MIN_FRAME)).replace(bytes([SYNC]), b"\x01") + f)
            answered(label, seq, "a frame after junk shorter than a frame")
        elif mut == "long_junk":
            write(_junk(rng, rng.randrange(MIN_FRAME, 41)) + f)
            rs, _ = link.replies(settle=settle, timeout=probe_timeout)
            account(rs, label)
        elif mut == "back_to_back":
            seq2 = next_seq()
            f2 = frame_for(seq2, random_command())
            write(f + f2)
            rs, _ = link.replies(settle=settle, timeout=probe_timeout)
            account(rs, label)
        elif mut == "pause":
            cut = rng.randrange(1, len(f))
            write(f[:cut])
            time.sleep(rng.choice([0.0005, 0.002, 0.005, 0.01, 0.02, 0.04]) * rng.random())
            write(f[cut:])
            rs, _ = link.replies(settle=settle, timeout=probe_timeout)
            account(rs, label)
        elif mut == "hidden":
            sent.pop(seq, None)                        # this case sends a hidden-frame WRITE
            h, at = hidden_write()
            if h is None:
                write(f)
                sent[seq] = cmd
                answered(label, seq, "an intact frame")
            else:
                how = rng.choice(["intact", "header", "zero_before", "image_byte"])
                codes = _code_positions(h)
                if how == "intact":
                    write(h)
                elif how == "header":
                    g = bytearray(h)
                    k = rng.choice([k for k in range(2, min(12, len(h) - 1)) if k not in codes]
                                   or [2])
                    g[k] ^= 1 << rng.randrange(8)
                    cut = rng.randrange(k + 1, len(g) - 1)
                    write(bytes(g[:cut]))
                    time.sleep(rng.choice([0.0, 0.03]))
                    write(bytes(g[cut:]))
                elif how == "zero_before":
                    write(h[:at - 1] + bytes([SYNC]) + h[at:])
                else:
                    ks = [k for k in range(at, len(h) - 1) if k not in codes]
                    g = bytearray(h)
                    k = rng.choice(ks)
                    g[k] ^= 1 << rng.randrange(8)
                    write(bytes(g))
                rs, _ = link.replies(settle=settle, timeout=probe_timeout)
                account(rs, f"{label} {how}")
        else:                                          # lost_resend
            sent.pop(seq, None)
            rseq = next_seq()
            fr = frame_for(rseq, (Op.READ, (words << 32), None))
            count = rng.randrange(1, min(words, write_beats(cfg)) + 1)
            data = np.array([[weight() for _ in range(m)] for _ in range(count)])
            wseq = next_seq()
            fw = frame_for(wseq, (Op.WRITE, (count << 32) | rng.randrange(0, words - count + 1),
                                  data))
            write(fr + fw)
            # The READ's reply first (a board starved of CPU can be silent for longer than any
            # settle time before it: a resend then would overrun too), then whatever follows.
            rs, got = link.replies(until=lambda r: r[0] == rseq, timeout=probe_timeout)
            if not got:
                account(rs, label)
                raise FuzzFailure(f"{label}: no reply to the long READ")
            more, _ = link.replies(settle=settle * 3, timeout=probe_timeout)
            rs += more
            account(rs, label)
            # Recovery: after a LOST reply the first resend runs; when the overrun left no
            # reply at all (the WRITE's remains were a lone delimiter), the LOST is still
            # pending, so the first resend may be answered LOST and the second must run.
            lost_seen = any(r[1] == Kind.LOST for r in rs)
            if wseq in sent:
                stats["lost_resends"] += 1
                for attempt in range(2):
                    write(fw)
                    k = answered(label, wseq, "a WRITE resent after an overrun")
                    if k in (Kind.DONE, Kind.DUPLICATE):
                        break
                    if k != Kind.LOST or lost_seen:
                        raise FuzzFailure(f"{label}: a WRITE resent after an overrun was "
                                          f"answered {k.name} (resend {attempt + 1}), not DONE")
                    lost_seen = True
        # frames never answered stay in `sent`: a late answer (a slow machine) is accounted when
        # it comes, in order; sequence numbers come round again only 239 frames later
        if mut != "none":
            probe(label)
        if rng.random() < 0.2:                         # clear a sticky overrun now and then
            s2 = next_seq()
            write(frame_for(s2, (Op.CLEAR, 1, None)))
            answered(label, s2, "a CLEAR")
        if (case + 1) % check_every == 0:
            check_weights(label)
            if progress:
                rate = (case + 1) / (time.monotonic() - t_start)
                progress(f"{case + 1}/{cases} cases, {stats['frames']} frames, "
                         f"{rate:.0f} cases/s (seed {seed})")
    check_weights("end")
    stats["seconds"] = time.monotonic() - t_start
    return stats
