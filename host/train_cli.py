"""The ``pezo train`` command: its options and what it prints and writes."""

import argparse
from pathlib import Path
import sys
import warnings

from pezo.argtypes import positive_int
from pezo.config import WEIGHT_MEMORIES
from pezo.cluster import ClusterError
from pezo.host.curves import plot_curves, write_log
from pezo.host.data import TRAIN_DATASETS
from pezo.host.tabular import check_data_options
from pezo.host.models import ACTIVATIONS, MODELS
from pezo.host.perturb import REUSES, ROUNDINGS, SOURCES, STEPS
from pezo.host.algorithms import ALGOS, ESTIMATORS
from pezo.host.train import (SCHEDULES, ZERO_UPDATE_WARN, TrainConfig, TrainingWarning,
                             TrainResult, train)
from pezo.host.dist import CHECK_EVERY, CHUNKS, DistResult, DivergenceError, train_dist
from pezo.host.dist_bench import register as register_distbench

__all__ = ["register", "config_from_args", "summary", "cmd_train"]


def register(subparsers):
    """Add the ``train`` command to an argparse sub-parser set (``pezo train``)."""
    t = subparsers.add_parser("train", help="ZO training (MeZO, ZO-RankSGD, DeepZero, ElasticZO, "
                              "ElasticZO-INT8) on a real data set through a perturbation source: "
                              "float Gaussian/uniform, the golden engine (pezo), the simulated "
                              "hardware (pezo-sim) or a board")
    t.add_argument("--algo", default="mezo", choices=tuple(ALGOS),
                   help="ZO method (default mezo; docs/algorithms.md)")
    t.add_argument("--top-k", type=int, default=0,
                   help="ranksgd: points the ranking oracle orders (default 0: all 2q)")
    t.add_argument("--rank-noise", type=float, default=0.0,
                   help="ranksgd: std of Gaussian noise on the losses the oracle ranks")
    t.add_argument("--sparsity", type=float, default=0.0,
                   help="deepzero: fraction of the weight tensors left out (ZO-GraSP ratios)")
    t.add_argument("--estimator", default="cge", choices=ESTIMATORS,
                   help="deepzero: cge (coordinate-wise, COORD) or rge (MeZO with the MASK "
                        "bitmap)")
    t.add_argument("--mask-every", type=positive_int, default=None,
                   help="deepzero: steps between mask re-draws (default steps/10)")
    t.add_argument("--bp-lr", type=float, default=None,
                   help="elasticzo: learning rate of the backpropagated last layer (default "
                        "0.05; 0.02 for elasticzo-int8)")
    t.add_argument("--dataset", default=None, choices=TRAIN_DATASETS, help="built-in data set "
                   "(default digits; breast_cancer, wine, synthetic)")
    t.add_argument("--data", default=None, metavar="FILE",
                   help="your own data instead: a .csv (header row; numeric features), .parquet "
                        "or .npz (arrays X, y) file, or sklearn:NAME (iris, wine, digits, "
                        "breast_cancer); docs/training.md, 'Your own data'")
    t.add_argument("--label", default=None, metavar="COLUMN",
                   help="--data CSV/Parquet: the label column (default the last column)")
    t.add_argument("--split", default=None, metavar="FILE",
                   help="--data: a file naming each row's split (train, val or test, one per "
                        "line; default: the stratified 60/20/20 split)")
    t.add_argument("--model", default="logreg", choices=MODELS,
                   help="logreg (multinomial logistic regression, default) or mlp")
    t.add_argument("--hidden", type=int, default=16, help="mlp hidden units (default 16)")
    t.add_argument("--activation", default=None, choices=ACTIVATIONS,
                   help="mlp activation (default tanh; relu for elasticzo-int8)")
    t.add_argument("--source", default="pezo", choices=SOURCES,
                   help="perturbations: gaussian, uniform (float baselines), pezo (golden engine, "
                        "default), pezo-sim (hardware in the Amaranth simulator: slow), board "
                        "(the engine on a board over --port)")
    t.add_argument("--port", default=None, metavar="PORT",
                   help="source board: the board's serial port (/dev/ttyUSB1), a pyserial URL "
                        "(socket://127.0.0.1:N) or 'sim' (start the Verilator-built board of "
                        "this configuration); the options must describe the bitstream's "
                        "engine configuration, or --board give it")
    t.add_argument("--board", default=None, metavar="NAME",
                   help="engine sources (pezo, pezo-sim, board): the engine configuration is "
                        "this board's default (the one `make synth BOARD=NAME` builds; `pezo "
                        "boards` lists them), e.g. to train on its golden model first")
    t.add_argument("--reuse", default="none", choices=REUSES, help="engine reuse strategy")
    t.add_argument("--weights", default="bram", choices=WEIGHT_MEMORIES,
                   help="where the engine keeps the weights: bram (default), spram (the UP5K's "
                        "single-port RAMs: the same results, half-rate passes) or stream "
                        "(ZO2-style: in host memory, streamed through the engine in blocks; "
                        "mezo with q = 1; docs/scale.md)")
    t.add_argument("--block-words", type=positive_int, default=None, metavar="N",
                   help="--weights stream: words (lanes weights each) per STREAM block "
                        "(default: the whole model in one block)")
    t.add_argument("--pool-size", type=positive_int, default=None,
                   help="pregen pool size N (default: the power of two >= 8 x engine depth, "
                        "at least 1024)")
    t.add_argument("--step", default="leap", choices=STEPS, help="LFSR step mode (generator "
                   "configuration `step`)")
    t.add_argument("--stepping", help=argparse.SUPPRESS)      # renamed --step: refused
    t.add_argument("--lanes", type=positive_int, default=4,
                   help="engine lanes m, weights per cycle (default 4)")
    t.add_argument("--generators", type=positive_int, default=None,
                   help="uniform generators n (default m; m/2 for onthefly)")
    t.add_argument("--bank", default="auto", choices=("auto", "shared", "independent"),
                   help="uniform bank: one shared LFSR for all lanes, or one per lane (default "
                        "auto: one per lane, the hardware's default)")
    t.add_argument("--state-bits", type=positive_int, default=32,
                   help="LFSR state bits k (default 32)")
    t.add_argument("--weight-format", default=None, help="engine weight format (default Q4.12; "
                   "Q2.6 for elasticzo-int8; the board's with --board)")
    t.add_argument("--rounding", default=None, choices=ROUNDINGS,
                   help="update-pass rounding of c*z (default stochastic; nearest for "
                        "elasticzo-int8)")
    t.add_argument("--steps", type=positive_int, default=None, help="ZO steps (default: per "
                   "data set)")
    t.add_argument("--seed", type=lambda x: int(x, 0), default=0, help="run seed (default 0)")
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate eta (default per data set; 1.0 for deepzero with the cge "
                        "estimator)")
    t.add_argument("--mu", type=float, default=None, help="perturbation scale mu (default per "
                   "data set; 2^-6 for elasticzo-int8)")
    t.add_argument("--q", type=positive_int, default=1, help="queries per step (default 1)")
    t.add_argument("--batch", type=int, default=None, help="minibatch size, 0 = full batch "
                   "(default per data set)")
    t.add_argument("--weight-decay", type=float, default=0.0, help="weight decay lambda")
    t.add_argument("--schedule", default="constant", choices=SCHEDULES,
                   help="learning-rate schedule (default constant)")
    t.add_argument("--patience", type=int, default=0, help="early stopping after this many "
                   "evaluations without a better validation loss (0: off)")
    t.add_argument("--eval-every", type=positive_int, default=None,
                   help="steps between learning-curve evaluations (default steps/50)")
    d = t.add_argument_group("distributed training (DistZO2 on Dask; docs/distributed.md)")
    d.add_argument("--layout", metavar="PxD", default=None,
                   help="train on P*D Dask workers: P perturbation groups (1, or 2: L+ and L- "
                        "on different workers) x D data shards, e.g. 2x1, 1x2, 2x2 (default: "
                        "one process, no Dask; 2x1 with --scheduler)")
    d.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                   help="use this running Dask scheduler (default: start a local cluster of "
                        "P*D worker processes)")
    d.add_argument("--check-every", type=positive_int, default=None, metavar="N",
                   help=f"compare the workers' weight hashes every N steps (default "
                        f"{CHECK_EVERY}; always at the end)")
    d.add_argument("--chunks", type=positive_int, default=None, metavar="K",
                   help=f"minibatch chunks, >= D: fixes the loss reduction order for every "
                        f"layout (default {CHUNKS})")
    t.add_argument("--out", "-o", metavar="DIR", default=None,
                   help="write log.json and curve.png into DIR")
    t.add_argument("--export", metavar="DIR", default=None,
                   help="write the trained model into DIR: model.npz, weights.hex ($readmemh), "
                        "weights.py, model.onnx (pezo predict --model DIR reads it)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)
    register_distbench(subparsers)      # `pezo distbench`: the distributed trainer's benchmark
    return t


def config_from_args(args) -> TrainConfig:
    if args.data is not None and args.dataset is not None:
        raise ValueError(f"Give --dataset (a built-in set) or --data (your own), not both: "
                         f"--dataset {args.dataset} --data {args.data}")
    check_data_options(args.data, label=args.label, split=args.split)
    return TrainConfig(dataset=args.data or args.dataset or "digits", label=args.label,
                       split=args.split, model=args.model, hidden=args.hidden,
                       activation=args.activation, source=args.source, reuse=args.reuse,
                       pool_size=args.pool_size, step=args.step, lanes=args.lanes,
                       generators=args.generators, weight_format=args.weight_format,
                       shared={"auto": None, "shared": True, "independent": False}[args.bank],
                       state_bits=args.state_bits,
                       rounding=args.rounding, steps=args.steps, seed=args.seed, lr=args.lr,
                       mu=args.mu, q=args.q, batch=args.batch, weight_decay=args.weight_decay,
                       schedule=args.schedule, patience=args.patience,
                       eval_every=args.eval_every, port=args.port, board=args.board,
                       algo=args.algo, top_k=args.top_k, rank_noise=args.rank_noise,
                       sparsity=args.sparsity, estimator=args.estimator,
                       mask_every=args.mask_every, bp_lr=args.bp_lr,
                       weights=args.weights, block_words=args.block_words)


def summary(res: TrainResult) -> str:
    c = res.config
    timing = (f"wall {res.wall_time:.2f} s (setup {res.setup_time:.2f} s, training "
              f"{res.train_time:.2f} s)" if res.train_time else f"wall {res.wall_time:.2f} s")
    lines = [f"{c['algo']}: {res.source} on {c['dataset']} / {res.model} ({res.n_params} parameters"
             + (f", engine depth {res.depth}" if res.depth else "") + ")",
             f"  steps {res.steps_run}" + (" (early stop)" if res.stopped_early else "")
             + f", best validation step {res.best_step}, mu {res.mu:.6g}, lr {c['lr']:g}, "
             f"q {c['q']}, batch {c['batch']}",
             f"  test accuracy {res.test_acc:.4f} (start {res.initial_test_acc:.4f}), test loss "
             f"{res.test_loss:.4f}; validation {res.val_acc:.4f} / {res.val_loss:.4f}",
             f"  forward passes {res.forward_passes:,} (+{res.eval_passes} evaluation), {timing}, "
             f"{res.steps_per_s:.1f} steps/s (source {res.source_time:.2f} s, forward "
             f"{res.forward_time:.2f} s)"]
    if res.defaults:
        by = {}
        for k, d in res.defaults.items():
            by.setdefault(d["from"], []).append(f"{k} {d['value']:g}" if isinstance(
                d["value"], float) else f"{k} {d['value']}")
        lines.append("  defaults applied: " + "; ".join(f"{', '.join(v)} ({k})"
                                                        for k, v in by.items()))
    s = res.saturation
    if s:
        lines.append(f"  saturation: {s['saturated_passes']} saturated passes, "
                     f"{s['clipped_writes']} clipped weight writes, {s['clipped_coefs']} clipped "
                     f"coefficients" + (f", {s['clipped_coords']} clipped COORD changes"
                                        if s["clipped_coords"] else "")
                     + (f" ({s['clipped_init']} initial weights clipped to the format)"
                        if s["clipped_init"] else ""))
    u = res.updates
    if u:
        lines.append(f"  zero-rounded updates: {100 * u['fraction']:.1f} % of "
                     f"{u['coordinates']:,} coordinate updates in {u['watched_steps']} watched "
                     f"steps; {100 * u['early_fraction']:.1f} % in the first {u['early_steps']} "
                     f"steps (warning above {100 * ZERO_UPDATE_WARN:.0f} %)")
    if res.link:
        lines.append("  link: " + ", ".join(f"{k} {v:g}" for k, v in res.link.items()))
    if res.stats:
        lines.append("  " + ", ".join(f"{k} {v:g}" for k, v in sorted(res.stats.items())))
    if isinstance(res, DistResult):
        lines.append(f"  layout {res.layout} on {len(res.workers)} Dask workers: "
                     f"{res.loop_steps_per_s:.1f} steps/s after {res.setup_time:.1f} s setup, "
                     f"round trip {res.round_trip_ms:.2f} ms, {res.bytes_per_step:.0f} bytes/step "
                     f"({res.bytes_to_workers:.0f} out, {res.bytes_from_workers:.0f} back), "
                     f"{res.hash_checks} weight-hash checks equal ({res.final_hash})")
    lines += [f"  warning: {w}" for w in res.warnings]
    return "\n".join(lines)


def cmd_train(args):
    if args.stepping is not None:
        raise ValueError("--stepping was renamed --step (as the generator configuration's `step`)")
    cfg = config_from_args(args)
    if args.layout is None and args.scheduler is None:
        for opt, v in (("--check-every", args.check_every), ("--chunks", args.chunks)):
            if v is not None:
                raise ValueError(f"{opt} applies to distributed training only (give --layout "
                                 f"PxD or --scheduler tcp://HOST:PORT)")
        with warnings.catch_warnings():     # the summary prints them (res.warnings)
            warnings.simplefilter("ignore", TrainingWarning)
            res = train(cfg, progress=not args.no_progress)
    else:
        if cfg.board is not None and cfg.source != "board":
            # the workers build their sources with make_source, which gives a board's engine
            # configuration to source 'board' only (pezo.host.dist._build_source)
            raise ValueError(f"Distributed training takes --board with source 'board' only, "
                             f"not {cfg.source!r}: drop --layout/--scheduler to train on the "
                             f"{cfg.board} engine's golden model")
        try:
            res = train_dist(cfg, layout=args.layout or "2x1", scheduler=args.scheduler,
                             check_every=args.check_every or CHECK_EVERY,
                             chunks=args.chunks or CHUNKS, progress=not args.no_progress)
        except (ClusterError, DivergenceError) as e:
            print(f"pezo train: error: {e}", file=sys.stderr)
            return 2
    print(summary(res))
    if res.data:
        cl = res.data["classes"]
        print(f"  data: {res.data['source']}, {len(res.data['features'])} features, classes "
              + ", ".join(f"{k} = {v!r}" for k, v in enumerate(cl[:12]))
              + (f", ... ({len(cl)})" if len(cl) > 12 else "")
              + "; rows " + ", ".join(f"{k} {v}" for k, v in res.data["sizes"].items()))
    if args.out:
        out = Path(args.out)
        write_log(res, out / "log.json")
        plot_curves(res, out / "curve.png", title=f"{res.source}: {cfg.dataset} / {res.model}")
        print(f"written {out / 'log.json'}, {out / 'curve.png'}")
    if args.export:
        from pezo.host.export import export_run
        from pezo.host.export_cli import print_export
        print_export(export_run(res.to_dict(), args.export))
    return 0
