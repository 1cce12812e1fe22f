"""Report aggregation and comparison (pezo.report), on hand-built report.json files whose figures
are chosen here, so every expected delta and sum is computed independently of the code."""

import csv
import json

import pytest

from pezo import report as R


def _mod(lut, ff, bram=0, dsp=0, carry=0):
    return {"lut4": lut, "ff": ff, "carry": carry, "bram": bram, "spram": 0, "dsp": dsp,
            "cells": {"SB_LUT4": lut, "SB_DFF": ff}}


def _report(name, modules, fmax=40.0, power=None, board="ice40"):
    summary = {k: sum(m[k] for m in modules.values()) for k in R.RESOURCES}
    rep = {"board": board, "family": "ice40", "design": "generator", "config_name": name,
           "seed": 1, "summary": summary, "modules": modules,
           "utilization": {"ICESTORM_LC": {"used": summary["lut4"] + 10, "available": 5280,
                                           "percent": 0.0}},
           "fmax": {"clk": {"achieved_mhz": fmax, "constraint_mhz": 48.0}}, "seconds": 3.0}
    if power:
        rep["power"] = power
    return rep


A = _report("a", {"top": _mod(10, 5), "top.gen": _mod(0, 0), "top.gen.bank": _mod(100, 64),
                  "top.gen.scaler": _mod(50, 40)}, power={"static_mw": 0.1, "dynamic_mw": 2.0,
                                                          "total_mw": 2.1})
B = _report("b", {"top": _mod(10, 5), "top.gen": _mod(0, 0), "top.gen.bank": _mod(60, 64),
                  "top.gen.scaler": _mod(50, 40), "top.gen.pool": _mod(30, 20, bram=2)},
            fmax=50.0, power={"static_mw": 0.1, "dynamic_mw": 1.0, "total_mw": 1.1})


@pytest.fixture
def files(tmp_path):
    for name, rep in (("a", A), ("b", B)):
        d = tmp_path / "build" / "ice40" / name
        d.mkdir(parents=True)
        (d / "report.json").write_text(json.dumps(rep))
    return tmp_path


def test_load_and_flatten(files):
    reps = R.load_reports([files / "build"])
    assert [r["config_name"] for r in reps] == ["a", "b"]
    row = R.flatten(reps[1])
    assert row["lut4"] == 60 + 10 + 50 + 30 and row["ff"] == 64 + 5 + 40 + 20 and row["bram"] == 2
    assert row["logic_cells_used"] == row["lut4"] + 10 and row["logic_cells_available"] == 5280
    assert row["fmax_mhz"] == 50.0 and row["power_total_mw"] == 1.1 
    assert row["missing"].split() == ["description", "config", "tools", "cells"]


def test_missing_fields_and_bad_files(tmp_path):
    old = {k: v for k, v in A.items() if k not in ("power", "modules")}
    assert set(R.missing_fields(old)) >= {"power", "modules"}
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"is not a synthesis report: it holds a JSON list"):
        R.load_report(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"is not valid JSON"):
        R.load_report(tmp_path / "y.json")
    (tmp_path / "z.json").write_text(json.dumps({"board": "ice40"}))
    with pytest.raises(ValueError, match=r"lacks 'summary'"):
        R.load_report(tmp_path / "z.json")
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        R.load_report(tmp_path / "nope.json")
    with pytest.raises(ValueError, match=r"No report paths given"):
        R.load_reports([])


def test_csv_markdown_and_plots(files, tmp_path):
    out = tmp_path / "out"
    R.aggregate([files / "build"], out)
    with open(out / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["config_name"] for r in rows] == ["a", "b"]
    assert [int(r["lut4"]) for r in rows] == [160, 150]
    md = (out / "report.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("| ice40")]
    assert len(lines) == 2 and "| 160 |" in lines[0] and "| 150 |" in lines[1]
    # 40 MHz against a 48 MHz constraint is marked as failing timing, 50 MHz is not.
    assert "40.0*" in lines[0] and "50.0*" not in lines[1]
    for png in ("lut.png", "ff.png", "power.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_resources_and_modules():
    c = R.compare(A, B)
    res = {e["key"]: e for e in c["resources"]}
    assert res["lut4"]["a"] == 160 and res["lut4"]["b"] == 150 and res["lut4"]["delta"] == -10
    assert res["lut4"]["percent"] == pytest.approx(-10 / 160 * 100)
    assert res["ff"]["delta"] == 20 and res["bram"]["delta"] == 2 and res["bram"]["percent"] is None
    power = [e for e in c["resources"] if e["key"].startswith("power")]
    assert any(e["delta"] == pytest.approx(-1.0) for e in power)
    matched = {m["module"]: m for m in c["modules"]["matched"]}
    assert matched["gen.bank"]["delta"]["lut4"] == -40
    assert [m["module"] for m in c["modules"]["only_b"]] == ["gen.pool"]
    # The new pool (|+30 LUT| + |+20 FF| = 50) and the bank (|-40 LUT| = 40) are the whole
    # change; the explanation names both, the larger first, with shares 50/90 and 40/90.
    text = " ".join(c["explanation"])
    assert text.index("gen.pool") < text.index("gen.bank")
    assert "56 %" in text and "44 %" in text
    out = R.format_compare(c)
    assert "LUT4" in out and "-10" in out and "only in B" in out


def test_module_totals_and_subtree_compare():
    t = R.module_totals(B, "top.gen")
    assert (t["lut4"], t["ff"], t["bram"]) == (60 + 50 + 30, 64 + 40 + 20, 2)
    c = R.compare(A, B, module_a="top.gen.bank", module_b="top.gen.bank")
    res = {e["key"]: e for e in c["resources"]}
    assert res["lut4"]["a"] == 100 and res["lut4"]["b"] == 60
    with pytest.raises(ValueError, match=r"nope"):
        R.module_totals(B, "top.nope")


def test_paper_table_reductions_and_cheapest_passing_baseline():
    """Reductions are (PeZO - baseline) / baseline; the reference baseline is the cheapest one
    (LUT4 + FF) among those that pass the statistical checks, not the cheapest overall."""
    from pezo.paper import paper_table

    def row(label, kind, lut, ff, dyn):
        return {"board": "ice40", "label": label, "kind": kind, "design": label, "lut4": lut,
                "ff": ff, "carry": 0, "bram": 0, "dsp": 0, "lc": lut, "fmax_mhz": 50.0,
                "dynamic_mw": dyn, "total_mw": dyn + 2.5}

    rows = [row("cheap", "baseline", 1000, 500, 10.0), row("good", "baseline", 2000, 1000, 20.0),
            row("pezo", "pezo", 500, 450, 1.0)]
    stats = {"cheap": (False, {}), "good": (True, {})}
    res = paper_table(rows, stats)
    red = {r["baseline"]: r for r in res["reductions"]}
    assert red["good"]["lut4"] == pytest.approx(-75.0) and red["good"]["ff"] == pytest.approx(-55.0)
    assert red["good"]["power"] == pytest.approx(-95.0) and red["good"]["cheapest_passing"]
    assert red["cheap"]["lut4"] == pytest.approx(-50.0) and not red["cheap"]["cheapest_passing"]
    line = next(ln for ln in res["markdown"].splitlines() if "good (cheapest passing)" in ln)
    # Paper: -48.6 % LUT, -12.7 % FF, -86 % power: all three beaten against "good".
    assert line.endswith("| yes / yes / yes |")
    line = next(ln for ln in res["markdown"].splitlines() if "| cheap |" in ln and "pezo" in ln)
    assert line.endswith("| yes / no / yes |")      # -50 / -10 / -90: FF -10 % misses -12.7 %


def test_paper_power_verdict_uses_the_whole_range():
    """With simulated activity in the rows, the power reduction is computed under every corner
    of the model's uncertainty (pezo.power.UNCERTAIN) with the same corner for both designs:
    "yes" only when the whole range is at or below -86 %, "no" when all of it is above, else
    "undecided"; the table prints the range."""
    from pezo import power as P
    from pezo.paper import _verdict, paper_table
    assert _verdict(-90.0, -86.0, [-92.0, -87.0]) == "yes"
    assert _verdict(-80.0, -86.0, [-85.0, -75.0]) == "no"
    assert _verdict(-87.0, -86.0, [-89.0, -84.0]) == "undecided"
    zero = {k: 0.0 for k in ("lut_toggles", "carry_toggles", "ff_toggles", "ff_clocked",
                             "ebr_accesses", "dsp_toggles")}
    base = dict(zero, dsp_toggles=40.0, lut_toggles=100.0)        # DSP-heavy baseline
    pezo = dict(zero, lut_toggles=60.0, ebr_accesses=2.0)          # logic + EBR

    def row(label, kind, act):
        p = P.power_from_activity(act, 48.0)
        return {"board": "ice40", "label": label, "kind": kind, "design": label, "lut4": 100,
                "ff": 100, "carry": 0, "bram": 0, "dsp": 0, "lc": 100, "fmax_mhz": 50.0,
                "dynamic_mw": p["dynamic_mw"], "total_mw": p["total_mw"], "activity": act,
                "power_family": "ice40", "power_clock_mhz": 48.0,
                "dynamic_mw_range": list(P.power_range(act, 48.0))}

    res = paper_table([row("gauss", "baseline", base), row("pezo", "pezo", pezo)],
                      {"gauss": (True, {})})
    red = res["reductions"][0]
    mid, lo, hi = P.reduction_range(pezo, base, 48.0)
    assert red["power"] == pytest.approx(mid) and red["power_range"] == [lo, hi]
    assert lo < mid < hi
    assert red["verdict"]["power"] == _verdict(mid, -86.0, [lo, hi])
    assert f"[{lo:+.1f}, {hi:+.1f}]" in res["markdown"]


def test_uncalibrated_ecp5_power_is_marked_everywhere_it_is_shown():
    """An ECP5 estimate (``calibrated: false``) is marked in the report table (†), the compare
    notes, the synth summary, and the paper table (* on its power figures and reductions, with
    the footnote); iCE40 figures and reports written before the flag existed are not."""
    from pezo.paper import paper_table
    from pezo.synth import format_summary
    ecp5 = dict(_report("e", {"top": _mod(10, 5)}, board="ulx3s-85f",
                        power={"static_mw": 1.5, "clock_mw": 1.0, "dynamic_mw": 0.5,
                               "total_mw": 3.0, "clock_mhz": 25.0, "calibrated": False}),
                family="ecp5")
    assert R.flatten(ecp5)["power_calibrated"] is False
    assert R.flatten(A)["power_calibrated"] is True      # old iCE40 report: no flag
    table = R.markdown_table([R.flatten(A), R.flatten(ecp5)])
    assert "| 3.00† |" in table and "| 2.10 |" in table
    assert "† Uncalibrated power estimate (ECP5" in table
    notes = R.compare(A, ecp5)["notes"]
    assert any(n.startswith("Power of B is an uncalibrated estimate") for n in notes)
    assert "UNCALIBRATED model, 25.0 MHz" in format_summary(ecp5)
    assert "power (model, " in format_summary(dict(A, power=dict(A["power"], clock_mhz=48.0,
                                                                 static_mw=0.1)))

    def row(board, label, kind, lut, dyn, cal):
        return {"board": board, "label": label, "kind": kind, "design": label, "lut4": lut,
                "ff": lut, "carry": 0, "bram": 0, "dsp": 0, "lc": lut, "fmax_mhz": 50.0,
                "dynamic_mw": dyn, "total_mw": dyn + 2.5, "power_calibrated": cal,
                "power_clock_mhz": 48.0 if cal else 25.0}

    rows = [row("ice40", "gauss", "baseline", 1000, 10.0, True),
            row("ice40", "pezo", "pezo", 100, 1.0, True),
            row("ulx3s-85f", "gauss", "baseline", 1000, 4.0, False),
            row("ulx3s-85f", "pezo", "pezo", 100, 0.5, False)]
    res = paper_table(rows, {"gauss": (True, {})})
    md = res["markdown"]
    assert "| ulx3s-85f | gauss | 1000 | 1000 | 0 | 0 | 0 | 1000 | 50.0 | 4.000* | 6.500* |" in md
    assert "| ice40 | gauss | 1000 | 1000 | 0 | 0 | 0 | 1000 | 50.0 | 10.000 | 12.500 |" in md
    assert "| ulx3s-85f | pezo | gauss (cheapest passing) | -90.0 % | -90.0 % | -87.5 %* |" in md
    assert "| ice40 | pezo | gauss (cheapest passing) | -90.0 % | -90.0 % | -90.0 % |" in md
    assert "\\* Uncalibrated estimate (ECP5)" in md and "(ice40 48 MHz; ulx3s-85f 25 MHz)" in md
    cal = {r["board"]: r["power_calibrated"] for r in res["reductions"]}
    assert cal == {"ice40": True, "ulx3s-85f": False}


def test_markdown_table_helper():
    """One table writer: header, alignment row, cells str()-ed with `|` escaped (a `|` inside a
    cell used to split the row in docs/quality.md); bad alignment or row width is refused."""
    from pezo.tables import markdown_table
    assert markdown_table(["a", "b"], [[1, "x|y"]], "lr") == \
        ["| a | b |", "|:--|--:|", "| 1 | x\\|y |"]
    with pytest.raises(ValueError, match=r"^Alignment must be one of l, r, - per column \(2\)"):
        markdown_table(["a", "b"], [], "l")
    with pytest.raises(ValueError, match=r"^Row has 1 cells, the table 2 columns"):
        markdown_table(["a", "b"], [[1]], "l-")
