"""The ``pezo board`` command: talk to the engine on a board (or on the Verilator-built board)
over its serial link (:class:`pezo.host.serial_link.SerialTransport`).

    pezo board ping     --port /dev/ttyUSB1          round trips, with their time
    pezo board status   --port PORT                  the status word, decoded
    pezo board read     --port PORT [--start S] [--count N] [--raw]
    pezo board write    --port PORT --start S --values V1 V2 ... [--raw]
    pezo board selftest --port PORT [--steps 3]      MeZO steps on the board vs the golden engine
    pezo board sim      [--tcp N]                    run the Verilator-built board, print its port
    pezo board fuzz     [--port PORT] [--cases N] [--seed S]   random and mutated frames
                                                     (sim/cosim/fuzz.py)
    pezo board train    --port PORT [--config up5k-train.toml] [--steps N] [--seed S]
                        [--batch B] [--lr X] [--mu X] [--schedule step] [--eval-every N]
                        [--stop-after N] [--check] [--out run.json]
                                                     on-chip training of digits: the chip runs
                                                     every step (pezo.host.board_train)

The engine configuration is the board's default (``--board``, as ``make synth`` builds it), with
``--config``/``--set`` on top; it must be the bitstream's. ``--port sim`` starts the Verilator-built
board of that configuration for the one command.

Every argument is checked before a board is built or a port opened: an option the action does not
take (``--values`` for read, ``--tcp`` for anything but sim...), a weight count that is no multiple
of the lane count, a weight outside the weight format or a word range outside the engine is
refused at once, naming the value and what is accepted.
"""

import dataclasses
import json
import math
from pathlib import Path
import signal
import sys
import time

import numpy as np

from pezo.argtypes import (non_negative_int, positive_int, positive_seconds, progress_printer,
                           tcp_port)
from pezo.boards.targets import get_board
from pezo.config import EngineConfig, load_over_default, parse_assignments, split_assignments
from pezo.fixed import Q, from_fixed, to_fixed
from pezo.host.engine import EngineClient
from pezo.host.serial_link import SerialTransport
from pezo.sim.cosim.board import SimBoard
from pezo.sim.cosim.fuzz import run_fuzz
from pezo.host.board_train import BoardTrainer, compare_with_golden
from pezo.host.ontrain import chip_data, train_on_chip_model
from pezo.host.tabular import check_data_options
from pezo.sim.ontrain import (DATA_CAPACITY_WORDS, OnChipConfig, TrainerConfig,
                              load_trainer_config, train_registers, words_per_sample)

__all__ = ["register", "selftest", "board_config"]

ACTIONS = ("ping", "status", "read", "write", "selftest", "sim", "fuzz", "train")


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
    b.add_argument("--baud", type=positive_int, default=None,
                   help="line rate (default 115200)")
    b.add_argument("--timeout", type=positive_seconds, default=None,
                   help="reply timeout in s (default 2)")
    b.add_argument("--start", type=int, default=None, help="read/write: first word (default 0)")
    b.add_argument("--count", type=positive_int, default=None, help="read: words (default all)")
    b.add_argument("--raw", action="store_true", default=None,
                   help="read/write integers, not reals")
    b.add_argument("--steps", type=positive_int, default=None,
                   help="selftest: MeZO steps (default 3)")
    b.add_argument("--cases", type=positive_int, default=None,
                   help="fuzz: cases (frames, intact or mutated; default 1000)")
    b.add_argument("--seed", type=non_negative_int, default=None,
                   help="fuzz: random seed, to replay a run (default: a fresh one, printed)")
    b.add_argument("--batch", type=positive_int, default=None,
                   help="train: batch size (a power of two; default 64)")
    b.add_argument("--lr", type=float, default=None,
                   help="train: learning rate (2^-20..2^-4; default 2^-7)")
    b.add_argument("--mu", type=float, default=None,
                   help="train: perturbation scale (a power of two 2^-12..2^-6; default 2^-7)")
    b.add_argument("--schedule", choices=("constant", "step"), default=None,
                   help="train: learning-rate schedule (default constant)")
    b.add_argument("--eval-every", type=positive_int, default=None, dest="eval_every",
                   help="train: steps between validation evaluations (default steps / 50)")
    b.add_argument("--stop-after", type=positive_int, default=None, dest="stop_after",
                   help="train: send STOP once the board has run this many steps")
    b.add_argument("--check", action="store_true", default=None,
                   help="train: hold the run to the integer golden model (every logged step, "
                        "the evaluations, the weights); exit 1 on a difference")
    b.add_argument("--out", metavar="FILE", default=None,
                   help="train: write the run (figures, log, weights) as JSON")
    b.add_argument("--data", metavar="FILE", default=None,
                   help="train: your own data (.csv, .parquet, .npz, sklearn:NAME; integer "
                        "features 0..255, stored as codes min(x, 2^b - 1)) instead of digits; "
                        "with --port sim the design is built for its shape")
    b.add_argument("--label", metavar="COLUMN", default=None,
                   help="train --data CSV/Parquet: the label column (default the last)")
    b.add_argument("--split", metavar="FILE", default=None,
                   help="train --data: a file naming each row's split (train, val, test)")
    b.add_argument("--quantise", action="store_true", default=None,
                   help="train --data: any numeric features as 2^b equal bins over each "
                        "feature's training range (default: integer features 0..255 only)")
    b.add_argument("--tcp", type=tcp_port, default=None, metavar="N",
                   help="sim: serve on socket://127.0.0.1:N (0..65535; 0: any free port) "
                        "instead of a pty")
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
    if args.action == "train":
        return _train(args)
    cfg = board_config(args.board, args.config, args.set)
    _check_args(cfg, args)      # every argument, before any board is built or port opened
    if args.action == "sim":
        return _serve(cfg, args)
    if args.action == "fuzz":
        return _fuzz(cfg, args)
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


#: The options only some actions take, with those actions and the default they then have.
_OPTION_ACTIONS = {
    "values": ("--values", ("write",), None),
    "start": ("--start", ("read", "write"), 0),
    "count": ("--count", ("read",), None),
    "raw": ("--raw", ("read", "write"), False),
    "steps": ("--steps", ("selftest", "train"), None),
    "cases": ("--cases", ("fuzz",), 1000),
    "seed": ("--seed", ("fuzz", "train"), None),
    "tcp": ("--tcp", ("sim",), None),
    "baud": ("--baud", ("ping", "status", "read", "write", "selftest", "train"), 115200),
    "timeout": ("--timeout", ("ping", "status", "read", "write", "selftest", "train"), 2.0),
    "batch": ("--batch", ("train",), 64),
    "lr": ("--lr", ("train",), None),
    "mu": ("--mu", ("train",), None),
    "schedule": ("--schedule", ("train",), "constant"),
    "eval_every": ("--eval-every", ("train",), None),
    "stop_after": ("--stop-after", ("train",), None),
    "check": ("--check", ("train",), False),
    "out": ("--out", ("train",), None),
    "data": ("--data", ("train",), None),
    "label": ("--label", ("train",), None),
    "split": ("--split", ("train",), None),
    "quantise": ("--quantise", ("train",), False),
}
#: The actions that read or write the engine's weight memory.
_MEMORY_ACTIONS = ("read", "write", "selftest", "fuzz")


def _check_args(cfg, args):
    """Refuse what is wrong in ``args`` for ``args.action`` (options it does not take, a
    missing port, values the engine cannot hold), and fill in the defaults of the options it
    takes. Runs before any board is built or port opened: every error comes at once."""
    act = args.action
    _check_options(args)
    if act == "selftest" and args.steps is None:
        args.steps = 3
    if act == "sim" and args.port is not None:
        raise ValueError("pezo board sim serves a simulated board and takes no --port (--tcp N "
                         "serves it on a TCP port, else on a pseudo-terminal)")
    if act not in ("sim", "fuzz") and not args.port:
        raise ValueError(f"pezo board {act} needs --port (a serial device, a pyserial URL, or "
                         f"'sim')")
    if act in _MEMORY_ACTIONS and cfg.weights == "stream":
        raise ValueError(f"pezo board {act} reads and writes the engine's weight memory; an "
                         f"engine with weights='stream' has none")
    if act == "read":
        _check_block(cfg, args.start, args.count)
    elif act == "write":
        if not args.values:
            raise ValueError("pezo board write needs the weights to write: --values V1 V2 ... "
                             f"(a multiple of {cfg.lanes}, the lane count)")
        if len(args.values) % cfg.lanes:
            raise ValueError(f"Weight count (--values) must be a multiple of the lane count "
                             f"{cfg.lanes}, not {len(args.values)}")
        q = Q(cfg.w_int, cfg.w_frac)
        for v in args.values:
            if not math.isfinite(v):
                raise ValueError(f"Weights must be finite numbers, not {v!r}")
            if args.raw and v != int(v):
                raise ValueError(f"--raw weights must be integers, not {v!r}")
            if args.raw and not q.min_int <= v <= q.max_int:
                raise ValueError(f"Raw weight {int(v)} must be in {q.min_int}..{q.max_int} "
                                 f"({q})")
            if not args.raw and to_fixed(v, q)[1]:
                raise ValueError(f"Weight {v!r} is outside the {q} range "
                                 f"[{float(from_fixed(q.min_int, q))!r}, "
                                 f"{float(from_fixed(q.max_int, q))!r}]")
        _check_block(cfg, args.start, len(args.values) // cfg.lanes)


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
          f"{st['hidden_frames']:,} hidden frames, {st['lost_resends']:,} resends after an "
          f"overrun, {st['sync_bytes_in_bodies']:,} bytes of the delimiter's value in frame "
          f"bodies, "
          f"slowest status answer {st['max_probe_s'] * 1e3:.1f} ms, {st['seconds']:.0f} s, "
          f"seed {st['seed']}")
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


def _train(args):
    """pezo board train: digits trained on the training design by itself."""
    _check_options(args)
    if args.set:
        raise ValueError("pezo board train takes no --set (the training design's shape is its "
                         "--config file's [train] table)")
    if not args.port:
        raise ValueError("pezo board train needs --port (a serial device, a pyserial URL, or "
                         "'sim')")
    check_data_options(args.data, label=args.label, split=args.split, quantise=args.quantise)
    dataset = args.data or "digits"
    tcfg = load_trainer_config(args.config) if args.config else TrainerConfig()
    steps = 8000 if args.steps is None else args.steps
    seed = 0 if args.seed is None else args.seed
    run_cfg = OnChipConfig(steps=steps, batch=args.batch, lr=args.lr, mu=args.mu,
                           schedule=args.schedule, seed=seed, eval_every=args.eval_every)
    run_cfg.resolved()                                  # every value checked before a build
    data = chip_data(dataset, tcfg.feature_bits, label=args.label, split=args.split,
                     quantise=args.quantise, class_multiple=tcfg.lanes)
    if args.data is not None and args.config is None and args.port == "sim":
        # the Verilator-built board is built for the data's shape (a real board's bitstream
        # has its own: --config names it)
        tcfg = dataclasses.replace(tcfg, n_features=data.n_features, n_classes=data.n_classes)
    tcfg.fits(data, args.batch)
    train_registers(data, run_cfg)
    if args.stop_after is not None and args.stop_after >= steps:
        raise ValueError(f"--stop-after must be below --steps ({steps}), not {args.stop_after}")
    say = progress_printer("board")
    n = len(data.train) + len(data.val) + len(data.test)
    wps = words_per_sample(data.n_features, data.feature_bits)
    say(f"data: {dataset}, {n:,} samples x {data.n_features} features at {data.feature_bits} "
        f"bits = {n * wps:,} of {DATA_CAPACITY_WORDS:,} SPRAM words "
        f"({100 * n * wps / DATA_CAPACITY_WORDS:.1f} %), {data.n_classes} classes")
    board = None
    if args.port == "sim":
        say(f"building the Verilator board of {tcfg.name()} (cached after the first time)")
        board = SimBoard(tcfg)
    try:
        t = SerialTransport(tcfg.engine(), board.port if board else args.port, baud=args.baud,
                            timeout=args.timeout, closing=board, train=True)
    except BaseException:
        if board:
            board.close()
        raise
    try:
        run = BoardTrainer(tcfg, t, progress=say).train(data, run_cfg,
                                                        stop_after=args.stop_after)
    finally:
        t.close()
    ok = None
    if args.check:
        say("checking against the integer golden model")
        gold = train_on_chip_model(run_cfg, dataset=dataset, feature_bits=tcfg.feature_bits,
                                   label=args.label, split=args.split,
                                   quantise=args.quantise, class_multiple=tcfg.lanes,
                                   stop_after=run.steps_run if run.steps_run < steps else None)
        diffs = compare_with_golden(run, gold)
        ok = not diffs
    n_test = len(data.test)
    rate = run.steps_run / max(run.train_seconds, 1e-9)
    print(f"trained {run.steps_run:,} steps on {tcfg.name()} in {run.train_seconds:.1f} s "
          f"({rate:,.0f} steps/s on this link; LOAD {run.load_seconds:.1f} s; {run.cycles:,} "
          f"chip cycles, {run.cycles / max(1, run.steps_run):,.0f} per step with the "
          f"evaluations): test accuracy "
          f"{100 * run.test_acc:.2f} % ({run.test_correct}/{n_test}), best validation "
          f"{run.best_correct}/{len(data.val)} at step {run.best_step:,}")
    if ok is not None:
        print("bit-identical to the golden model: every logged step, the evaluations and every "
              "weight" if ok else "DIFFERS from the golden model:\n  " + "\n  ".join(diffs))
    if args.out:
        out = {"trainer": tcfg.to_dict(), "run": run.config, "steps_run": run.steps_run,
               "test_acc": run.test_acc, "test_correct": run.test_correct,
               "test_loss_sum": run.test_loss_sum, "best_step": run.best_step,
               "best_val_correct": run.best_correct, "best_val_loss_sum": run.best_loss_sum,
               "train_seconds": run.train_seconds, "load_seconds": run.load_seconds,
               "stats": run.stats, "golden_identical": ok, "cycles": run.cycles,
               "log_first": run.log_first,
               "sum_plus": None if run.sum_plus is None else run.sum_plus.tolist(),
               "sum_minus": None if run.sum_minus is None else run.sum_minus.tolist(),
               "coef": None if run.coef is None else run.coef.tolist(),
               "weights": run.weights.tolist()}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out))
        say(f"wrote {args.out}")
    return 0 if ok is not False else 1


def _check_options(args):
    act = args.action
    for attr, (opt, actions, default) in _OPTION_ACTIONS.items():
        if getattr(args, attr) is not None:
            if act not in actions:
                raise ValueError(f"pezo board {act} takes no {opt} (it is for "
                                 f"{', '.join(actions)})")
        elif act in actions:
            setattr(args, attr, default)


_ACTIONS = {"ping": _ping, "status": _status, "read": _read, "write": _write,
            "selftest": _selftest}

assert set(_ACTIONS) | {"sim", "fuzz", "train"} == set(ACTIONS)
