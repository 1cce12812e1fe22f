"""`pezo board` arguments (issue 23, section 2, defects 3-5): a TCP port out of range is refused
by argparse, every argument of every action is checked before the Verilator board is built or a
port opened, and a simulated board does not outlive the `pezo board sim` that started it."""

import argparse
import os
from pathlib import Path
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import pezo.host.board_cli as board_cli
from pezo import argtypes
from pezo.cli import main


class ExpensiveStep(Exception):
    """Raised by the stand-ins of the board builder, the serial transport and the fuzzer
    (main() does not catch this class)."""


@pytest.fixture
def expensive(monkeypatch):
    """The simulated board, its builder, the serial transport and the fuzzer replaced by stand-ins
    that record the call and raise :class:`ExpensiveStep`."""
    calls = []

    def stand_in(step):
        def run(*args, **kwargs):
            calls.append(step)
            raise ExpensiveStep(f"{step} reached")
        return run
    import pezo.sim.cosim.board as simboard
    monkeypatch.setattr(simboard, "build_board", stand_in("build_board"))
    monkeypatch.setattr(board_cli, "SimBoard", stand_in("SimBoard"))
    monkeypatch.setattr(board_cli, "SerialTransport", stand_in("SerialTransport"))
    monkeypatch.setattr(board_cli, "run_fuzz", stand_in("run_fuzz"))
    return calls


# --- defect 3: --tcp ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["-5", "99999", "65536", "x", "1.5"])
def test_tcp_port_out_of_range_is_refused_by_argparse(capsys, expensive, text):
    """`--tcp -5` served on 65531 and `--tcp 99999` on 34463 (the C++ side truncated them)."""
    with pytest.raises(SystemExit) as e:
        main(["board", "sim", "--tcp", text])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert re.search(rf"^pezo board: error: argument --tcp: must be a TCP port in 0\.\.65535 "
                     rf"\(0: any free port\), not '{re.escape(text)}'$", err, re.M), err
    assert not expensive


def test_tcp_port_type():
    got = [argtypes.tcp_port(t) for t in ("0", "1", "5555", "65535", "0x10")]
    assert got == [0, 1, 5555, 65535, 16]
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be a TCP port in 0\.\.65535 "
                                                         r"\(0: any free port\), not '-1'$"):
        argtypes.tcp_port("-1")


@pytest.mark.parametrize("port", [-1, 65536, "5555", True])
def test_simboard_refuses_a_bad_tcp_port_before_building(expensive, port):
    from pezo.config import EngineConfig
    from pezo.sim.cosim.board import SimBoard
    with pytest.raises(ValueError, match=rf"^TCP port must be an integer in 0\.\.65535 \(0: any "
                                         rf"free port\), not {re.escape(repr(port))}$"):
        SimBoard(EngineConfig(), link="tcp", tcp_port=port)
    assert not expensive


# --- defect 4: every argument checked before anything expensive -----------------------------------

SETS = ["--set", "depth=64", "--set", "lanes=2", "--set", "reuse=none", "--set", "pool_size=none"]

BAD_ARGS = [
    # write: the count, the values, the range of words (the count was checked after a 63 s build)
    (["write", "--port", "sim", "--values", "1"],
     r"Weight count \(--values\) must be a multiple of the lane count 2, not 1"),
    (["write", "--port", "sim", "--values", "1", "2", "3"],
     r"Weight count \(--values\) must be a multiple of the lane count 2, not 3"),
    (["write", "--port", "sim", "--values", "0.5", "9"],
     r"Weight 9\.0 is outside the Q4\.12 range \[-8\.0, 7\.999755859375\]"),
    (["write", "--port", "sim", "--raw", "--values", "1", "-40000"],
     r"Raw weight -40000 must be in -32768\.\.32767 \(Q4\.12\)"),
    (["write", "--port", "sim", "--values", "1", "inf"],
     r"Weights must be finite numbers, not inf"),
    (["write", "--port", "sim", "--raw", "--values", "nan", "1"],
     r"Weights must be finite numbers, not nan"),
    (["write", "--port", "sim", "--start", "31", "--values", "1", "2", "3", "4"],
     r"Word count from word 31 must be in 1\.\.1, not 2"),
    (["write", "--port", "sim", "--start", "-1", "--values", "1", "2"],
     r"Start word must be in 0\.\.31 \(the engine holds 32 words of 2\), not -1"),
    # read, and the options an action does not take (they were silently ignored)
    (["read", "--port", "sim", "--start", "-3"],
     r"Start word must be in 0\.\.31 \(the engine holds 32 words of 2\), not -3"),
    (["read", "--port", "sim", "--values", "1", "2"],
     r"pezo board read takes no --values \(it is for write\)"),
    (["status", "--port", "sim", "--tcp", "5555"],
     r"pezo board status takes no --tcp \(it is for sim\)"),
    (["ping", "--port", "sim", "--steps", "2"],
     r"pezo board ping takes no --steps \(it is for selftest, train\)"),
    (["selftest", "--port", "sim", "--cases", "5"],
     r"pezo board selftest takes no --cases \(it is for fuzz\)"),
    (["sim", "--port", "sim"],
     r"pezo board sim serves a simulated board and takes no --port \(--tcp N serves it on a TCP "
     r"port, else on a pseudo-terminal\)"),
    (["sim", "--start", "2"], r"pezo board sim takes no --start \(it is for read, write\)"),
    (["fuzz", "--raw"], r"pezo board fuzz takes no --raw \(it is for read, write\)"),
    (["sim", "--baud", "9600"],
     r"pezo board sim takes no --baud \(it is for ping, status, read, write, selftest, train\)"),
    (["write", "--port", "sim", "--count", "1", "--values", "1", "2"],
     r"pezo board write takes no --count \(it is for read\)"),
    (["ping", "--port", "sim", "--batch", "4"], r"pezo board ping takes no --batch \(it is for train\)"),
    # argparse types
    (["status", "--port", "sim", "--timeout", "0"],
     r"argument --timeout: must be a positive number of seconds, not '0'"),
    (["status", "--port", "sim", "--timeout", "-1"],
     r"argument --timeout: must be a positive number of seconds, not '-1'"),
    (["status", "--port", "sim", "--timeout", "nan"],
     r"argument --timeout: must be a positive number of seconds, not 'nan'"),
    (["fuzz", "--seed", "-1"], r"argument --seed: must be a non-negative integer, not '-1'"),
    # actions that need the weight memory, on an engine without one
    (["selftest", "--port", "sim", "--set", "weights=stream"],
     r"pezo board selftest reads and writes the engine's weight memory; an engine with "
     r"weights='stream' has none"),
    (["fuzz", "--set", "weights=stream"],
     r"pezo board fuzz reads and writes the engine's weight memory; an engine with "
     r"weights='stream' has none"),
]


@pytest.mark.parametrize("argv,msg", BAD_ARGS, ids=lambda x: " ".join(x)[:60] if isinstance(
    x, list) else "")
def test_board_arguments_are_checked_before_the_board_is_built(capsys, expensive, argv, msg):
    """Each refusal comes before the simulated board is built (build_board, SimBoard) or a port
    opened (SerialTransport, run_fuzz): those are stand-ins here that raise."""
    t0 = time.perf_counter()
    try:
        code = main(["board"] + argv + SETS)
    except SystemExit as e:             # an argparse type: the usage line and the message
        code = e.code
    assert code == 2 and not expensive, expensive
    err = capsys.readouterr().err
    if msg.startswith("argument "):     # an argparse type: after the usage lines
        err = err.splitlines(keepends=True)[-1]
    assert re.fullmatch(rf"pezo board: error: {msg}\n", err), err
    assert time.perf_counter() - t0 < 5


#: pezo board train's refusals (its shape comes from a [train] file: no --set).
TRAIN_BAD_ARGS = [
    (["train", "--port", "sim", "--values", "1"], r"pezo board train takes no --values \(it is for write\)"),
    (["train", "--batch", "8"],
     r"pezo board train needs --port \(a serial device, a pyserial URL, or 'sim'\)"),
    (["train", "--port", "sim", "--batch", "3"],
     r"Batch size \(batch\) must be a power of two in 1\.\.1024 \(the coefficient divides by B "
     r"with a shift\), not 3"),
    (["train", "--port", "sim", "--batch", "512"],
     r"Batch size \(batch\) 512 is larger than the training design's index buffer \(256\)"),
    (["train", "--port", "sim", "--mu", "0.003"],
     r"mu must be a power of two \(the coefficient is a shift, no divider\), 2\^-12\.\.2\^-6, "
     r"not 0\.003"),
    (["train", "--port", "sim", "--steps", "5", "--stop-after", "9"],
     r"--stop-after must be below --steps \(5\), not 9"),
    (["train", "--port", "sim", "--label", "y"], r"--label applies to your own data \(--data FILE\)"),
    (["train", "--port", "sim", "--data", "x.txt"],
     r"--data must be a \.csv, \.parquet or \.npz file or sklearn:NAME, not 'x\.txt'"),
    (["train", "--port", "sim", "--data", "sklearn:breast_cancer"],
     r"Data set 'sklearn:breast_cancer' does not have integer raw features in 0\.\.255; the "
     r"chip stores small integer codes \(0\.\.2\^b - 1 at b = 4 or 5 bits per feature; digits: "
     r"0\.\.16\): quantise them \(--quantise: 16 equal bins over each feature's training "
     r"range\) or scale and round them first"),
    (["train", "--port", "sim", "--quantise"], r"--quantise applies to your own data \(--data FILE\)"),
    (["train", "--port", "sim", "--set", "depth=64"],
     r"pezo board train takes no --set \(the training design's shape is its --config file's "
     r"\[train\] table\)"),
]


@pytest.mark.parametrize("argv,msg", TRAIN_BAD_ARGS, ids=lambda x: " ".join(x)[:60]
                         if isinstance(x, list) else "")
def test_board_train_arguments_are_checked_before_the_board_is_built(capsys, expensive, argv,
                                                                     msg):
    code = main(["board"] + argv)
    assert code == 2 and not expensive, expensive
    err = capsys.readouterr().err
    assert re.fullmatch(rf"pezo board: error: {msg}\n", err), err


def test_board_read_and_write_reach_the_port_when_valid(expensive):
    """The checks above refuse only what is wrong: the same actions with good arguments go on
    to start the board."""
    for argv in (["write", "--port", "sim", "--start", "30", "--values", "1", "2", "3", "-4"],
                 ["write", "--port", "sim", "--raw", "--values", "-32768", "32767"],
                 ["read", "--port", "sim", "--start", "31", "--count", "1"],
                 ["selftest", "--port", "sim", "--steps", "1"],
                 ["sim", "--tcp", "0"], ["fuzz", "--cases", "3", "--seed", "2"],
                 ["status", "--port", "socket://127.0.0.1:1", "--timeout", "0.5"]):
        with pytest.raises(ExpensiveStep):
            main(["board"] + argv + SETS)
    assert expensive == ["SimBoard"] * 5 + ["run_fuzz", "SerialTransport"]


# --- defect 5: the simulated board dies with its parent ------------------------------------------

def _board_children(pid):
    """Pids of the simulated boards (Vpezo_board processes) among the children of ``pid``."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            ppid = int((d / "stat").read_text().rpartition(")")[2].split()[1])
            if ppid == pid and b"Vpezo_board" in (d / "cmdline").read_bytes():
                found.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue                       # not a process, or one that just ended
    return found


def _alive(pid):
    """True while ``pid`` exists and is not a zombie (a killed child whose new parent has not
    reaped it yet is dead: it holds no socket)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.board
@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the parent-death signal (prctl PR_SET_PDEATHSIG) is Linux only")
def test_simulated_board_dies_with_a_killed_parent():
    """`pezo board sim` killed with SIGKILL (no handler runs, nothing closes the board) left its
    Verilator board running and listening; the board now goes with it."""
    proc = subprocess.Popen([sys.executable, "-m", "pezo", "board", "sim", "--tcp", "0"] + SETS,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    board = None
    try:
        deadline = time.monotonic() + 600              # a first run builds the board
        while not lines and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lines, f"no port line: {proc.poll()} {proc.stderr.read() if proc.poll() else ''}"
        port = int(re.search(r"socket://127\.0\.0\.1:(\d+)", lines[0]).group(1))
        board, = _board_children(proc.pid)
        assert _alive(board) and _accepts(port)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 5
        while _alive(board) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(board), "the board outlived its parent"
        assert not _accepts(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if board is not None and _alive(board):
            os.kill(board, signal.SIGKILL)           # the board this test started, by its pid
