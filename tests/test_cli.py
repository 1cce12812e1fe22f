"""The `pezo` command line: generate, stream, info, and its errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pezo.cli import main
from pezo.config import GeneratorConfig as G
from pezo.sim.generator import generate


def test_generate_writes_verilog_rtlil_and_sidecar(tmp_path):
    assert main(["generate", "generator", "--set", "lanes=2", "--set", "reuse=pregen",
                 "--set", "pool_size=64", "--out", str(tmp_path)]) == 0
    v = (tmp_path / "pezo_generator.v").read_text()
    assert "module pezo_generator" in v and "o__payload" in v and "pool_sumsq" in v
    assert (tmp_path / "pezo_generator.il").read_text().startswith("attribute")
    meta = json.loads((tmp_path / "pezo_generator.json").read_text())
    assert meta["config"]["lanes"] == 2 and meta["latency"] == (2 * 32 + 2) + 2   # seed mixing (2 SIMON blocks), scaler
    assert meta["ports"]["o__payload"]["width"] == 2 * 16


@pytest.mark.parametrize("block", ["bank", "scaler", "fanout"])
def test_generate_each_block(tmp_path, block):
    assert main(["generate", block, "--out", str(tmp_path), "--name", f"b_{block}",
                 "--format", "v"]) == 0
    assert f"module b_{block}" in (tmp_path / f"b_{block}.v").read_text()


def test_generate_from_config_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[generator]\nlanes = 8\nwidth = 12\n")
    assert main(["generate", "bank", "-c", str(cfg), "-o", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "pezo_bank.json").read_text())
    assert meta["ports"]["o__payload"]["width"] == 8 * 12


def test_stream_raw_is_the_golden_stream(tmp_path):
    """The CLI's raw format, decoded from the file format's definition (each value
    little-endian two's complement in 2 bytes for 16-bit z), is the stream of the seed given
    in hex; the scaled stream has the statistics z is defined to have (mean 0, variance 1 in
    z_frac units), so a mix-up of seed, stage or scaling cannot pass."""
    out = tmp_path / "z.bin"
    assert main(["stream", "--set", "lanes=8", "--seed", "0x1234", "--count", "100003",
                 "-o", str(out)]) == 0
    data = out.read_bytes()
    assert len(data) == 2 * 100_003
    got = np.array([int.from_bytes(data[i:i + 2], "little", signed=True)
                    for i in range(0, len(data), 2)])
    assert (got == generate(G(lanes=8), 0x1234, 100_003)).all()
    assert (got != generate(G(lanes=8), 0x1235, 100_003)).mean() > 0.99
    z = got / 2.0 ** G(lanes=8).z_frac
    assert abs(z.mean()) < 0.02 and abs(z.var() - 1) < 0.02


def test_stream_bits_packs_w_bits_per_value(tmp_path):
    out = tmp_path / "u.bin"
    assert main(["stream", "--set", "width=12", "--stage", "bank", "--format", "bits",
                 "--seed", "9", "--count", "1001", "-o", str(out)]) == 0
    raw = np.unpackbits(np.fromfile(out, dtype=np.uint8), bitorder="little")
    assert len(raw) == -(-1001 * 12 // 8) * 8
    vals = raw[:1001 * 12].reshape(1001, 12).astype(np.int64) @ (1 << np.arange(12))
    ref = generate(G(width=12), 9, 1001, stage="bank") & 0xFFF
    assert (vals == ref).all()


def test_stream_to_stdout_in_a_pipe():
    r = subprocess.run([sys.executable, "-m", "pezo", "stream", "--count", "64", "--stage",
                        "uniform", "--set", "width=8"], capture_output=True)
    assert r.returncode == 0
    assert (np.frombuffer(r.stdout, dtype=np.int8) == generate(G(width=8), 0, 64,
                                                               stage="uniform")).all()


def test_info_json(capsys):
    assert main(["info", "--json", "--set", "reuse=pregen"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["fill_cycles"] == 256 + 3 and info["z_format"] == "Q3.13"
    assert abs(info["alpha_rel_error"]) < 0.01 and info["polynomial"].startswith("x^32")


@pytest.mark.parametrize("argv,msg", [
    (["generate", "--set", "lanes=0"], "Lane count (lanes) must be an integer in 1..64, not 0"),
    (["stream", "--count", "4", "--set", "lanes"], "Setting 'lanes' is not of the form key=value"),
    (["stream", "--count", "4", "--seed", "-1"], "Seed must be in 0..2^32-1, not -1"),
    (["info", "-c", "missing.toml"], "Configuration file 'missing.toml' does not exist"),
    (["stream", "--count", "-3"], "Count must be a non-negative integer, not -3"),
    # issue #14 D7: a bad module name, engine keys where only a generator is taken
    (["generate", "--name", "bad name!", "-o", "{tmp}"],
     "Module name must be a Verilog identifier (a letter or _, then letters, digits, _ or $), "
     "not 'bad name!'"),
    (["info", "--set", "depth=0"], "pezo info takes generator parameters only; depth is an "
     "engine parameter"),
    (["stream", "-n", "4", "--set", "depth=0", "--set", "w_frac=3"], "pezo stream takes "
     "generator parameters only; depth, w_frac are engine parameters"),
    (["quality", "--set", "coef_bits=8"], "pezo quality takes generator parameters only"),
])
def test_cli_errors_name_the_value(argv, msg, capsys, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())            # nothing written on a refused command


@pytest.mark.parametrize("text,msg", [
    ("generator = 5\n", "[generator] in '{f}' must be a table of parameters, not 5"),
    ("engine = [1, 2]\n", "[engine] in '{f}' must be a table of parameters, not [1, 2]"),
    ("[engine]\ndepth = 16\ngenerator = \"x\"\n", "[engine] in '{f}' must not hold "
     "'generator' (got 'x')")])
@pytest.mark.parametrize("block", ["generator", "engine"])
def test_config_file_with_a_non_table_section_is_refused(tmp_path, capsys, text, msg, block):
    """issue #14 D7: a [generator]/[engine] entry that is not a table names itself, for both the
    generator and the engine loaders (it said "'int' object is not iterable")."""
    f = tmp_path / "bad.toml"
    f.write_text(text)
    assert main(["generate", block, "-c", str(f), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert msg.format(f=f) in err, err
    assert not (tmp_path / "out").exists()


def test_generate_engine_and_mac(tmp_path):
    cfg = tmp_path / "e.toml"
    cfg.write_text('[engine]\ndepth = 256\n[generator]\nlanes = 2\nreuse = "pregen"\n'
                   'out_lanes = 4\npool_size = 512\n')
    assert main(["generate", "engine", "-c", str(cfg), "--set", "w_int=2", "--set", "w_frac=6",
                 "-o", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "pezo_engine.json").read_text())
    assert meta["config"]["depth"] == 256 and meta["config"]["w_int"] == 2
    assert meta["config"]["generator"]["out_lanes"] == 4
    assert meta["pass_cycles"] == 256 // 4 + 10
    assert meta["ports"]["rdata__payload"]["width"] == 4 * 8
    assert main(["generate", "mac", "-o", str(tmp_path), "--format", "v"]) == 0
    assert "module pezo_mac" in (tmp_path / "pezo_mac.v").read_text()
    assert main(["generate", "engine", "--set", "depth=10", "-o", str(tmp_path)]) == 2


def _write_report(path, name, lut, ff):
    path.mkdir(parents=True)
    rep = {"board": "ice40", "family": "ice40", "design": "bank", "config_name": name,
           "summary": {"lut4": lut, "ff": ff, "carry": 0, "bram": 0, "spram": 0, "dsp": 0},
           "modules": {"top": {"lut4": lut, "ff": ff, "carry": 0, "bram": 0, "spram": 0,
                               "dsp": 0}}}
    (path / "report.json").write_text(json.dumps(rep))
    return path / "report.json"


def test_report_and_compare_commands(tmp_path, capsys):
    a = _write_report(tmp_path / "b" / "a", "cfg-a", 200, 100)
    b = _write_report(tmp_path / "b" / "b", "cfg-b", 150, 110)
    assert main(["report", str(tmp_path / "b"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| ice40 | bank | cfg-a | 200 | 100 |" in out and "2 report(s) aggregated" in out
    assert (tmp_path / "out" / "report.csv").exists() and (tmp_path / "out" / "lut.png").exists()
    assert main(["compare", str(a), str(b.parent)]) == 0
    out = capsys.readouterr().out
    lut = next(ln for ln in out.splitlines() if ln.startswith("LUT4"))
    assert lut.split()[1:] == ["200", "150", "-50", "-25.0", "%"]
    assert main(["compare", str(a), str(b), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {e["key"]: e["delta"] for e in res["resources"]}["ff"] == 10


def test_compare_errors(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope.json"), str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["compare", str(tmp_path)]) == 2
    assert "compare needs two reports A and B (or --paper)" in capsys.readouterr().err
    assert main(["synth", "--board", "ice40", "--design", "nope"]) == 2
    assert "Design must be one of engine, train, generator, bank, passthrough, clt4, clt8, clt12, " \
           "boxmuller, not 'nope'" in capsys.readouterr().err


def test_parity_and_ablation_are_subcommands(capsys):
    """`pezo parity` and `pezo ablation` run the studies' own command lines (make parity calls
    the former): their options and errors come through."""
    with pytest.raises(SystemExit) as e:
        main(["parity", "--datasets", "mnist"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: pezo parity") and "Dataset must be one of" in err
    with pytest.raises(SystemExit) as e:
        main(["ablation", "--configs", "nope"])
    assert "Configuration must be one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "parity" in out and "ablation" in out


def test_one_design_registry_for_generate_and_synth(tmp_path, capsys):
    """`pezo generate` writes every registered design, the Gaussian baselines included (their
    output: out_lanes values of z_bits); `pezo synth` takes the designs with a board wrapper and
    says why an input-stream block has none."""
    from pezo.designs import DESIGNS, REGISTRY
    assert {"engine", "mac", "scaler", "clt4", "boxmuller", "generator"} <= set(REGISTRY)
    assert "scaler" not in DESIGNS and "boxmuller" in DESIGNS
    assert main(["generate", "clt4", "--set", "lanes=2", "-o", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "pezo_clt4.json").read_text())
    assert meta["ports"]["o__payload"]["width"] == 2 * 16
    assert "module pezo_clt4" in (tmp_path / "pezo_clt4.v").read_text()
    capsys.readouterr()
    assert main(["synth", "--board", "ice40", "--design", "mac"]) == 2
    err = capsys.readouterr().err
    assert "not 'mac' (mac has an input stream and no board wrapper: `pezo generate mac`" in err
