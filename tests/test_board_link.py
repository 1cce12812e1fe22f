"""The host's serial link to the Verilator-built board (issue #14): MeZO training through a
pseudo-terminal bit-identical to the golden engine, retries that never apply a command twice, the
`pezo board` command, and a short fuzz run (make regress runs the long one)."""

import time

import numpy as np
import pytest
import serial

from pezo.boards.protocol import Kind, decode_weights, encode_frame
from pezo.cli import main
from pezo.config import EngineConfig as E, GeneratorConfig as G
from pezo.host.engine import EngineClient
from pezo.host.perturb import make_source
from pezo.host.serial_link import LinkError, SerialTransport
from pezo.host.train import TrainConfig, train
from pezo.sim.cosim.board import SimBoard
from pezo.sim.cosim.fuzz import run_fuzz
from pezo.sim.engine import EngineModel, Op, encode_signed

pytestmark = pytest.mark.board

SMALL = E(generator=G(lanes=2), depth=64)


@pytest.mark.parametrize("steps", [12, pytest.param(200, marks=pytest.mark.regress)])
def test_mezo_training_through_the_board_on_a_pty_is_bit_identical(steps):
    """pezo train's board source over a pseudo-terminal to the Verilator-built board: every
    weight after 12 ZO steps (200 in make regress; pregen, 2 queries) equals the golden
    engine's."""
    cfg = TrainConfig(source="board", port="sim", reuse="pregen", steps=steps, q=2,
                      eval_every=4)
    opts = dict(lanes=4, reuse="pregen", pool_size=1024)
    board = make_source("board", 650, port="sim", **opts)
    gold = make_source("pezo", 650, engine="golden", **opts)
    try:
        assert board.eng.transport.name == "serial"
        assert board.eng.transport.port.name.startswith("/dev/pts/")
        r_board = train(cfg, src=board)
        r_gold = train(cfg.__class__(**{**cfg.__dict__, "source": "pezo", "port": None,
                                        "engine": "golden"}), src=gold)
        w_board = board.eng.read_weights(raw=True)
        w_gold = gold.eng.read_weights(raw=True)
        assert (w_board == w_gold).all()
        assert r_board.test_loss == r_gold.test_loss
        assert board.eng.transport.stats["retries"] == 0
        assert abs(w_gold).sum() > 0
    finally:
        board.close()
        gold.close()


def test_zo_methods_through_the_board_on_a_pty_are_bit_identical():
    """The engine commands of the ZO methods (COORD, MASK, RANGE; issue #15) through the
    Verilator-built board over a pty: DeepZero CGE and masked RGE and ElasticZO, a few steps
    each on one board, every weight equal to the golden engine's after each run."""
    opts = dict(lanes=4, coord=True, mask="bitmap")
    board = make_source("board", 275, port="sim", **opts)
    gold = make_source("pezo", 275, engine="golden", **opts)
    try:
        for kw in (dict(algo="deepzero", estimator="cge", sparsity=0.9, steps=2),
                   dict(algo="deepzero", estimator="rge", sparsity=0.5, steps=4, mask_every=2),
                   dict(algo="elasticzo", steps=4)):
            cfg = TrainConfig(dataset="wine", model="mlp", source="board", port="sim",
                              eval_every=2, **kw)
            r_board = train(cfg, src=board)
            r_gold = train(cfg.__class__(**{**cfg.__dict__, "source": "pezo", "port": None,
                                            "engine": "golden"}), src=gold)
            assert (board.eng.read_weights(raw=True) == gold.eng.read_weights(raw=True)).all()
            assert r_board.test_loss == r_gold.test_loss and r_board.stats == r_gold.stats
        assert board.eng.transport.stats["retries"] == 0
    finally:
        board.close()
        gold.close()


class FlakyPort:
    """A pyserial port that loses the reply to the n-th frame written (read and discarded
    before the transport sees it) or flips a bit of the n-th frame on its way to the board."""

    def __init__(self, url, lose_reply_of=None, corrupt=None):
        self.port = serial.serial_for_url(url, timeout=0.3)
        self.lose, self.corrupt, self.n = lose_reply_of, corrupt, 0

    def write(self, data):
        self.n += 1
        if self.n == self.corrupt:
            data = bytearray(data)
            data[5] ^= 0x04
        self.port.write(bytes(data))
        if self.n == self.lose:
            time.sleep(0.2)
            self.port.read(self.port.in_waiting)       # the reply never reaches the host

    def read(self, n):
        return self.port.read(n)

    def reset_input_buffer(self):
        self.port.reset_input_buffer()

    def close(self):
        self.port.close()


@pytest.mark.parametrize("fault", ["lost_reply", "corrupted_frame"])
def test_retries_never_apply_a_command_twice(fault):
    """A lost reply to an UPDATE is recovered by resending the same frame: the board answers
    DUPLICATE and the update is applied once; a frame corrupted on the line is answered BAD_CRC
    and applied once, when resent."""
    cfg = SMALL
    with SimBoard(cfg, link="tcp") as b:
        # frames: 1 NOP (session start), 2 WRITE, 3 SEED, 4 MU, 5 UPDATE
        port = FlakyPort(b.port, lose_reply_of=5 if fault == "lost_reply" else None,
                         corrupt=5 if fault == "corrupted_frame" else None)
        t = SerialTransport(cfg, port, timeout=0.3)
        eng, gold = EngineClient(cfg, t), EngineModel(cfg)
        w = np.arange(cfg.depth).reshape(-1, 2) * 7 - 200
        eng.write_weights(w.reshape(-1), raw=True)
        eng.load_seed(9)
        eng.set_mu(0.01)
        c = eng.update(-0.003)
        for op, arg, d in [(Op.WRITE, cfg.words << 32, w), (Op.SEED, 9, None)]:
            gold.execute(op, arg, d)
        gold.execute(Op.MU, int(round(0.01 * 2 ** cfg.coef_frac)))
        gold.execute(Op.UPDATE, c & ((1 << 64) - 1))
        assert (eng.read_weights(raw=True) == gold.weights).all()
        assert t.stats["retries"] == 1
        assert t.stats["duplicates" if fault == "lost_reply" else "bad_crc"] == 1
        t.close()


class HidingPort(FlakyPort):
    """Flips a bit of the header of the n-th frame written and pauses (longer than the bridge's
    timeout) before sending the rest of it: the line fault under which the old framing ran a
    frame hidden in the payload."""

    def __init__(self, url, corrupt_header_of):
        super().__init__(url)
        self.hit = corrupt_header_of

    def write(self, data):
        self.n += 1
        if self.n != self.hit:
            return self.port.write(bytes(data))
        g = bytearray(data)
        g[3] ^= 0x40 if g[3] != 0x40 else 0x20
        self.port.write(bytes(g[:12]))
        time.sleep(0.1)
        self.port.write(bytes(g[12:]))


def test_a_frame_hidden_in_weights_never_runs_through_the_host_stack():
    """issue #23: weights whose bytes end with a complete MU frame, written through
    EngineClient + SerialTransport while the line corrupts that WRITE's header and pauses before
    its payload: one retry, and after SEED + PERTURB every weight equals the golden engine's (the
    old framing ran the hidden MU here and 45 of 64 weights differed)."""
    cfg = SMALL
    assert cfg.w_bits == 16                            # every byte pattern is a weight
    hidden = encode_frame(cfg, 0xE5, Op.MU, encode_signed(30000))
    pad = bytes([0x11] * (cfg.depth * 2 - len(hidden)))
    w = decode_weights(cfg, pad + hidden).reshape(-1)
    with SimBoard(cfg, link="tcp") as b:
        port = HidingPort(b.port, corrupt_header_of=3)   # 1 NOP (session start), 2 MU, 3 WRITE
        t = SerialTransport(cfg, port, timeout=0.3)
        eng, gold = EngineClient(cfg, t), EngineModel(cfg)
        eng.set_mu(0.01)
        eng.write_weights(w, raw=True)
        eng.load_seed(9)
        eng.perturb(+1)
        gold.execute(Op.MU, int(round(0.01 * 2 ** cfg.coef_frac)))
        gold.execute(Op.WRITE, cfg.words << 32, w.reshape(-1, 2))
        gold.execute(Op.SEED, 9)
        gold.execute(Op.PERTURB, 0)
        assert (eng.read_weights(raw=True) == gold.weights).all()
        assert t.stats["retries"] == 1 and t.stats["timeouts"] + t.stats["bad_crc"] == 1
        t.close()


def test_a_resent_write_recovers_from_an_overrun():
    """issue #23: with a LOST pending (junk sent right behind a long READ overran the UART),
    EngineClient's WRITE with a payload recovers by one resend (the old link answered every
    resend LOST: its reply overlapped the payload, which overran again), and the weights equal
    the golden engine's."""
    cfg = SMALL
    rng = np.random.default_rng(3)
    with SimBoard(cfg, link="tcp") as b:
        port = FlakyPort(b.port)
        t = SerialTransport(cfg, port, timeout=0.3)
        eng, gold = EngineClient(cfg, t), EngineModel(cfg)
        for trial in range(4):
            w = rng.integers(-3000, 3000, cfg.depth)
            # break the one-frame-in-flight rule by hand: a READ of every word and junk behind
            # it (with a sequence number the transport reaches only 100 frames later); the junk
            # overruns the UART while the READ is answered, and no frame follows it
            port.write(encode_frame(cfg, (t._seq + 100) % 256, Op.READ, cfg.words << 32)
                       + bytes([0x11] * 40))
            time.sleep(0.2)
            lost_before = t.stats["lost"]
            eng.write_weights(w, raw=True)             # one WRITE frame with payload
            gold.execute(Op.WRITE, cfg.words << 32, w.reshape(-1, 2))
            assert t.stats["lost"] - lost_before <= 1
            got = eng.read_weights(raw=True)
            assert (got == gold.weights).all(), (trial, t.stats)
        assert t.stats["lost"] >= 1 and t.query_status()["overrun"] == 1   # it did overrun
        t.close()


def test_link_error_names_the_command():
    """A port where nothing answers: LinkError after the retries, naming the command."""
    with SimBoard(SMALL, link="tcp") as b:
        port = FlakyPort(b.port)
        t = SerialTransport(SMALL, port, timeout=0.2, retries=1)
        port.lose = port.n + 1                       # the next frame's reply is lost ...
        port.port.close()
        port.port = serial.serial_for_url("loop://", timeout=0.2)   # ... and the line is dead
        with pytest.raises(LinkError, match=r"No valid reply to SEED \(sequence \d+\) after 2 "
                                            r"attempt\(s\)"):
            t.command(Op.SEED, 1)


def test_board_cli_selftest_status_and_errors(capsys):
    sets = ["--set", "depth=64", "--set", "lanes=2", "--set", "reuse=none", "--set",
            "pool_size=none"]
    assert main(["board", "selftest", "--port", "sim", "--steps", "2"] + sets) == 0
    out = capsys.readouterr().out
    assert "selftest passed: 2 MeZO step(s), 576 weights read back" in out   # (1 + 2 x 4) x 64
    assert main(["board", "status", "--port", "sim"] + sets) == 0
    assert "error=0  error_code=0  saturated=0" in capsys.readouterr().out
    assert main(["board", "ping"] + sets) == 2
    assert "pezo board ping needs --port" in capsys.readouterr().err
    assert main(["board", "read", "--port", "/dev/nonexistent-port"] + sets) == 2
    assert "Cannot open serial port '/dev/nonexistent-port'" in capsys.readouterr().err
    for argv, msg in [(["read", "--start", "999"], "Start word must be in 0..31 (the engine holds "
                                                   "32 words of 2), not 999"),
                      (["read", "--start", "30", "--count", "3"], "Word count from word 30 must "
                                                                  "be in 1..2, not 3"),
                      (["write"], "pezo board write needs the weights to write: --values"),
                      (["write", "--raw", "--values", "1", "0.5"], "--raw weights must be "
                                                                   "integers, not 0.5"),
                      (["fuzz", "--port", "/dev/nonexistent-port", "--cases", "2"],
                       "Cannot open serial port '/dev/nonexistent-port'")]:
        port = [] if "--port" in argv else ["--port", "sim"]
        assert main(["board"] + argv + port + sets) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (argv, err)
    assert main(["board", "write", "--port", "sim", "--start", "1", "--values", "0.5", "-0.25"]
                + sets) == 0
    assert "wrote 2 weight(s) from word 1" in capsys.readouterr().out


def test_fuzz_short_run():
    """300 random and mutated cases: the link stays live, never runs a ghost command, and the
    weights and every status equal the golden engine's given the executed frames."""
    st = run_fuzz(SMALL, cases=300, seed=3, check_every=100)
    assert st["cases"] == 300 and st["case_frames"] >= 300
    assert st["weight_checks"] == 4 and st["executed"] > 200
    assert all(st["mutations"][k] > 0 for k in st["mutations"])
    assert st["replies"][Kind.BAD_CRC.name] > 0 and st["replies"][Kind.TIMEOUT.name] > 0
    assert st["replies"][Kind.DUPLICATE.name] > 0
    assert st["replies"][Kind.LOST.name] > 0            # back-to-back frames overran the UART
