"""The ``pezo`` command line: ``pezo <command> --help`` for each command."""

import argparse
import importlib
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

from pezo.argtypes import positive_int, progress_printer
from pezo.bench import run_bench
from pezo.boards.targets import BOARDS, get_board
from pezo.config import (ConfigError, load_config, load_engine_config,
                         load_over_default, parse_assignments, split_assignments)
from pezo.designs import REGISTRY, check_design, file_design, write_design
from pezo.host.board_cli import register as register_board
from pezo.host.engine import EngineError
from pezo.host.serial_link import LinkError
from pezo.host.export_cli import register as register_export
from pezo.host.train_cli import register as register_train
from pezo.formal import CHECKS as FORMAL_CHECKS, run_check as run_formal_check
from pezo.info import config_info
from pezo.cluster import ClusterError
from pezo.paper import run_paper
from pezo.power import COEFFICIENTS
from pezo.power.calibration import run as run_calibration
from pezo.quality import MODES, dieharder, format_table, measure, write_results
from pezo.report import aggregate, compare, format_compare, load_report, load_reports
from pezo.sim.ontrain import TrainerConfig
from pezo.stream import write_stream
from pezo.sweep import SweepError, parse_grid, read_grid_file, run_sweep
from pezo.tables import print_table
from pezo.synth import cached_or_synth, synth
from pezo.toolchain import ToolMissing, setup_environment

__all__ = ["main", "BLOCKS"]

BLOCKS = tuple(REGISTRY)
ENGINE_BLOCKS = tuple(n for n, d in REGISTRY.items() if d.config == "engine")


def _add_config_args(p):
    p.add_argument("--config", "-c", metavar="FILE",
                   help="configuration file (TOML or JSON): [generator] and [engine] tables "
                        "and/or flat keys (split as --set splits them)")
    p.add_argument("--set", "-s", metavar="KEY=VALUE", action="append", default=[],
                   help="override one parameter, e.g. --set lanes=8 --set reuse=pregen; engine "
                        "keys (depth, w_int, w_frac, coef_bits, coef_frac, stochastic, coord, "
                        "mask, weights) go to the [engine] table, the rest to [generator] (repeatable)")


def _config(args):
    """The generator configuration of a command that takes no engine (info, stream, quality,
    generate of a generator block): engine keys in --set are refused, not ignored."""
    gen, eng = _split_sets(args)
    if eng:
        what = "is an engine parameter" if len(eng) == 1 else "are engine parameters"
        raise ConfigError(f"pezo {args.command} takes generator parameters only; "
                          f"{', '.join(sorted(eng))} {what} (for pezo generate engine/mac, "
                          f"synth and train)")
    return load_config(args.config, gen)


def _split_sets(args):
    """--set assignments split into (generator keys, engine keys)."""
    return split_assignments(parse_assignments(args.set))


def _engine_config(args):
    gen, eng = _split_sets(args)
    return load_engine_config(args.config, eng, gen)


def cmd_generate(args):
    if args.block == "train":
        found = file_design(args.config, "train", args.set) if args.config else None
        cfg = found[1] if found else TrainerConfig()
    else:
        cfg = _engine_config(args) if args.block in ENGINE_BLOCKS else _config(args)
    formats = tuple(args.format.split(","))
    for path in write_design(args.block, cfg, args.out, args.name, formats):
        print(path)
    return 0


def cmd_stream(args):
    cfg = _config(args)
    out = sys.stdout.buffer if args.output in (None, "-") else open(args.output, "wb")
    try:
        write_stream(cfg, args.seed, args.count, out, args.stage, args.format)
    except BrokenPipeError:  # e.g. `pezo stream ... | head -c 100`
        return 0
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    return 0


def cmd_quality(args):
    if args.modes:
        if args.config or args.set:
            raise ValueError("--modes measures the standard set of modes; it takes no --config "
                             "or --set")
        cfgs = list(MODES.items())
    else:
        cfg = _config(args)
        cfgs = [(cfg.name(), cfg)]

    say = progress_printer("quality")
    results = []
    for label, cfg in cfgs:
        r = measure(cfg, seeds=args.seeds, length=args.length, progress=say)
        r["label"] = label
        if args.dieharder:
            r["dieharder"] = dieharder(cfg, progress=say)
        results.append(r)
        if not args.json:
            print(format_table(r))
    if args.json:
        print(json.dumps(results, indent=2))
    if args.out:
        say(f"wrote {', '.join(write_results(results, args.out))}")
    return 0 if all(r["pass"] for r in results) else 1


def cmd_calibrate(args):
    coef, rows = run_calibration(args.out, args.build, progress=progress_printer())
    print_table(["coefficient", "fitted", "pezo.power"],
                [(k, f"{v:.4g}", f"{COEFFICIENTS[k][0]:.4g}") for k, v in coef.items()])
    print_table(["measurement", "role", "measured uA", "model uA", "error"],
                [(r["description"], r["role"], r["measured_ua"],
                  "-" if r["predicted_ua"] is None else f"{r['predicted_ua']:.1f}",
                  "-" if r["error_pct"] is None else f"{r['error_pct']:+.1f} %") for r in rows])
    print(f"wrote {args.out}/power_calibration.md and .json", file=sys.stderr)
    held = [r for r in rows if r["role"] == "held-out"]
    return 0 if all(abs(r["error_pct"]) <= 10 for r in held) else 1


def cmd_energy(args):
    # lazy imports: the power flow and the training design are needed only here
    from pezo.power.model import estimate_power
    from pezo.sim.ontrain import load_trainer_config
    tcfg = load_trainer_config(args.config)
    run_cycles = None
    if args.run is not None:
        try:
            run_cycles = int(json.loads(Path(args.run).read_text())["cycles"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"--run {args.run}: not a `pezo board train --out` file with a "
                             f"cycle count ({e})") from None
    p = estimate_power("train", tcfg, args.board, args.build, engine_steps=args.steps,
                       progress=progress_printer())
    if "unavailable" in p:
        raise ValueError(f"no estimate: {p['unavailable']}")
    f = p["clock_mhz"] * 1e6
    lo, hi = p["total_mw_range"]
    print(f"{tcfg.name()} on {args.board} at {p['clock_mhz']:g} MHz ({p['workload']}): "
          f"{p['total_mw']:.1f} mW [{lo:.1f}, {hi:.1f}] (core: static {p['static_mw']:.2f}, "
          f"clock {p['clock_mw']:.2f}, dynamic {p['dynamic_mw']:.2f}, PLL {p['pll_mw']:.2f})")
    per_step = p["total_mw"] * p["cycles"] / args.steps / f
    print(f"per step: {per_step * 1e3:.1f} uJ [{lo * per_step / p['total_mw'] * 1e3:.1f}, "
          f"{hi * per_step / p['total_mw'] * 1e3:.1f}] ({p['cycles'] // args.steps:,} cycles)")
    if run_cycles is not None:
        s = run_cycles / f
        print(f"the run of {args.run}: {run_cycles:,} cycles = {s:.2f} s: "
              f"{p['total_mw'] * s:.0f} mJ [{lo * s:.0f}, {hi * s:.0f}]")
    if p.get("unmodelled_cells"):
        print("not in the model (no energy counted): " + ", ".join(
            f"{n} {t}" for t, n in p["unmodelled_cells"].items()))
    return 0


def cmd_info(args):
    cfg = _config(args)
    info = config_info(cfg)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    rows = [(k, f"{v:.6g}" if isinstance(v, float) else v) for k, v in info.items()
            if k != "config"]
    print_table(None, rows + [(f"  {k}", v) for k, v in info["config"].items()],
                title=f"PeZO generator {cfg.name()}")
    return 0


def cmd_setup(args):
    """Finish set-up: warm the YoWASP caches, check Verilator, install Icarus where possible."""
    env = setup_environment()
    steps = [("yosys", [env["YOSYS"], "-V"]),
             ("nextpnr-ice40", [env["NEXTPNR_ICE40"], "--version"]),
             ("nextpnr-ecp5", [env["NEXTPNR_ECP5"], "--version"]),
             ("verilator", ["verilator", "--version"])]
    for name, cmd in steps:
        t0 = time.time()
        print(f"[setup] {name}: {' '.join(cmd)}", flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise ToolMissing(f"{name} does not run ({' '.join(cmd)}):\n{r.stderr.strip()}")
        print(f"[setup]   {(r.stdout or r.stderr).strip().splitlines()[0]} "
              f"({time.time() - t0:.1f} s)", flush=True)
    if shutil.which("iverilog"):
        print("[setup] icarus: " + subprocess.run(["iverilog", "-V"], capture_output=True,
                                                  text=True).stdout.splitlines()[0])
    elif args.no_apt:
        print("[setup] icarus: not installed (skipped); cocotb tests will run on Verilator only")
    elif shutil.which("apt-get") and os.geteuid() == 0:
        print("[setup] icarus: installing with apt-get (iverilog)", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "iverilog"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    else:
        print("[setup] icarus: not installed and cannot install it here (needs root and "
              "apt-get). Install it with `sudo apt-get install iverilog` to add the Icarus "
              "cocotb tests; everything else works without it.")
    print("[setup] done")
    return 0


def cmd_synth(args):
    board = get_board(args.board)
    design, cfg = args.design, None
    train = file_design(args.config, args.design, args.set)   # a [train] table: the trainer
    if train:
        design, cfg = train
    elif args.config or args.set:
        gen, eng = _split_sets(args)
        cfg = load_over_default(board.default, args.config, eng, gen)
    r = synth(board.name, cfg, seed=args.seed, design=design, power=not args.no_power,
              seeds=args.seeds, all_seeds=args.all_seeds)
    if r.get("timing_met") is False and not args.allow_timing_fail:
        best = min(v["achieved_mhz"] / v["constraint_mhz"] for v in r["fmax"].values())
        print(f"pezo synth: timing missed: the best placement reaches {100 * best:.1f} % of the "
              f"clock constraint; the bitstream in build/{r['board']}/{r['config_name']} would "
              f"run out of specification (`pezo program` refuses it). Try more --seeds, or pass "
              f"--allow-timing-fail to keep it.", file=sys.stderr)
        return 3
    return 0


def cmd_report(args):
    res = aggregate(args.paths, args.out)
    print(res["markdown"].read_text())
    print(f"{res['reports']} report(s) aggregated into {res['csv']}, {res['markdown']}"
          + "".join(f", {p}" for p in res["plots"]))
    return 0


#: What a `pezo compare` argument must be, for its error messages.
_REPORT_KINDS = ("a synthesis report (a report.json with 'board' and 'summary', as `pezo synth` "
                 "writes)")


def _compare_input(arg, args):
    """What a compare argument holds, read and checked but not synthesised: ``("report",
    dict)`` for a report file or a folder holding one, ``("config", EngineConfig)`` for a
    configuration file (laid over the --board's default, as `pezo synth --board B -c F` does).
    A ``.json`` file with a 'board' or 'summary' key is a report, any other JSON object a
    configuration; anything else is refused here, before anything is synthesised."""
    p = Path(arg)
    if p.is_dir():
        reps = load_reports([p])
        if len(reps) != 1:
            raise ValueError(f"Folder {arg!r} holds {len(reps)} reports; give one report.json")
        return "report", reps[0]
    if not p.exists():
        raise FileNotFoundError(f"{arg!r} does not exist; give a report.json, a build folder or "
                                f"a configuration file")
    if p.suffix not in (".json", ".toml"):
        raise ValueError(f"{arg!r} is neither a synthesis report (a .json file), a build folder "
                         f"holding one nor a configuration file (.toml or .json)")
    if p.suffix == ".json":
        try:
            data = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{arg!r} is not valid JSON ({e}); give a synthesis report "
                             f"(report.json), a build folder holding one or a configuration "
                             f"file") from None
        if isinstance(data, dict) and ("board" in data or "summary" in data):
            return "report", load_report(p)
    try:
        return "config", load_over_default(get_board(args.board).default, str(p))
    except (ValueError, TypeError) as e:
        if p.suffix == ".toml":
            raise
        raise ConfigError(f"{arg!r} is neither {_REPORT_KINDS} nor a valid configuration file: "
                          f"{e}") from None


def _report_for(arg, kind, value, args):
    """The report of a checked compare argument: the report itself, or the configuration's
    (the existing build for --board/--design, else synthesised now)."""
    if kind == "report":
        return value
    try:
        return cached_or_synth(args.board, value, design=args.design)
    except RuntimeError as e:           # a failed synthesis (pezo.synth): its message and logs
        raise ValueError(f"Synthesising {arg!r} for {args.board} failed: {e}") from None


def cmd_compare(args):
    if args.paper:
        if args.a or args.b:
            raise ValueError("--paper takes no A/B arguments")
        try:
            return run_paper([b for b in args.boards.split(",") if b], out_dir=args.out,
                             build_root=args.build, force=args.force,
                             progress=progress_printer(), scheduler=args.scheduler,
                             workers=args.workers, cache=args.cache,
                             bar=not args.no_progress, timeout=args.timeout)
        except (SweepError, ClusterError) as e:
            print(f"pezo compare: error: {e}", file=sys.stderr)
            return 1
    if not args.a or not args.b:
        raise ValueError("compare needs two reports A and B (or --paper)")
    get_board(args.board)
    check_design(args.design)
    inputs = [(arg, *_compare_input(arg, args)) for arg in (args.a, args.b)]  # both, first
    res = compare(*(_report_for(*i, args) for i in inputs), args.module_a, args.module_b)
    print(json.dumps(res, indent=2) if args.json else format_compare(res), end="")
    return 0


def cmd_sweep(args):
    grid, boards = {}, None
    if args.grid:
        grid, boards = read_grid_file(args.grid)
    for key, values in parse_grid(args.set).items():
        grid[key] = values          # --set wins over the grid file
    if args.boards:
        boards = [b for b in args.boards.split(",") if b]
    try:
        rows, outcome, paths = run_sweep(
            grid, boards or ["ice40"], out_dir=args.out, cache=args.cache, build_root=args.build,
            scheduler=args.scheduler, workers=args.workers, force=args.force,
            progress=not args.no_progress, say=progress_printer(), timeout=args.timeout,
            design=args.design, synth=not args.no_synth, quality=not args.no_quality,
            train=not args.no_train, seeds=args.seeds, quality_seeds=args.quality_seeds,
            quality_length=args.quality_length, train_steps=args.train_steps,
            dataset=args.dataset, model=args.model, skip_invalid=args.skip_invalid)
    except ClusterError as e:
        print(f"pezo sweep: error: {e}", file=sys.stderr)
        return 1
    print((Path(args.out) / "sweep.md").read_text(), end="")
    return 1 if outcome.failed else 0


def _add_cluster_args(p, what):
    p.add_argument("--workers", "-j", type=positive_int, default=2, metavar="N",
                   help=f"{what}local Dask worker processes (default 2; ignored with "
                        f"--scheduler)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                   help=f"{what}a running Dask scheduler instead of a local cluster "
                        f"(docs/distributed.md)")
    p.add_argument("--cache", default="build/sweep-cache", metavar="DIR",
                   help=f"{what}content-hash cache of finished results (default "
                        f"build/sweep-cache; docs/sweep.md)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help=f"{what}give up on tasks unfinished after S seconds (default: none)")
    p.add_argument("--no-progress", action="store_true", help=f"{what}no progress bar")


def cmd_formal(args):
    names = args.checks or list(FORMAL_CHECKS)
    for n in names:
        if n not in FORMAL_CHECKS:
            raise ValueError(f"Formal check must be one of {', '.join(FORMAL_CHECKS)}, not {n!r}")
    results = [run_formal_check(n, shallow=args.shallow, progress=progress_printer("formal"))
               for n in names]
    print_table(["check", "mode", "depth", "result", "seconds", "property"],
                [(r["name"], r["mode"], r["depth"], r["status"], f"{r['seconds']:.1f}", r["what"])
                 for r in results])
    for r in results:
        if r["status"] != "PASS":
            print(f"{r['name']}: {r['log']}\n{r['tail']}", file=sys.stderr)
    return 0 if all(r["status"] == "PASS" for r in results) else 1


def cmd_boards(args):
    for b in BOARDS.values():
        print(f"{b.name:<12} {b.description}\n{'':<12} default: {b.default.name()}")
    return 0


def cmd_program(args):
    board = get_board(args.board)
    cfg_name = board.default.name()
    bitdir = Path("build") / board.name / (args.name or cfg_name)
    bit = bitdir / ("pezo_top.bin" if board.family == "ice40" else "pezo_top.bit")
    if not bit.exists():
        raise FileNotFoundError(f"No bitstream at {bit}: run `make synth BOARD={board.name}` first")
    rep = bitdir / "report.json"
    if rep.exists() and json.loads(rep.read_text()).get("timing_met") is False and not args.force:
        print(f"pezo program: {bit} missed its clock constraint (build report {rep}); it would "
              f"run out of specification. Synthesise with more seeds, or pass --force to "
              f"program it anyway.", file=sys.stderr)
        return 3
    tool = "iceprog" if board.family == "ice40" else "openFPGALoader"
    var = "ICEPROG" if board.family == "ice40" else "OPENFPGALOADER"
    exe = os.environ.get(var) if os.environ.get(var) not in (None, "true") else shutil.which(tool)
    if not exe:
        raise ToolMissing(f"{tool} is not installed: `sudo apt-get install "
                          f"{'fpga-icestorm' if tool == 'iceprog' else 'openfpgaloader'}` "
                          f"(or set {var})")
    cmd = [exe, str(bit)] if tool == "iceprog" else [exe, "-b", "ulx3s", "-m", str(bit)]
    print(" ".join(cmd))
    return subprocess.run(cmd).returncode


def cmd_bench(args):
    return run_bench(args)


def make_parser():
    p = argparse.ArgumentParser(prog="pezo", description="PeZO perturbation hardware generator "
                                "and co-simulator")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="write Verilog and RTLIL for a block")
    g.add_argument("block", nargs="?", default="generator", choices=BLOCKS,
                   help="which design (default: generator; pezo.designs.REGISTRY)")
    _add_config_args(g)
    g.add_argument("--out", "-o", default="build/rtl", metavar="DIR", help="output folder")
    g.add_argument("--name", help="top module name (default pezo_<block>)")
    g.add_argument("--format", default="v,il", help="comma list of v, il (default both)")
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser("stream", help="write the generator's exact output stream as binary")
    _add_config_args(s)
    s.add_argument("--seed", type=lambda x: int(x, 0), default=0, help="master seed (default 0)")
    s.add_argument("--count", "-n", type=int, required=True, help="number of values")
    s.add_argument("--stage", choices=("z", "uniform", "bank"), default="z",
                   help="z: scaled output (default); uniform: after reuse; bank: raw bank numbers")
    s.add_argument("--format", choices=("raw", "bits"), default="raw",
                   help="raw: each value little-endian two's complement in 1/2/4/8 bytes; bits: "
                        "the values' w bits packed back to back, LSB first (for dieharder)")
    s.add_argument("--output", "-o", metavar="FILE", help="file (default: stdout)")
    s.set_defaults(func=cmd_stream)

    q = sub.add_parser("quality", help="measure the stream contract (docs/streams.md) of a "
                       "configuration over many seeds; exit 1 if a check fails")
    _add_config_args(q)
    q.add_argument("--seeds", type=positive_int, default=2048,
                   help="draws S: seeds (and pregen queries) per check (default 2048)")
    q.add_argument("--length", type=positive_int, default=256,
                   help="values L of each perturbation vector measured (default 256)")
    q.add_argument("--modes", action="store_true",
                   help="measure the standard set of modes (docs/quality.md) instead of one "
                        "configuration")
    q.add_argument("--dieharder", action="store_true",
                   help="also run Debian's dieharder -a on each mode's bit stream (slow)")
    q.add_argument("--json", action="store_true", help="print JSON instead of tables")
    q.add_argument("--out", metavar="DIR", help="also write quality.md and quality.json there")
    q.set_defaults(func=cmd_quality)

    ca = sub.add_parser("calibrate", help="fit the iCE40 power model on the public UP5K "
                        "measurements' own designs and validate it on held-out points")
    ca.add_argument("--out", "-o", default="docs", metavar="DIR",
                    help="folder for power_calibration.md/.json (default docs)")
    ca.add_argument("--build", default="build", metavar="DIR",
                    help="build folder for the netlists (default build)")
    ca.set_defaults(func=cmd_calibrate)

    en = sub.add_parser("energy", help="the training design's power and energy from the "
                        "calibrated model on its simulated gate-level activity (a LOAD of "
                        "digits, then training)")
    en.add_argument("--config", "-c", default="boards/configs/up5k-train.toml", metavar="FILE",
                    help="the training design's [train] file (default "
                         "boards/configs/up5k-train.toml)")
    en.add_argument("--board", "-b", default="ice40", help="board (default ice40: calibrated)")
    en.add_argument("--steps", type=positive_int, default=1,
                    help="MeZO steps in the measured window (default 1: about 25,000 cycles)")
    en.add_argument("--run", metavar="JSON", default=None,
                    help="a `pezo board train --out` file: its cycle count gives the run's energy")
    en.add_argument("--build", default="build/energy", metavar="DIR",
                    help="work folder (default build/energy)")
    en.set_defaults(func=cmd_energy)

    i = sub.add_parser("info", help="print a configuration's derived figures (alpha, latency)")
    _add_config_args(i)
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_info)

    b = sub.add_parser("bench", help="measure model and simulator throughput")
    b.add_argument("--quick", action="store_true", help="smaller runs (for a smoke check)")
    b.add_argument("--no-test-timing", action="store_true", help="skip timing `make test`")
    b.set_defaults(func=cmd_bench)

    sy = sub.add_parser("synth", help="synthesise, place and route for a board; writes "
                        "build/<board>/<config>/report.json")
    sy.add_argument("--board", "-b", default="ice40", help="board name (default ice40); "
                    "`pezo boards` lists them")
    _add_config_args(sy)
    sy.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    sy.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                    help="if timing is missed, try up to N placement seeds from --seed until "
                         "one meets the clock constraint (else keep the best; default 1)")
    sy.add_argument("--all-seeds", action="store_true",
                    help="try all N seeds (not only until one meets timing), keep the best and "
                         "report the fmax spread (min / median / max, how many meet the clock)")
    sy.add_argument("--allow-timing-fail", action="store_true",
                    help="exit 0 and keep the bitstream even when the kept placement misses "
                         "its clock constraint (default: exit 3)")
    sy.add_argument("--design", "-d", default="engine", metavar="DESIGN",
                    help="what to put on the board: engine (default; behind the serial command "
                         "port), train (the training design, also chosen by a [train] --config "
                         "file), or a block behind a UART wrapper: generator, bank, passthrough "
                         "(wrapper only), clt4, clt8, clt12, boxmuller (Gaussian baselines)")
    sy.add_argument("--no-power", action="store_true", help="skip the power estimate")
    sy.set_defaults(func=cmd_synth)

    rp = sub.add_parser("report", help="aggregate report.json files into CSV, Markdown and PNG "
                        "plots")
    rp.add_argument("paths", nargs="*", default=["build"], metavar="PATH",
                    help="report.json files or folders searched for them (default: build)")
    rp.add_argument("--out", "-o", default="build/report", metavar="DIR",
                    help="output folder (default build/report)")
    rp.set_defaults(func=cmd_report)

    cp = sub.add_parser("compare", help="compare two synthesis reports (files, folders or "
                        "configuration files), or reproduce the paper's comparison (--paper)")
    cp.add_argument("a", nargs="?", metavar="A", help="a report.json (a JSON object with "
                    "'board' and 'summary'), a folder holding one, or a configuration file "
                    "(.toml, or .json of parameters: laid over --board's default as pezo synth "
                    "-c does, and synthesised first if not built yet)")
    cp.add_argument("b", nargs="?", metavar="B", help="the same for the second design")
    cp.add_argument("--board", "-b", default="ice40", help="board for configuration files")
    cp.add_argument("--design", "-d", default="engine", help="design for configuration files")
    cp.add_argument("--module-a", help="compare only this module subtree of A (hierarchy path)")
    cp.add_argument("--module-b", help="the subtree of B (default: the same as --module-a)")
    cp.add_argument("--json", action="store_true", help="print the comparison as JSON")
    cp.add_argument("--paper", action="store_true",
                    help="synthesise the Gaussian baselines and PeZO variants at equal output "
                         "width and rate for iCE40 UP5K and ECP5, print the table against the "
                         "paper's figures and write it (Markdown, PNG) to --out")
    cp.add_argument("--boards", default="ice40,ulx3s-85f",
                    help="--paper: comma list of boards (default ice40,ulx3s-85f)")
    cp.add_argument("--out", "-o", default="docs", metavar="DIR",
                    help="--paper: folder for paper_compare.md/.png (default docs)")
    cp.add_argument("--force", action="store_true",
                    help="--paper: synthesise again even where a cached result exists")
    cp.add_argument("--build", default="build", metavar="DIR",
                    help="--paper: build root of the syntheses (default build)")
    _add_cluster_args(cp, "--paper: ")
    cp.set_defaults(func=cmd_compare)

    sw = sub.add_parser("sweep", help="design-space sweep on Dask: a grid of configurations x "
                        "boards through synthesis + power, the stream contract and a short "
                        "training run; CSV, Markdown and Pareto plots (docs/sweep.md)")
    sw.add_argument("--set", "-s", metavar="KEY=V1,V2,...", action="append", default=[],
                    help="a grid axis: the values of one generator or engine parameter (the "
                         "keys pezo synth --set takes), e.g. --set lanes=2,4 --set "
                         "reuse=none,pregen (repeatable; the grid is their cross product)")
    sw.add_argument("--grid", metavar="FILE", help="grid file (TOML/JSON): a [grid] table of "
                    "key = [values] and optionally boards = [...]; --set adds or replaces axes")
    sw.add_argument("--boards", "-b", default=None,
                    help="comma list of boards (default ice40, or the grid file's)")
    sw.add_argument("--design", "-d", default="engine",
                    help="design to synthesise (default engine; block designs need --no-train)")
    sw.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                    help="placement seeds to try per synthesis until timing is met (default 1)")
    sw.add_argument("--quality-seeds", type=positive_int, default=256, metavar="S",
                    help="draws per stream-contract check (default 256; >= 16)")
    sw.add_argument("--quality-length", type=positive_int, default=64, metavar="L",
                    help="values per perturbation vector measured (default 64)")
    sw.add_argument("--train-steps", type=positive_int, default=2000, metavar="N",
                    help="ZO steps of the short training run (default 2000)")
    sw.add_argument("--dataset", default="digits", help="training data set (default digits)")
    sw.add_argument("--model", default="logreg", help="training model (default logreg)")
    sw.add_argument("--no-synth", action="store_true", help="skip synthesis and power")
    sw.add_argument("--no-quality", action="store_true", help="skip the stream contract")
    sw.add_argument("--no-train", action="store_true", help="skip the training runs")
    sw.add_argument("--skip-invalid", action="store_true",
                    help="drop grid combinations that make no valid configuration (with a "
                         "note) instead of stopping")
    sw.add_argument("--force", action="store_true", help="recompute even cached results")
    sw.add_argument("--out", "-o", default="build/sweep", metavar="DIR",
                    help="folder for sweep.csv, sweep.md and the plots (default build/sweep)")
    sw.add_argument("--build", default="build/sweep-build", metavar="DIR",
                    help="build root of the syntheses (default build/sweep-build)")
    _add_cluster_args(sw, "")
    sw.set_defaults(func=cmd_sweep)

    pr = sub.add_parser("program", help="program a connected board with its bitstream")
    pr.add_argument("--board", "-b", default="ice40")
    pr.add_argument("--name", help="configuration folder under build/<board>/ (default: the "
                    "board's default configuration)")
    pr.add_argument("--force", action="store_true",
                    help="program a bitstream whose build missed its clock constraint")
    pr.set_defaults(func=cmd_program)

    fo = sub.add_parser("formal", help="formal checks with SymbiYosys and z3 (docs/formal.md)")
    fo.add_argument("checks", nargs="*", metavar="CHECK",
                    help=f"which (default all): {', '.join(FORMAL_CHECKS)}")
    fo.add_argument("--shallow", action="store_true",
                    help="the smaller depths make test uses")
    fo.set_defaults(func=cmd_formal)

    bo = sub.add_parser("boards", help="list the board targets and their default configuration")
    bo.set_defaults(func=cmd_boards)

    register_train(sub)
    register_export(sub)
    register_board(sub)
    for name, (_, text) in _STUDIES.items():    # listed here; main() runs them with their options
        sub.add_parser(name, help=text + f" (`pezo {name} --help` for its options)")

    st = sub.add_parser("setup", help="warm tool caches, check Verilator, install Icarus")
    st.add_argument("--no-apt", action="store_true", help="do not try apt-get for Icarus")
    st.set_defaults(func=cmd_setup)
    return p


#: Studies with their own command line (pezo.host.<name>.main), run as ``pezo <name> ...``.
_STUDIES = {"parity": ("pezo.host.parity_cli", "training-quality parity study: gaussian vs uniform "
                       "vs pezo (make parity)"),
            "ablation": ("pezo.host.ablation", "one-factor experiments on digits: why a source "
                         "trails gaussian"),
            "algorithms": ("pezo.host.algo_study", "the ZO methods' measurements: ZO-RankSGD, "
                           "DeepZero, ElasticZO, ElasticZO-INT8 on every source (make "
                           "algorithms)")}


def main(argv=None):
    setup_environment()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in _STUDIES:
        return importlib.import_module(_STUDIES[argv[0]][0]).main(argv[1:])
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError, TypeError, ToolMissing, FileNotFoundError, LinkError,
            EngineError) as e:
        if os.environ.get("PEZO_DEBUG"):
            raise
        print(f"pezo {args.command}: error: {e}", file=sys.stderr)
        return 2
