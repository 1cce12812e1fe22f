"""Configuration files on the command line (issue 23, section 2, defects 1 and 2): one loader for
every command that takes a configuration file, flat top-level keys understood everywhere,
invalid files refused with the same message by every command, and `pezo compare` refusing a
JSON file that is neither a report nor a configuration before anything is synthesised."""

import json
import re

import pytest

import pezo.cli as cli
import pezo.host.board_cli as board_cli
from pezo.cli import main
from pezo.config import EngineConfig as E, GeneratorConfig as G


class ExpensiveStep(Exception):
    """Raised by the stand-ins of synthesis, the simulated board and the fuzzer: a command that
    reaches one of them has not refused its input first (main() does not catch this class)."""


@pytest.fixture
def expensive(monkeypatch):
    """Every expensive step a configuration-taking command can reach is replaced by a recorder
    that raises :class:`ExpensiveStep`; ``calls`` lists (step, configuration)."""
    calls = []

    def stand_in(step):
        def run(*args, **kwargs):
            cfg = next((a for a in args if isinstance(a, (E, G))), kwargs.get("config"))
            calls.append((step, cfg))
            raise ExpensiveStep(f"{step} reached")
        return run
    monkeypatch.setattr(cli, "synth", stand_in("synth"))
    monkeypatch.setattr(cli, "cached_or_synth", stand_in("cached_or_synth"))
    monkeypatch.setattr(board_cli, "SimBoard", stand_in("SimBoard"))
    monkeypatch.setattr(board_cli, "run_fuzz", stand_in("run_fuzz"))
    return calls


# --- defect 1: flat keys are read by every command ------------------------------------------------

FLAT = "lanes = 2\ndepth = 64\nw_frac = 10\n"


def test_generate_engine_reads_flat_keys(tmp_path):
    """A flat file (no [generator]/[engine] tables) configures the engine: generator keys go to
    the generator, engine keys to the engine, as --set splits them (it gave a 4-lane engine of
    depth 1024)."""
    f = tmp_path / "flat.toml"
    f.write_text(FLAT)
    out = tmp_path / "out"
    assert main(["generate", "engine", "-c", str(f), "-o", str(out), "--format", "v"]) == 0
    meta = json.loads((out / "pezo_engine.json").read_text())["config"]
    assert meta["generator"]["lanes"] == 2 and meta["depth"] == 64 and meta["w_frac"] == 10
    f.write_text('lanes = 2\n[engine]\ndepth = 32\n')          # flat keys beside a table
    assert main(["generate", "mac", "-c", str(f), "-o", str(out), "--format", "v"]) == 0
    meta = json.loads((out / "pezo_mac.json").read_text())["config"]
    assert meta["generator"]["lanes"] == 2 and meta["depth"] == 32


@pytest.mark.parametrize("argv,step", [
    (["synth", "--board", "ice40"], "synth"),
    (["board", "status", "--port", "sim"], "SimBoard"),
    (["board", "sim"], "SimBoard"),
    (["board", "fuzz", "--cases", "2"], "run_fuzz"),
])
def test_board_commands_read_flat_keys(tmp_path, expensive, argv, step):
    """synth and board lay the file over the board's default: its flat generator keys replace
    the default generator (as a [generator] table does), its engine keys the default's."""
    f = tmp_path / "flat.toml"
    f.write_text(FLAT)
    with pytest.raises(ExpensiveStep):
        main(argv + ["-c", str(f)])
    (got_step, cfg), = expensive
    assert got_step == step
    assert cfg.generator == G(lanes=2) and cfg.depth == 64 and cfg.w_frac == 10


def test_generator_commands_take_an_engine_file(tmp_path, capsys):
    """info and stream use the generator part of an engine file (flat or in tables) and check
    the rest of it."""
    f = tmp_path / "e.toml"
    f.write_text(FLAT)
    assert main(["info", "--json", "-c", str(f)]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["lanes"] == 2
    f.write_text("[generator]\nwidth = 12\n[engine]\ndepth = 64\n")
    assert main(["info", "--json", "-c", str(f)]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["width"] == 12


# --- defect 1: every command refuses the same bad files -------------------------------------------

BAD_FILES = [
    ('lanes = "four"\n', r"Lane count \(lanes\) must be an integer, not 'four'"),
    ("lanes = -4\n", r"Lane count \(lanes\) must be an integer in 1\.\.64, not -4"),
    ("depth = 99999999999999\n",
     r"Weight count \(depth\) must be an integer in 1\.\.1048576, not 99999999999999"),
    ("lanes = 8\ndepth = 60\n",
     r"Weight count \(depth\) must be a multiple of the lane count out_lanes \(8\), not 60"),
    ("bogus_key = 3\n",
     r"Unknown parameter\(s\) bogus_key in configuration file '{f}'; accepted: the generator's "
     r"lanes, out_lanes, .*, z_int; the engine's coef_bits, .*, weights; each at the top level "
     r"or in a \[generator\] / \[engine\] table"),
]

COMMANDS = [
    ["generate", "generator", "-o", "{out}"],
    ["generate", "bank", "-o", "{out}"],
    ["generate", "engine", "-o", "{out}"],
    ["generate", "mac", "-o", "{out}"],
    ["info"],
    ["stream", "-n", "4", "-o", "{out}/z.bin"],
    ["quality", "--seeds", "16", "--length", "16"],
    ["synth", "--board", "ice40"],
    ["synth", "--board", "ulx3s-85f"],
    ["board", "status", "--port", "sim"],
    ["board", "sim"],
    ["board", "fuzz"],
]


@pytest.mark.parametrize("text,msg", BAD_FILES, ids=lambda x: x.split("\n")[0][:24])
@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_every_command_refuses_a_bad_file_alike(tmp_path, capsys, expensive, argv, text, msg):
    """`generate engine` accepted these files with exit 0 (ignoring them), synth and board used
    their defaults; every command now stops with the one message naming the bad key or value,
    before writing or starting anything."""
    f = tmp_path / "bad.toml"
    f.write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.replace("{out}", str(out)) for a in argv]
    assert main(argv + ["-c", str(f)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"pezo {argv[0]}: error: {msg.format(f=re.escape(str(f)))}\n", err), err
    assert not expensive and not list(out.iterdir())


def test_a_key_given_twice_in_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "twice.toml"
    f.write_text("lanes = 2\n[generator]\nlanes = 4\n")
    assert main(["info", "-c", str(f)]) == 2
    assert capsys.readouterr().err == (f"pezo info: error: lanes is given both at the top level "
                                       f"and in [generator] of configuration file '{f}'; give "
                                       f"it once\n")


# --- defect 2: compare refuses what is neither a report nor a configuration -----------------------

def _report(path):
    rep = {"board": "ice40", "family": "ice40", "design": "bank", "config_name": "x",
           "summary": {"lut4": 10, "ff": 5, "carry": 0, "bram": 0, "spram": 0, "dsp": 0},
           "modules": {"top": {"lut4": 10, "ff": 5, "carry": 0, "bram": 0, "spram": 0,
                               "dsp": 0}}}
    path.write_text(json.dumps(rep))
    return path


NOT_REPORTS = [
    ('{"results": [1, 2], "seeds": 4}',
     r"'{f}' is neither a synthesis report \(a report\.json with 'board' and 'summary', as "
     r"`pezo synth` writes\) nor a valid configuration file: Unknown parameter\(s\) results, seeds "
     r"in configuration file '{f}'; accepted: .*"),
    ("[1, 2, 3]",
     r"'{f}' is neither a synthesis report \(a report\.json with 'board' and 'summary', as "
     r"`pezo synth` writes\) nor a valid configuration file: Configuration file '{f}' must "
     r"hold a table of parameters"),
    ('{"board": "ice40", "lut4": 3}',
     r"Report '{f}' is not a synthesis report: it lacks 'summary' \(expected the report\.json "
     r"that `pezo synth` writes\)"),
    ("{not json",
     r"'{f}' is not valid JSON \(.*\); give a synthesis report \(report\.json\), a build "
     r"folder holding one or a configuration file"),
]


@pytest.mark.parametrize("text,msg", NOT_REPORTS, ids=["dict", "list", "partial report", "bad"])
@pytest.mark.parametrize("which", ["a", "b"])
def test_compare_refuses_a_json_that_is_not_a_report(tmp_path, capsys, expensive, text, msg,
                                                     which):
    """It was read as a configuration (its keys ignored) and synthesised for a minute before a
    RuntimeError; now it is refused at once, whichever side it is on and even when the other
    side is a configuration that would be synthesised."""
    bad = tmp_path / "not_a_report.json"
    bad.write_text(text)
    good = tmp_path / "c.toml"
    good.write_text("lanes = 2\n")
    argv = ["compare", str(bad), str(good)] if which == "a" else ["compare", str(good), str(bad)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"pezo compare: error: {msg.format(f=re.escape(str(bad)))}\n", err), err
    assert not expensive


@pytest.mark.parametrize("name", ["notes.txt", "notes"])
def test_compare_refuses_a_file_of_another_kind(tmp_path, capsys, expensive, name):
    f = tmp_path / name
    f.write_text("lanes = 2\n")
    assert main(["compare", str(f), str(_report(tmp_path / "r.json"))]) == 2
    assert capsys.readouterr().err == (
        f"pezo compare: error: '{f}' is neither a synthesis report (a .json file), a build "
        f"folder holding one nor a configuration file (.toml or .json)\n")
    assert not expensive


def test_compare_synthesises_a_configuration_over_the_board_default(tmp_path, expensive):
    """A configuration file is laid over the --board's default, as `pezo synth --board B -c F`
    does, so the build compare looks for is the one synth made."""
    f = tmp_path / "c.toml"
    f.write_text("depth = 64\n")
    with pytest.raises(ExpensiveStep):
        main(["compare", str(f), str(_report(tmp_path / "r.json")), "--board", "ulx3s-85f"])
    (step, cfg), = expensive
    from pezo.boards.targets import get_board
    assert step == "cached_or_synth" and cfg == get_board("ulx3s-85f").default.replace(depth=64)


def test_compare_names_a_failed_synthesis(tmp_path, capsys, monkeypatch):
    """A synthesis that fails (a RuntimeError of pezo.synth) is an error naming the argument,
    not a traceback."""
    def fail(*a, **k):
        raise RuntimeError("Synthesis for ice40 failed (exit 1); see the logs in build/x")
    monkeypatch.setattr(cli, "cached_or_synth", fail)
    f = tmp_path / "c.toml"
    f.write_text("lanes = 2\n")
    assert main(["compare", str(f), str(_report(tmp_path / "r.json"))]) == 2
    assert capsys.readouterr().err == (
        f"pezo compare: error: Synthesising '{f}' for ice40 failed: Synthesis for ice40 failed "
        f"(exit 1); see the logs in build/x\n")
