"""The board link (pezo.boards.protocol) and its hardware (pezo.boards.bridge.SerialBridge): known
answers for the CRC and the status word, the bridge against the protocol's reference model and
the golden engine on command scripts, every opcode byte, corrupted, truncated and repeated frames,
and receiver overruns (issue #14 D3-D5)."""

import random

from cobs import cobs
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
import numpy as np
import pytest

from pezo.boards.bridge import SerialBridge, crc8_next
from pezo.boards.protocol import (HEADER_BYTES, MAX_WRITE_BYTES, MIN_FRAME, RSYNC, STATUS_OP,
                                  BridgeModel, Kind, ProtocolError, beat_bytes, crc8, crc16,
                                  decode_reply, decode_status, decode_weights, encode_frame,
                                  encode_weights, frame_length, rejected_seq, status_bytes,
                                  write_beats)
from pezo.config import EngineConfig as E, GeneratorConfig as G
from pezo.host.engine import EngineClient, EngineError
from pezo.sim.engine import EngineModel, Err, Op, encode_signed

CFG = E(generator=G(lanes=2, reuse="pregen", pool_size=64), depth=256, w_int=8, w_frac=12)
TIMEOUT = 64
#: 16-bit weights: every byte pattern of a payload is a weight
CFG16 = E(generator=G(lanes=2), depth=256, w_int=4, w_frac=12)


def test_crc8_known_answers():
    # CRC-8/ROHC (poly 0x07, init 0xFF, reflected in and out, no xorout): catalogue check value
    assert crc8(b"123456789") == 0xD0
    assert crc8(b"") == 0xFF and crc8(b"\x00" * 9) != 0
    data = bytes(random.Random(1).randrange(256) for _ in range(50))
    assert crc8(data + bytes([crc8(data)])) == 0        # the residue the bridge checks


def test_crc8_catches_every_line_burst_up_to_8_bits():
    """Bits taken LSB first (the UART's order): every burst of 1-8 bits within a frame's covered
    bytes, in the order the bits travel on the line, changes the residue."""
    frame = bytes(random.Random(2).randrange(256) for _ in range(11))
    frame += bytes([crc8(frame)])
    for length in range(1, 9):
        for start in range(len(frame) * 8 - length + 1):
            for pattern in range(1 << max(0, length - 2)):
                bits = [start, start + length - 1] + [start + 1 + k for k in range(length - 2)
                                                      if pattern >> k & 1]
                g = bytearray(frame)
                for b in set(bits):
                    g[b // 8] ^= 1 << (b % 8)
                assert crc8(g) != 0, (length, start, pattern)


def test_hardware_crc_step_is_the_table_crc():
    """crc8_next (the unrolled bit-serial update the bridge uses) equals the table CRC for every
    byte after 32 CRC states."""
    m = Module()
    c, b, o = Signal(8), Signal(8), Signal(8)
    m.d.comb += o.eq(crc8_next(c, b))
    sim = Simulator(m)
    states = list(range(0, 256, 8))

    async def tb(ctx):
        for cv in states:
            for bv in range(256):
                ctx.set(c, cv)
                ctx.set(b, bv)
                assert ctx.get(o) == crc8(bytes([bv]), cv), (cv, bv)
    sim.add_testbench(tb)
    sim.run()


def test_status_word_known_answer():
    st = {"busy": 0, "error": 1, "error_code": 2, "saturated": 1, "filling": 0, "last_pass": 3,
          "offset": 0x012345}
    word = status_bytes(st, overrun=1)
    assert word == bytes([0b1_11_0_1_10_1, 0x45, 0x23, 0x01])
    assert decode_status(word) == {**st, "overrun": 1}


def _x25(data):
    """CRC-16/X-25 written here from its definition (polynomial 0x1021 reflected = 0x8408, taken
    LSB first, initial 0xFFFF, final XOR 0xFFFF), independently of amaranth.lib.crc."""
    crc = 0xFFFF
    for b in bytes(data):
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def test_crc16_known_answers():
    assert _x25(b"123456789") == 0x906E                 # the catalogue's check value
    assert crc16(b"123456789") == 0x906E
    rng = random.Random(5)
    for n in (0, 1, 12, 270):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert crc16(data) == _x25(data)


def test_crc16_catches_every_line_burst_up_to_16_bits():
    """Every burst of 1-16 bits, in line order (LSB first), anywhere in the longest frame the
    bridge takes (10 + 256 + 2 bytes) changes the CRC. The CRC is affine, so a burst is missed
    exactly when the XOR of its bits' syndromes is zero: all 2^14 middle patterns of each
    16-bit window are checked at once."""
    n = HEADER_BYTES + MAX_WRITE_BYTES
    zero = _x25(bytes(n))
    syn = np.array([_x25(bytes(n)[:k // 8] + bytes([1 << (k % 8)]) + bytes(n)[k // 8 + 1:])
                    ^ zero for k in range(n * 8)], dtype=np.uint32)
    # the CRC field itself: an error in its bit j flips the received CRC's bit j
    syn = np.concatenate([syn, 1 << np.arange(16, dtype=np.uint32)])
    for length in range(1, 17):
        mid = length - 2
        subsets = np.zeros(1 << max(mid, 0), dtype=np.uint32)
        for start in range(len(syn) - length + 1):
            if length == 1:
                assert syn[start] != 0, start
                continue
            subsets[:1] = 0
            for k in range(mid):
                subsets[1 << k:2 << k] = subsets[:1 << k] ^ syn[start + 1 + k]
            ends = syn[start] ^ syn[start + length - 1]
            assert (subsets ^ ends).all(), (length, start)


def _cobs_decode(raw):
    """COBS decoding written here from Cheshire and Baker's definition."""
    out, k = bytearray(), 0
    while k < len(raw):
        code = raw[k]
        assert code != 0
        out += raw[k + 1:k + code]
        k += code
        if code != 0xFF and k < len(raw):
            out.append(0)
    return bytes(out)


def test_frame_known_answer():
    """A SEED 5 frame with sequence 7, byte by byte: the body 07 01 05 00 x 7 and its CRC,
    COBS-encoded between two zero delimiters."""
    f = encode_frame(CFG, 7, Op.SEED, 5)
    body = bytes([7, 1, 5, 0, 0, 0, 0, 0, 0, 0])
    c = _x25(body).to_bytes(2, "little")
    assert 0 not in c                                  # (so the last block is 03 c0 c1)
    assert f == bytes([0, 4, 7, 1, 5, 1, 1, 1, 1, 1, 1, 3]) + c + bytes([0])
    w = encode_frame(CFG, 8, Op.WRITE, 1 << 32, [[1, -1]])
    payload = bytes([1, 0, 0, 0xFF, 0xFF, 0xFF])                  # two 3-byte weights
    head = bytes([8, 7, 0, 0, 0, 0, 1, 0, 0, 0])
    assert w[0] == 0 and w[-1] == 0 and 0 not in w[1:-1]
    assert _cobs_decode(w[1:-1]) == head + payload + _x25(head + payload).to_bytes(2, "little")
    with pytest.raises(ValueError, match="Sequence number must be in 0..255, not 256"):
        encode_frame(CFG, 256, Op.NOP)
    with pytest.raises(ValueError, match="Opcode byte must be in 0..255, not 300"):
        encode_frame(CFG, 0, 300)
    with pytest.raises(ValueError, match="A WRITE frame of 2 word"):
        encode_frame(CFG, 0, Op.WRITE, 2 << 32)


def test_no_delimiter_inside_any_frame():
    """The property the framing rests on: whatever the frame holds (payloads of zeros, of
    0xFF, of the old sync byte, other complete frames), the delimiter occurs only at its two
    ends, the overhead is at most one byte per 254, and the body decodes back exactly."""
    cfg = CFG16
    rng = random.Random(6)
    lim = 1 << (cfg.w_bits - 1)
    wb = write_beats(cfg)
    inner = encode_frame(cfg, 3, Op.MU, 1234)
    fills = [np.zeros((wb, 2), int), np.full((wb, 2), -1), np.full((wb, 2), 0xA5A5 - lim * 2)]
    for k in range(200):
        count = rng.randrange(1, wb + 1)
        if k < len(fills):
            w = fills[k][:count]
        else:
            w = np.array([[rng.choice([0, -1, 0xA5, rng.randrange(-lim, lim)]) for _ in range(2)]
                          for _ in range(count)])
        if k % 3 == 0 and count >= 6:                  # a complete frame among the weights
            raw = bytearray(encode_weights(cfg, w))
            raw[:len(inner)] = inner
            w = decode_weights(cfg, bytes(raw))
        f = encode_frame(cfg, rng.randrange(256), Op.WRITE, (count << 32), w)
        assert f[0] == 0 and f[-1] == 0 and 0 not in f[1:-1], k
        body = _cobs_decode(f[1:-1])
        assert len(f) - 2 <= len(body) + 1 + len(body) // 254
        assert len(f) <= frame_length(len(body) - 12)
        if len(body) <= 254:
            assert len(f) == frame_length(len(body) - 12)
        assert body[HEADER_BYTES:-2] == encode_weights(cfg, w)


class SimLink:
    """The bridge in the Amaranth simulator, fed byte chunks with random gaps while its output
    is taken with random backpressure. ``send(chunk, expect)`` waits until ``expect`` more reply
    bytes arrived (the host's one-frame-in-flight rule); ``idle(cycles)`` leaves the line
    quiet."""

    def __init__(self, cfg, timeout=TIMEOUT, seed=1, gaps=0.3):
        self.dut = SerialBridge(cfg, timeout=timeout)
        self.rng = random.Random(seed)
        self.gaps = gaps
        self.out = bytearray()
        self.actions = []

    def run(self):
        dut, rng, out = self.dut, self.rng, self.out

        async def tb(ctx):
            async def tick():
                ctx.set(dut.o.ready, rng.random() < 0.7)
                if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                    out.append(ctx.get(dut.o.payload))
                await ctx.tick()

            for kind, value, expect in self.actions:
                if kind == "send":
                    for b in value:
                        while rng.random() < self.gaps:       # gaps shorter than the timeout
                            ctx.set(dut.i.valid, 0)
                            await tick()
                        ctx.set(dut.i.valid, 1)
                        ctx.set(dut.i.payload, b)
                        while True:
                            took = ctx.get(dut.i.ready)
                            await tick()
                            if took:
                                break
                        ctx.set(dut.i.valid, 0)
                elif kind == "pulse":
                    ctx.set(dut.overrun, 1)
                    await tick()
                    ctx.set(dut.overrun, 0)
                else:
                    for _ in range(value):
                        await tick()
                limit = 20000
                while len(out) < expect:
                    await tick()
                    limit -= 1
                    assert limit, f"no reply: {len(out)} of {expect} bytes after {kind}"
            for _ in range(50):                       # nothing more comes out
                await tick()

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(tb)
        sim.run()
        return bytes(out)


def run_script(cfg, script, seed=1):
    """Run ``script`` (("send", bytes) | ("idle",) | ("overrun",)) through the hardware bridge,
    paced by the reference model's reply lengths; returns the hardware's reply bytes."""
    model, link = BridgeModel(cfg), SimLink(cfg, seed=seed)
    total = 0
    for item in script:
        if item[0] == "send":
            total += len(model.feed(item[1]))
            link.actions.append(("send", item[1], total))
        elif item[0] == "idle":
            total += len(model.idle())
            link.actions.append(("idle", TIMEOUT + 8, total))
        else:
            model.lose()
            link.actions.append(("pulse", None, total))
    return link.run()


def model_bytes(cfg, script):
    """The reference model's reply bytes for ``script``."""
    model, out = BridgeModel(cfg), bytearray()
    for item in script:
        if item[0] == "send":
            out += model.feed(item[1])
        elif item[0] == "idle":
            out += model.idle()
        else:
            model.lose()
    return bytes(out)


def replies(cfg, data):
    """Split a reply byte stream into decoded replies."""
    out, k = [], 0
    while k < len(data):
        assert data[k] == RSYNC, data[k:].hex()
        kind = data[k + 2]
        n = 8
        if kind == Kind.DATA:
            # a DATA reply's length comes from its request; find it by the CRC residue
            n = next(n for n in range(8, len(data) - k + 1, 1)
                     if (n - 8) % beat_bytes(cfg) == 0 and crc8(data[k + 1:k + n]) == 0)
        out.append(decode_reply(cfg, data[k:k + n]))
        k += n
    return out


def _weights(rng, cfg, words):
    lim = 1 << (cfg.w_bits - 2)
    return rng.integers(-lim, lim, (words, cfg.lanes))


def test_bridge_matches_model_and_golden_engine_on_a_command_script():
    cfg = CFG
    rng = np.random.default_rng(1)
    wb = write_beats(cfg)
    w = _weights(rng, cfg, wb)
    frames = [(Op.NOP, 0, None), (Op.WRITE, wb << 32, w),
              (Op.WRITE, (3 << 32) | 50, w[:3]),
              (Op.WRITE, (wb + 1) << 32, None),            # too long for one frame: ARG
              (Op.SEED, 5, None), (Op.MU, encode_signed(20000), None), (Op.PERTURB, 0, None),
              (Op.READ, wb << 32, None), (Op.READ, 999 << 32, None), (STATUS_OP, 0, None),
              (Op.CLEAR, 1, None), (Op.OFFSET, 2, None), (Op.UPDATE, encode_signed(-7000), None),
              (Op.READ, (4 << 32) | 49, None), (0x13, 0, None), (Op.CLEAR, 0, None)]
    script = [("send", encode_frame(cfg, k, op, arg, d)) for k, (op, arg, d) in enumerate(frames)]
    hw = run_script(cfg, script)
    expect = BridgeModel(cfg)
    want = b"".join(expect.feed(s[1]) for s in script)
    assert hw == want
    # and, independently of the bridge model: the golden engine given the same commands
    gold = EngineModel(cfg)
    got = replies(cfg, hw)
    assert [r[0] for r in got].count(Kind.DATA) == 2
    for (op, arg, d), (kind, data, st) in zip(frames, got):
        if op == STATUS_OP:
            r = None
        else:
            if op == Op.WRITE and (arg >> 32) > wb:
                arg |= 1 << 63
            r = gold.execute(op if op < 16 else 15, arg, d)
        want_st = gold.status()
        assert {k: st[k] for k in want_st} == want_st, (op, arg)
        if r is not None:
            assert kind == Kind.DATA and (np.frombuffer(data, np.uint8).size
                                          == r.size * 3)


def test_every_opcode_byte_through_the_bridge():
    """Opcode bytes 0x00-0xFF (issue #14 D3, D4): 0-13 (the Op members) run their command, 0x80 answers status,
    every other byte is rejected with OPCODE and changes nothing; the link answers each (no
    hang) and the hardware equals the reference model byte for byte."""
    cfg = E(generator=G(lanes=2), depth=16, stochastic=False)
    rng = np.random.default_rng(2)
    w = _weights(rng, cfg, cfg.words)
    script = [("send", encode_frame(cfg, 0, Op.WRITE, cfg.words << 32, w)),
              ("send", encode_frame(cfg, 1, Op.MU, 3000))]
    for k, op in enumerate(range(256)):
        arg = (1 << 32) if op in (Op.WRITE, Op.READ) else 0
        d = w[:1] if op == Op.WRITE else None
        script.append(("send", encode_frame(cfg, (2 + 2 * k) % 256, op, arg, d)))
        script.append(("send", encode_frame(cfg, (3 + 2 * k) % 256, Op.CLEAR, 1)))
    script.append(("send", encode_frame(cfg, 9, Op.READ, cfg.words << 32)))
    hw = run_script(cfg, script, seed=3)
    expect = BridgeModel(cfg)
    assert hw == b"".join(expect.feed(s[1]) for s in script)
    got = replies(cfg, hw)
    for op in range(256):
        kind, _, st = got[2 + 2 * op]
        if op < len(Op) or op == STATUS_OP:
            assert st["error_code"] in (Err.NONE, Err.ARG, Err.UNSUPPORTED) or op == 0, op
            assert st["error_code"] != Err.OPCODE, op
        else:
            assert (st["error"], st["error_code"]) == (1, Err.OPCODE), hex(op)
    # weights: only the commands 0-13 moved them (one PERTURB and one UPDATE with z of seed 0)
    gold = EngineModel(cfg)
    gold.execute(Op.WRITE, cfg.words << 32, w)
    gold.execute(Op.MU, 3000)
    for op in range(len(Op)):
        arg = (1 << 32) if op in (Op.WRITE, Op.READ) else 0
        gold.execute(op, arg, w[:1] if op == Op.WRITE else None)
        gold.execute(Op.CLEAR, 1)
    kind, data, _ = got[-1]
    assert kind == Kind.DATA
    assert (decode_weights(cfg, data) == gold.weights.reshape(-1, cfg.lanes)).all()


def _data_positions(frame):
    """Indices of the bytes of an encoded frame that are data, not COBS code bytes."""
    codes, k = set(), 1
    while k < len(frame) - 1:
        codes.add(k)
        k += frame[k]
    return [k for k in range(1, len(frame) - 1) if k not in codes]


def _flip_nonzero(frame, k, bit):
    """``frame`` with bit ``bit`` of byte ``k`` flipped (k chosen so the byte stays non-zero)."""
    g = bytearray(frame)
    g[k] ^= 1 << bit
    assert g[k] != 0
    return bytes(g)


def test_corrupted_truncated_repeated_frames_and_overruns():
    """issue #14 D5 on the COBS link: a corrupted WRITE (payload or count) is answered BAD_CRC
    and never applied; a truncated frame is dropped after the timeout (TIMEOUT reply) and its
    late remains are discarded without a reply; a repeated UPDATE (same sequence number: a
    retry after a lost reply) is answered DUPLICATE and applied once; after a receiver overrun
    the next frame is answered LOST (not run), the same frame resent runs, and the overrun bit
    shows in every status until an accepted CLEAR; short junk between frames is skipped, long
    junk is answered BAD_CRC and costs the frame after it nothing."""
    cfg = CFG
    rng = np.random.default_rng(4)
    w = rng.integers(-300, 300, (8, cfg.lanes))
    good = encode_frame(cfg, 1, Op.WRITE, 8 << 32, w)
    k = [k for k in _data_positions(good) if k > 14 and good[k] != 1 << 4][0]
    bad = _flip_nonzero(good, k, 4)                   # a payload data bit: only the CRC sees it
    body = bytearray(_cobs_decode(good[1:-1]))
    body[6] = 9                                       # count 8 -> 9, CRC of the original
    bad_count = bytes([0]) + cobs.encode(bytes(body)) + bytes([0])
    upd = encode_frame(cfg, 5, Op.UPDATE, encode_signed(-9000))
    read = encode_frame(cfg, 6, Op.READ, 8 << 32)
    perturb = encode_frame(cfg, 4, Op.PERTURB, 0)
    w2 = rng.integers(-300, 300, (2, cfg.lanes))
    write2 = encode_frame(cfg, 10, Op.WRITE, (2 << 32) | 20, w2)
    junk = bytes(range(5, 25))
    script = [("send", bad_count), ("send", bad), ("send", b"\x13\xff" + good),
              ("send", encode_frame(cfg, 2, Op.SEED, 77)),
              ("send", junk + encode_frame(cfg, 3, Op.MU, 2500)),
              ("send", perturb[:7]), ("idle",), ("send", perturb[7:]),
              ("send", upd), ("send", upd), ("send", read),
              ("overrun",), ("send", write2), ("send", write2),
              ("send", encode_frame(cfg, 7, STATUS_OP)),
              ("send", encode_frame(cfg, 8, Op.CLEAR, 1)),
              ("send", encode_frame(cfg, 9, STATUS_OP)),
              ("send", encode_frame(cfg, 11, Op.READ, 32 << 32))]
    hw = run_script(cfg, script, seed=5)
    got = replies(cfg, hw)
    kinds = [k for k, _, _ in got]
    assert kinds == [Kind.BAD_CRC, Kind.BAD_CRC, Kind.DONE, Kind.DONE, Kind.BAD_CRC, Kind.DONE,
                     Kind.TIMEOUT, Kind.DONE, Kind.DUPLICATE, Kind.DATA, Kind.LOST, Kind.DONE,
                     Kind.DONE, Kind.DONE, Kind.DONE, Kind.DATA]
    assert hw == model_bytes(cfg, script)
    assert hw[:2] == bytes([RSYNC, 1]) and hw[8 + 1] == 1    # replies echo the sequence
    assert hw[4 * 8 + 1] == junk[1]                   # long junk: its "sequence" is a guess
    # the weights: one WRITE, no PERTURB (truncated), one UPDATE, the WRITE resent after LOST
    # once, by the golden engine alone
    gold = EngineModel(cfg)
    gold.execute(Op.WRITE, 8 << 32, w)
    gold.execute(Op.SEED, 77)
    gold.execute(Op.MU, 2500)
    gold.execute(Op.UPDATE, encode_signed(-9000))
    assert (decode_weights(cfg, got[9][1]) == gold.weights[:16].reshape(-1, 2)).all()
    gold.execute(Op.WRITE, (2 << 32) | 20, w2)
    assert (decode_weights(cfg, got[-1][1]) == gold.weights[:64].reshape(-1, 2)).all()
    assert [st["overrun"] for _, _, st in got[9:]] == [0, 1, 1, 1, 0, 0, 0]


def _hidden_frame_write(cfg, seq):
    """A WRITE of words 8.. whose payload ends with a complete, valid frame (a WRITE of marker
    weights to word 0): the frame a line error must never uncover."""
    inner = encode_frame(cfg, 200, Op.WRITE, 1 << 32, [[1111, -1111]])
    wbytes = 2 * cfg.lanes
    count = -(-(len(inner) + 3) // wbytes)
    payload = bytes([0x11] * (count * wbytes - len(inner))) + inner
    w = decode_weights(cfg, payload)
    return encode_frame(cfg, seq, Op.WRITE, (count << 32) | 8, w), w, inner


@pytest.mark.parametrize("fault", ["intact", "header_byte", "hidden_byte", "pause_after_header",
                                   "zero_before_hidden", "zero_in_header"])
def test_a_frame_hidden_in_a_payload_never_runs(fault):
    """issue #23: a WRITE whose payload holds a complete valid frame, hit on the line where the
    old framing broke: a corrupted header (BAD_CRC), a pause longer than the timeout after the
    header (TIMEOUT; the rest, hidden frame included, is discarded up to the next delimiter),
    and the worst single-byte errors COBS allows, a zero created just before the hidden frame's
    image or inside the header (the frame splits; neither piece is a valid frame). Intact, the
    hidden frame is data. The weights are compared with the golden engine given only the frames
    that should run."""
    cfg = CFG16
    f, w, inner = _hidden_frame_write(cfg, 150)
    enc_inner = inner[1:-1]                           # the hidden frame's COBS image
    at = f.index(enc_inner)
    assert at > 1 and f[at - 1] != 0                  # its opening delimiter is a code byte now
    if fault == "intact":
        sent = [("send", f)]
    elif fault == "header_byte":
        sent = [("send", _flip_nonzero(f, 3, 6))]
    elif fault == "hidden_byte":                      # a data byte of the hidden frame
        k = [k for k in _data_positions(f) if k > at + 3 and f[k] != 1][0]
        sent = [("send", _flip_nonzero(f, k, 0))]
    elif fault == "pause_after_header":
        sent = [("send", _flip_nonzero(f, 3, 6)[:12]), ("idle",),
                ("send", _flip_nonzero(f, 3, 6)[12:])]
    elif fault == "zero_before_hidden":
        sent = [("send", f[:at - 1] + b"\0" + f[at:])]
    else:
        sent = [("send", f[:4] + b"\0" + f[5:])]
    start = np.arange(cfg.words * cfg.lanes).reshape(-1, cfg.lanes) - 40
    script = [("send", encode_frame(cfg, k, Op.WRITE, ((min(64, cfg.words - k * 64)) << 32)
                                    | k * 64, start[k * 64:k * 64 + 64]))
              for k in range(cfg.words // 64)]
    script += sent + [("send", encode_frame(cfg, 100, Op.READ, 16 << 32))]
    hw = run_script(cfg, script, seed=7)
    assert hw == model_bytes(cfg, script)
    got = replies(cfg, hw)
    kinds = [k for k, _, _ in got[cfg.words // 64:]]
    gold = EngineModel(cfg)
    gold.execute(Op.WRITE, cfg.words << 32, start)
    if fault == "intact":
        assert kinds == [Kind.DONE, Kind.DATA]
        gold.execute(Op.WRITE, (len(w) << 32) | 8, w)
    else:
        assert Kind.DONE not in kinds and kinds[-1] == Kind.DATA, kinds
        assert set(kinds[:-1]) <= {Kind.BAD_CRC, Kind.TIMEOUT}, kinds
    assert (decode_weights(cfg, got[-1][1]) == gold.weights[:32].reshape(-1, 2)).all()
    assert (gold.weights[:2] != [1111, -1111]).all()


def test_rejected_replies_carry_the_first_decoded_byte():
    """The SEQ of a TIMEOUT or BAD_CRC reply is what the decoder yielded first, 0 when nothing
    (a TIMEOUT with sequence 0 after a frame cut right after its first code byte is that, not a
    reply with a wrong sequence number)."""
    cfg = CFG16
    f = encode_frame(cfg, 0x42, Op.SEED, 3)
    assert rejected_seq(f[1:2]) == 0 and rejected_seq(f[1:3]) == 0x42
    assert rejected_seq(bytes([1, 0x42])) == 0        # a first block of no bytes: a zero
    script = [("send", f[:2]), ("idle",), ("send", f[:3]), ("idle",),
              ("send", b"\0" + bytes([1]) + bytes(range(1, MIN_FRAME)) + b"\0")]
    hw = run_script(cfg, script, seed=9)
    assert hw == model_bytes(cfg, script)
    assert [(k, s) for k, s in ((r[0], hw[8 * i + 1]) for i, r in
                                enumerate(replies(cfg, hw)))] == [
        (Kind.TIMEOUT, 0), (Kind.TIMEOUT, 0x42), (Kind.BAD_CRC, 0)]


@pytest.mark.parametrize("gap", [TIMEOUT - 3, TIMEOUT - 2, TIMEOUT - 1, TIMEOUT, TIMEOUT + 1])
def test_pauses_just_under_and_over_the_timeout(gap):
    """A frame paused for ``gap`` cycles after a byte in its middle: shorter than the timeout
    (``timeout`` cycles without a byte), the frame runs; from the timeout on, it is dropped with
    a TIMEOUT reply and its rest is discarded up to the next delimiter, silently."""
    cfg = CFG16
    f = encode_frame(cfg, 3, Op.SEED, 0x00A5_0000_00A5)
    link = SimLink(cfg, seed=11, gaps=0)
    link.actions += [("send", f[:6], 0), ("idle", gap, 0), ("send", f[6:], 8),
                     ("send", encode_frame(cfg, 4, STATUS_OP), 16)]
    got = replies(cfg, link.run())
    if gap < TIMEOUT:
        assert [k for k, _, _ in got] == [Kind.DONE, Kind.DONE]
    else:
        assert [k for k, _, _ in got] == [Kind.TIMEOUT, Kind.DONE]


def test_decode_reply_refuses_malformed_replies():
    good = bytes([RSYNC, 3, 0, 0, 0, 0, 0]) + bytes([crc8(bytes([3, 0, 0, 0, 0, 0]))])
    assert decode_reply(CFG, good, seq=3, op_byte=Op.NOP)[0] == Kind.DONE
    with pytest.raises(ProtocolError, match="Reply CRC mismatch"):
        decode_reply(CFG, good[:-1] + b"\x00")
    with pytest.raises(ProtocolError, match="Reply answers frame 3, not 4"):
        decode_reply(CFG, good, seq=4)
    with pytest.raises(ProtocolError, match="must start with 0x5a"):
        decode_reply(CFG, b"\x00" + good[1:])


@pytest.mark.parametrize("transport", ["golden", "amaranth"])
def test_every_opcode_through_the_engine_transports(transport):
    """issue #14 D3 at the engine port: opcodes 14-255 (beyond the Op members) are an OPCODE error on every transport
    (the Amaranth transport sends the engine's unknown code 15 for values beyond its 4-bit
    field), and change no weight."""
    cfg = E(generator=G(lanes=2), depth=8, stochastic=False)
    eng = EngineClient(cfg, transport)
    w = np.arange(cfg.depth) - 4
    eng.write_weights(w, raw=True)
    for op in list(range(len(Op), 40)) + [0x80, 0x93, 0xF3, 0xFF]:
        with pytest.raises(EngineError, match=f"rejected opcode {op} with argument 0x0: error "
                                              f"OPCODE"):
            eng._do(op, 0)
    assert (eng.read_weights(raw=True) == w).all()
