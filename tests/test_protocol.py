"""The board link (pezo.boards.protocol) and its hardware (pezo.boards.bridge.SerialBridge): known
answers for the CRC and the status word, the bridge against the protocol's reference model and
the golden engine on command scripts, every opcode byte, corrupted, truncated and repeated frames,
and receiver overruns (issue #14 D3-D5)."""

import random

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
import numpy as np
import pytest

from pezo.boards.bridge import SerialBridge, crc8_next
from pezo.boards.protocol import (RSYNC, STATUS_OP, BridgeModel, Kind, ProtocolError,
                                  beat_bytes, crc8, decode_reply, decode_status, decode_weights,
                                  encode_frame,
                                  status_bytes, write_beats)
from pezo.config import EngineConfig as E, GeneratorConfig as G
from pezo.host.engine import EngineClient, EngineError
from pezo.sim.engine import EngineModel, Err, Op, encode_signed

CFG = E(generator=G(lanes=2, reuse="pregen", pool_size=64), depth=256, w_int=8, w_frac=12)
TIMEOUT = 64


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


def test_frame_known_answer():
    """A SEED 5 frame with sequence 7, byte by byte."""
    f = encode_frame(CFG, 7, Op.SEED, 5)
    body = bytes([7, 1, 5, 0, 0, 0, 0, 0, 0, 0])
    assert f == bytes([0xA5]) + body + bytes([crc8(body)])
    w = encode_frame(CFG, 8, Op.WRITE, 1 << 32, [[1, -1]])
    payload = bytes([1, 0, 0, 0xFF, 0xFF, 0xFF])                  # two 3-byte weights
    head = bytes([8, 7, 0, 0, 0, 0, 1, 0, 0, 0])
    assert w == bytes([0xA5]) + head + bytes([crc8(head)]) + payload + bytes([crc8(payload)])
    with pytest.raises(ValueError, match="Sequence number must be in 0..255, not 256"):
        encode_frame(CFG, 256, Op.NOP)
    with pytest.raises(ValueError, match="Opcode byte must be in 0..255, not 300"):
        encode_frame(CFG, 0, 300)
    with pytest.raises(ValueError, match="A WRITE frame of 2 word"):
        encode_frame(CFG, 0, Op.WRITE, 2 << 32)


class SimLink:
    """The bridge in the Amaranth simulator, fed byte chunks with random gaps while its output
    is taken with random backpressure. ``send(chunk, expect)`` waits until ``expect`` more reply
    bytes arrived (the host's one-frame-in-flight rule); ``idle(cycles)`` leaves the line
    quiet."""

    def __init__(self, cfg, timeout=TIMEOUT, seed=1):
        self.dut = SerialBridge(cfg, timeout=timeout)
        self.rng = random.Random(seed)
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
                        while rng.random() < 0.3:             # gaps shorter than the timeout
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


def test_corrupted_truncated_repeated_frames_and_overruns():
    """issue #14 D5: a corrupted WRITE is answered BAD_CRC and never applied; a truncated frame is
    dropped after the timeout (TIMEOUT reply) and the next frame runs; a repeated UPDATE (same
    sequence number: a retry after a lost reply) is answered DUPLICATE and applied once; after a
    receiver overrun the next frame is answered LOST (not run) and the overrun bit shows in every
    status until an accepted CLEAR; junk between frames is skipped."""
    cfg = CFG
    rng = np.random.default_rng(4)
    w = rng.integers(0, 100, (8, cfg.lanes))          # payload bytes 0..99: no SYNC among them
    good = encode_frame(cfg, 1, Op.WRITE, 8 << 32, w)
    bad = bytearray(good)
    bad[20] ^= 0x10                                   # one payload bit flipped
    bad_count = bytearray(good)
    bad_count[7] ^= 0x01                              # count 8 -> 9: caught by the header CRC
    upd = encode_frame(cfg, 5, Op.UPDATE, encode_signed(-9000))
    read = encode_frame(cfg, 6, Op.READ, 8 << 32)
    script = [("send", bytes(bad_count)), ("send", bytes(bad)), ("send", b"\x00\x13\xff" + good),
              ("send", encode_frame(cfg, 2, Op.SEED, 77)), ("send", encode_frame(cfg, 3, Op.MU,
                                                                                  2500)),
              ("send", encode_frame(cfg, 4, Op.PERTURB, 0)[:7]), ("idle",),
              ("send", upd), ("send", upd), ("send", read),
              ("overrun",), ("send", encode_frame(cfg, 7, STATUS_OP)),
              ("send", encode_frame(cfg, 8, Op.CLEAR, 1)),
              ("send", encode_frame(cfg, 9, STATUS_OP))]
    hw = run_script(cfg, script, seed=5)
    got = replies(cfg, hw)
    kinds = [k for k, _, _ in got]
    assert kinds == [Kind.BAD_CRC, Kind.BAD_CRC, Kind.DONE, Kind.DONE, Kind.DONE, Kind.TIMEOUT,
                     Kind.DONE, Kind.DUPLICATE, Kind.DATA, Kind.LOST, Kind.DONE, Kind.DONE]
    assert hw == model_bytes(cfg, script)
    assert hw[:2] == bytes([RSYNC, 1]) and hw[8 + 1] == 1    # replies echo the sequence
    got = got[1:]
    # the weights: one WRITE, no PERTURB (truncated), one UPDATE, by the golden engine alone
    gold = EngineModel(cfg)
    gold.execute(Op.WRITE, 8 << 32, w)
    gold.execute(Op.SEED, 77)
    gold.execute(Op.MU, 2500)
    gold.execute(Op.UPDATE, encode_signed(-9000))
    assert (decode_weights(cfg, got[7][1]) == gold.weights[:16].reshape(-1, 2)).all()
    assert [st["overrun"] for _, _, st in got[7:]] == [0, 1, 0, 0]
    assert got[8][2]["overrun"] == 1 and got[9][2]["overrun"] == 0


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
