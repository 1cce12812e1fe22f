"""The ``pezo board`` command: talk to the engine on a board (or on the Verilator-built board)
over its serial link (:class:`pezo.host.serial_link.SerialTransport`).

    pezo board ping     --port /dev/ttyUSB1          round trips, with their time
    pezo board status   --port PORT                  the status word, decoded
    pezo board read     --port PORT [--start S] [--count N] [--raw]
    pezo board write    --port PORT --start S --values V1 V2 ... [--raw]
    pezo board selftest --port PORT [--steps 3]      MeZO steps on the board vs the golden engine
    pezo board sim      [--tcp N]                    run the Verilator-built board, print its port
    pezo board fuzz     [--port PORT] [--cases N]    random and mutated frames (sim/cosim/fuzz.py)

The engine configuration is the board's default (``--board``, as ``make synth`` builds it), with
``--config``/``--set`` on top; it must be the bitstream's. ``--port sim`` starts the Verilator-built
board of that configuration for the one command.
"""

import signal
import sys
import time

import numpy as np

from pezo.argtypes import positive_int, progress_printer
from pezo.boards.targets import get_board
from pezo.config import EngineConfig, load_over_default, parse_assignments, split_assignments
from pezo.host.engine import EngineClient
from pezo.host.serial_link import SerialTransport
from pezo.sim.cosim.board import SimBoard
from pezo.sim.cosim.fuzz import run_fuzz

__all__ = ["register", "selftest", "board_config"]

ACTIONS = ("ping", "status", "read", "write", "selftest", "sim", "fuzz")


def register(subparsers):
    b = subparsers.add_parser("board", help="talk to the engine on a board over its serial link "
                              "(ping, status, read, write, selftest), or run the Verilator-built "
                              "board (sim)")
    b.add_argument("action", choices=ACTIONS)
    b.add_argument("--values", nargs="+", type=float, default=None, metavar="V",
                   help="write: the weights (a multiple of the lane count)")
    b.add_argument("--port", "-p", help="serial device (/dev/ttyUSB1), pyserial URL "
                   "(socket://127.0.0.1:N) or 'sim' (start the Verilator-built board)")
    b.add_argument("--board", "-b", default="ice40", help="board whose default engine "
                   "configuration the bitstream has (default ice40)")
    b.add_argument("--config", "-c", metavar="FILE", help="engine configuration file on top of "
                   "the board's default")
    b.add_argument("--set", "-s", metavar="KEY=VALUE", action="append", default=[],
                   help="override one parameter (engine or generator key)")
    b.add_argument("--baud", type=positive_int, default=115200, help="line rate (default 115200)")
    b.add_argument("--timeout", type=float, default=2.0, help="reply timeout in s (default 2)")
    b.add_argument("--start", type=int, default=0, help="read/write: first word (default 0)")
    b.add_argument("--count", type=positive_int, default=None, help="read: words (default all)")
    b.add_argument("--raw", action="store_true", help="read/write integers, not reals")
    b.add_argument("--steps", type=positive_int, default=3, help="selftest: MeZO steps")
    b.add_argument("--cases", type=positive_int, default=1000,
                   help="fuzz: cases (frames, intact or mutated; default 1000)")
    b.add_argument("--seed", type=int, default=1, help="fuzz: random seed (default 1)")
    b.add_argument("--tcp", type=int, default=None, metavar="N",
                   help="sim: serve on socket://127.0.0.1:N (0: any free port) instead of a pty")
    b.set_defaults(func=cmd_board)
    return b


def board_config(board, config=None, sets=()) -> EngineConfig:
    """The engine configuration of ``board``'s default with a file and KEY=VALUE overrides."""
    gen, eng = split_assignments(parse_assignments(list(sets)))
    return load_over_default(get_board(board).default, config, eng, gen)


def selftest(client, cfg, steps=3, seed=1, progress=print):
    """MeZO steps on ``client`` (+1, -2, +1 and an update per step, replayed by reseeding or
    rewinding the pool) checked against the golden engine after every pass by reading all
    weights back. Returns the number of weights compared; raises AssertionError at the first
    difference."""
    rng = np.random.default_rng(seed)
    gold = EngineClient(cfg, "golden")
    lim = 1 << (cfg.w_bits - 3)
    w = rng.integers(-lim, lim, cfg.depth)
    compared = 0

    def check(label):
        nonlocal compared
        got, want = client.read_weights(raw=True), gold.read_weights(raw=True)
        bad = np.flatnonzero(got != want)
        if len(bad):
            raise AssertionError(f"{label}: weight {bad[0]} is {got[bad[0]]} on the board, "
                                 f"{want[bad[0]]} in the golden engine ({len(bad)} differ)")
        st, gst = client.status(), gold.status()
        if st != gst:
            raise AssertionError(f"{label}: status {st} on the board, {gst} in the golden engine")
        compared += len(got)

    for e in (client, gold):
        e.clear()
        e.write_weights(w, raw=True)
        e.set_mu(1e-2)
    check("after WRITE")
    pregen = cfg.generator.reuse == "pregen"
    for step in range(steps):
        seed_t = int(rng.integers(1, 1 << 31))
        for e in (client, gold):
            e.load_seed(seed_t)
        start = gold.offset
        for sign in (1, -2, 1):
            for e in (client, gold):
                e.set_offset(start, seed_t) if pregen else e.load_seed(seed_t)
                e.perturb(sign)
            check(f"step {step} pass {sign:+d}")
        c = float(rng.normal()) * 1e-3
        for e in (client, gold):
            e.set_offset(start, seed_t) if pregen else e.load_seed(seed_t)
            e.update(c)
        check(f"step {step} update")
        progress(f"step {step}: weights and status equal the golden engine")
    return compared


def cmd_board(args):
    cfg = board_config(args.board, args.config, args.set)
    if args.action == "sim":
        return _serve(cfg, args)
    if args.action == "fuzz":
        return _fuzz(cfg, args)
    if not args.port:
        raise ValueError(f"pezo board {args.action} needs --port (a serial device, a pyserial "
                         f"URL, or 'sim')")
    _check_args(cfg, args)          # before any port is opened or board started
    board = SimBoard(cfg) if args.port == "sim" else None
    try:
        t = SerialTransport(cfg, board.port if board else args.port, baud=args.baud,
                            timeout=args.timeout, closing=board)
    except BaseException:
        if board:
            board.close()
        raise
    client = EngineClient(cfg, t)
    try:
        return _ACTIONS[args.action](client, cfg, args)
    finally:
        t.close()


def _ping(client, cfg, args):
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        client.transport.command(0)
        times.append(time.perf_counter() - t0)
    print(f"{args.port}: 10/10 NOP frames answered, round trip median "
          f"{np.median(times) * 1e3:.2f} ms (min {min(times) * 1e3:.2f}, max "
          f"{max(times) * 1e3:.2f})")
    return 0


def _status(client, cfg, args):
    st = client.transport.query_status()
    print("  ".join(f"{k}={v}" for k, v in st.items()))
    return 0


def _check_block(cfg, start, count):
    if not 0 <= start < cfg.words:
        raise ValueError(f"Start word must be in 0..{cfg.words - 1} (the engine holds "
                         f"{cfg.words} words of {cfg.lanes}), not {start}")
    if count is not None and not 1 <= count <= cfg.words - start:
        raise ValueError(f"Word count from word {start} must be in 1..{cfg.words - start}, "
                         f"not {count}")


def _check_args(cfg, args):
    if args.action == "read":
        _check_block(cfg, args.start, args.count)
    elif args.action == "write":
        if not args.values:
            raise ValueError("pezo board write needs the weights to write: --values V1 V2 ... "
                             f"(a multiple of {cfg.lanes}, the lane count)")
        if args.raw and any(v != int(v) for v in args.values):
            bad = next(v for v in args.values if v != int(v))
            raise ValueError(f"--raw weights must be integers, not {bad!r}")
        _check_block(cfg, args.start, -(-len(args.values) // cfg.lanes))


def _read(client, cfg, args):
    count = args.count if args.count is not None else cfg.words - args.start
    w = client.read_weights(args.start, count, raw=args.raw)
    for v in w:
        print(int(v) if args.raw else f"{v:.6g}")
    return 0


def _write(client, cfg, args):
    client.write_weights(np.array(args.values), start=args.start, raw=args.raw)
    print(f"wrote {len(args.values)} weight(s) from word {args.start}")
    return 0


def _selftest(client, cfg, args):
    n = selftest(client, cfg, args.steps, progress=lambda m: print(m, file=sys.stderr))
    print(f"selftest passed: {args.steps} MeZO step(s), {n:,} weights read back, all equal to "
          f"the golden engine ({cfg.name()})")
    return 0


def _fuzz(cfg, args):
    port = None if args.port in (None, "sim") else args.port
    st = run_fuzz(cfg, cases=args.cases, seed=args.seed, port=port,
                  progress=progress_printer("fuzz"), check_every=max(1, min(1000, args.cases)))
    print(f"fuzz passed: {st['cases']:,} cases ({st['case_frames']:,} fuzzed frames, "
          f"{st['frames']:,} frames in all), {st['executed']:,} executed, mutations "
          f"{st['mutations']}, replies {st['replies']}, {st['weight_checks']} weight read-backs, "
          f"slowest status answer {st['max_probe_s'] * 1e3:.1f} ms, {st['seconds']:.0f} s")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _serve(cfg, args):
    with SimBoard(cfg, link="pty" if args.tcp is None else "tcp", tcp_port=args.tcp or 0) as b:
        print(f"simulated board {cfg.name()} on {b.port} (Ctrl-C stops it)", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while b.proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    print(f"stopped: {b.stats}")
    return 0


_ACTIONS = {"ping": _ping, "status": _status, "read": _read, "write": _write,
            "selftest": _selftest}

assert set(_ACTIONS) | {"sim", "fuzz"} == set(ACTIONS)
