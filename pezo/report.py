"""Synthesis reports: aggregate many ``report.json`` files, and compare two of them.

``pezo synth`` writes one ``report.json`` per board and configuration
(``build/<board>/<config>/report.json``). This module only reads those plain dicts; printing and
plotting are separate steps, as hls4ml and FINN do:

* :func:`load_reports` reads files or whole build folders;
* :func:`flatten` turns one report into one table row (:data:`COLUMNS`);
* :func:`write_csv`, :func:`markdown_table` and :func:`plot` write the rows out, and
  :func:`aggregate` does all three into one folder;
* :func:`compare` sets two reports side by side, resource by resource and module by module
  (hierarchy kept), and explains which modules account for the change; :func:`format_compare`
  renders the result as plain text;
* :func:`module_totals` sums the per-module figures under a hierarchical path.

Older reports may lack some keys (``design``, ``modules``, ``power``...): they load, the missing
figures show as empty cells ("–"), and :func:`missing_fields` (the ``missing`` column) names them.
"""

import csv
import json
import math
from pathlib import Path
import re

from pezo.power import reduction_range

__all__ = ["COLUMNS", "RESOURCES", "load_report", "load_reports", "missing_fields", "flatten",
           "write_csv", "markdown_table", "plot", "aggregate", "module_totals", "compare",
           "format_compare", "logic_cells", "first_clock"]

#: The resource counts every report carries in ``summary`` (and every module in ``modules``),
#: with their display names.
RESOURCES = {"lut4": "LUT4", "ff": "FF", "carry": "Carry", "bram": "BRAM", "spram": "SPRAM",
             "dsp": "DSP"}

#: The columns of a :func:`flatten` row, in CSV order.
COLUMNS = ("board", "family", "design", "config_name", "seed",
           "lut4", "ff", "carry", "bram", "spram", "dsp",
           "logic_cell_type", "logic_cells_used", "logic_cells_available", "logic_cells_percent",
           "clock", "fmax_mhz", "fmax_constraint_mhz",
           "power_static_mw", "power_dynamic_mw", "power_dynamic_mw_low", "power_dynamic_mw_high",
           "power_total_mw", "power_total_mw_low", "power_total_mw_high", "power_calibrated",
           "seconds", "missing", "source")

# Keys a complete report has; "board" and "summary" are required, the others reported if absent.
_REQUIRED = ("board", "summary")
_EXPECTED = ("board", "description", "family", "config_name", "config", "seed", "design", "tools",
             "cells", "summary", "utilization", "fmax", "modules", "power", "seconds")
# Logic-cell entries of nextpnr's utilisation, by preference (iCE40; ECP5 since nextpnr 0.7; older).
_LOGIC_CELLS = ("ICESTORM_LC", "TRELLIS_COMB", "TRELLIS_SLICE")
_POWER = (("static_mw", "Static power (mW)"), ("dynamic_mw", "Dynamic power (mW)"),
          ("total_mw", "Total power (mW)"))
# Per-module figures shown by format_compare and used in the explanation.
_MODULE_SHOWN = ("lut4", "ff", "bram", "dsp")
# yosys names anonymous instances "rx$35"; the number changes from one build to the next.
_AUTO_SUFFIX = re.compile(r"\$\d+")
DASH = "–"


# --- loading -------------------------------------------------------------------------------------

def _check_report(data, where):
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not a synthesis report: it holds a JSON "
                         f"{type(data).__name__}, not an object with 'board' and 'summary'")
    absent = [k for k in _REQUIRED if k not in data]
    if absent:
        raise ValueError(f"{where} is not a synthesis report: it lacks "
                         f"{', '.join(map(repr, absent))} (expected the report.json that "
                         f"`pezo synth` writes)")
    if not isinstance(data["summary"], dict):
        raise ValueError(f"{where} is not a synthesis report: 'summary' must be an object of "
                         f"resource counts, not {data['summary']!r}")
    return data


def load_report(path):
    """Read one ``report.json``.

    Returns the report dict with an extra ``"source"`` key (the path it was read from).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not JSON, or is JSON but not a synthesis report (no ``board``/``summary``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Report {str(path)!r} does not exist; give a report.json file "
                                f"or a folder holding some (such as build/)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Report {str(path)!r} is not valid JSON: {e}") from None
    _check_report(data, f"Report {str(path)!r}")
    data["source"] = str(path)
    return data


def load_reports(paths):
    """Read reports from files and folders (searched recursively for ``report.json``).

    ``paths`` is one path or a list of them. Files are read in the order given; each folder's
    reports in sorted path order. A file reached twice is read once.

    Raises
    ------
    FileNotFoundError
        If a path does not exist, or a folder holds no ``report.json``.
    ValueError
        If no path is given, or a file is malformed or not a report (see :func:`load_report`).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("No report paths given; give report.json files or folders holding some")
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("report.json"))
            if not found:
                raise FileNotFoundError(f"No report.json under {str(p)!r}; run `pezo synth` "
                                        f"first or give another folder")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"Report path {str(p)!r} does not exist; give a report.json "
                                    f"file or a folder holding some (such as build/)")
    seen, reports = set(), []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            reports.append(load_report(f))
    return reports


def _as_report(r, which):
    if isinstance(r, (str, Path)):
        return load_report(r)
    return _check_report(r, f"Report {which}")


def missing_fields(report):
    """The keys a complete report has and this one lacks, e.g. ``["modules", "power"]``
    (``summary.<resource>`` for a missing resource count)."""
    missing = [k for k in _EXPECTED if k not in report]
    missing += [f"summary.{k}" for k in RESOURCES if k not in report.get("summary", {})]
    return missing


# --- one row per report --------------------------------------------------------------------------

def logic_cells(report):
    """(type, used, available, percent) of the logic-cell entry of the utilisation, or None."""
    util = report.get("utilization") or {}
    keys = [k for k in _LOGIC_CELLS if k in util]
    keys += sorted(k for k in util if k not in keys
                   and (k.endswith("_LC") or "COMB" in k or "SLICE" in k))
    for k in keys:
        u = util[k]
        if isinstance(u, dict) and u.get("used") is not None:
            pct = u.get("percent")
            if pct is None and u.get("available"):
                pct = round(100.0 * u["used"] / u["available"], 2)
            return k, u["used"], u.get("available"), pct
    return None


def first_clock(report):
    """(clock name, achieved MHz, constraint MHz) of the first clock, or None."""
    for name, f in (report.get("fmax") or {}).items():
        if isinstance(f, dict):
            return name, f.get("achieved_mhz"), f.get("constraint_mhz")
    return None


def _power(report):
    p = report.get("power")
    return p if isinstance(p, dict) else {}


def _power_calibrated(report):
    """True/False: the report's power estimate is calibrated (iCE40) or not (ECP5); None without
    an estimate. Reports written before the ECP5 model carry no flag: they are iCE40 ones."""
    p = _power(report)
    if p.get("total_mw") is None:
        return None
    return bool(p.get("calibrated", report.get("family") == "ice40"))


def flatten(report):
    """One table row (a dict with the keys of :data:`COLUMNS`) for one report.

    Figures the report lacks are ``None``; ``missing`` names the absent keys (space-separated).
    The logic cells are nextpnr's ``ICESTORM_LC`` (iCE40) or ``TRELLIS_COMB`` (ECP5; an older
    ``TRELLIS_SLICE``, or any ``*_LC``/``*COMB*`` entry, otherwise); fmax is the first clock's.
    """
    s = report.get("summary") or {}
    lc = logic_cells(report) or (None, None, None, None)
    clk = first_clock(report) or (None, None, None)
    p = _power(report)
    row = {"board": report.get("board"), "family": report.get("family"),
           "design": report.get("design"), "config_name": report.get("config_name"),
           "seed": report.get("seed")}
    row.update({k: s.get(k) for k in RESOURCES})
    row.update(logic_cell_type=lc[0], logic_cells_used=lc[1], logic_cells_available=lc[2],
               logic_cells_percent=lc[3], clock=clk[0], fmax_mhz=clk[1],
               fmax_constraint_mhz=clk[2], power_static_mw=p.get("static_mw"),
               power_dynamic_mw=p.get("dynamic_mw"), power_total_mw=p.get("total_mw"),
               power_dynamic_mw_low=(p.get("dynamic_mw_range") or [None, None])[0],
               power_dynamic_mw_high=(p.get("dynamic_mw_range") or [None, None])[1],
               power_total_mw_low=(p.get("total_mw_range") or [None, None])[0],
               power_total_mw_high=(p.get("total_mw_range") or [None, None])[1],
               power_calibrated=_power_calibrated(report),
               seconds=report.get("seconds"), missing=" ".join(missing_fields(report)),
               source=report.get("source"))
    return row


# --- outputs -------------------------------------------------------------------------------------

def write_csv(rows, path):
    """Write rows (from :func:`flatten`) to a CSV file with a header; ``None`` is an empty cell.

    Columns are :data:`COLUMNS` first, then any other keys the rows have. Returns the path."""
    rows = list(rows)
    columns = list(COLUMNS)
    for r in rows:
        columns += [k for k in r if k not in columns]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if r.get(k) is None else r.get(k) for k in columns})
    return path


def _num(x, digits=1):
    """A number for a table: integers as they are, floats with ``digits`` decimals, None as –."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and digits == 0):
        return str(int(x))
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _md_escape(text):
    return str(text).replace("|", "\\|")


def _fails_timing(r):
    return (r.get("fmax_mhz") is not None and r.get("fmax_constraint_mhz") is not None
            and r["fmax_mhz"] < r["fmax_constraint_mhz"])


def _uncalibrated(r):
    v = r.get("power_calibrated")
    return v is False or (isinstance(v, str) and v.strip().lower() == "false")


def _row_label(r):
    return f"{r.get('board') or DASH} {r.get('config_name') or DASH}"


def markdown_table(rows):
    """A GitHub-flavoured Markdown table, one line per row (from :func:`flatten`).

    Columns: board, design, configuration, LUT4, FF, carry, BRAM, SPRAM, DSP, logic cells
    ("used / available (percent)"), fmax and its constraint (MHz), total power (mW). Missing
    figures show as "–". Notes below the table mark an fmax under its constraint (``*``) and an
    uncalibrated power estimate (``†``, ECP5), and say which keys the report files lack."""
    rows = list(rows)
    head = ["Board", "Design", "Configuration", "LUT4", "FF", "Carry", "BRAM", "SPRAM", "DSP",
            "Logic cells", "fmax (MHz)", "Target (MHz)", "Power (mW)"]
    align = [":--"] * 3 + ["--:"] * (len(head) - 3)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        if r.get("logic_cells_used") is None:
            lc = DASH
        else:
            lc = f"{_num(r['logic_cells_used'])} / {_num(r.get('logic_cells_available'))}"
            if r.get("logic_cells_percent") is not None:
                lc += f" ({float(r['logic_cells_percent']):.1f} %)"
        fmax = _num(r.get("fmax_mhz")) + ("*" if _fails_timing(r) else "")
        cells = [r.get("board") or DASH, r.get("design") or DASH, r.get("config_name") or DASH]
        cells += [_num(r.get(k)) for k in RESOURCES]
        power = _num(r.get("power_total_mw"), 2) + ("†" if _uncalibrated(r) else "")
        if r.get("power_total_mw_low") is not None:
            power += f" ({r['power_total_mw_low']:.2f}-{r['power_total_mw_high']:.2f})"
        cells += [lc, fmax, _num(r.get("fmax_constraint_mhz")), power]
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    notes = []
    if any(_fails_timing(r) for r in rows):
        notes.append("\\* fmax below the clock constraint.")
    if any(_uncalibrated(r) for r in rows):
        notes.append("† Uncalibrated power estimate (ECP5: the iCE40 UP5K coefficients scaled to "
                     "the 1.1 V core, static current assumed); compare it only with other "
                     "estimates on the same family.")
    missing = {}
    for r in rows:
        for k in (r.get("missing") or "").split():
            missing.setdefault(k, []).append(_row_label(r))
    for k, who in missing.items():
        where = f"all {len(rows)} reports" if len(who) == len(rows) else ", ".join(who)
        notes.append(f"Missing `{k}` in {where}.")
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


_PLOTS = (("lut4", "lut.png", "LUT4 cells", "LUT4 per configuration", 0),
          ("ff", "ff.png", "Flip-flops", "Flip-flops per configuration", 0),
          ("power_total_mw", "power.png", "Total power (mW)", "Estimated power per configuration", 1))


def plot(rows, out_dir):
    """Bar plots of LUT4, FF and (where any row has it) total power across configurations.

    Configurations are along the x axis, one bar per board; written as ``lut.png``, ``ff.png``
    and ``power.png`` in ``out_dir`` (made if needed). A plot whose figure no row has is not
    written. Uses matplotlib's Agg renderer without touching pyplot's global state. Returns the
    paths written."""
    # lazy import: matplotlib is heavy and needed only here
    from matplotlib.figure import Figure

    rows = list(rows)
    if not rows:
        raise ValueError("No report rows to plot; load some reports first")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    several_designs = len({r.get("design") for r in rows}) > 1

    def label(r):
        name = r.get("config_name") or DASH
        return f"{name}\n({r.get('design') or DASH})" if several_designs else name

    labels = list(dict.fromkeys(label(r) for r in rows))
    boards = list(dict.fromkeys(r.get("board") or DASH for r in rows))
    written = []
    for key, fname, ylabel, title, digits in _PLOTS:
        if not any(r.get(key) is not None for r in rows):
            continue
        width = 0.8 / len(boards)
        fig = Figure(figsize=(max(6.0, 1.0 + len(labels) * (0.6 + 0.35 * len(boards))), 4.8),
                     layout="constrained")
        ax = fig.add_subplot()
        for i, board in enumerate(boards):
            xs, ys = [], []
            for r in rows:
                if (r.get("board") or DASH) == board and r.get(key) is not None:
                    xs.append(labels.index(label(r)) + (i - (len(boards) - 1) / 2) * width)
                    ys.append(r[key])
            bars = ax.bar(xs, ys, width, label=board)
            ax.bar_label(bars, labels=[f"{y:.{digits}f}" for y in ys], fontsize=7, padding=2)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("Configuration")
        ax.set_ylabel(ylabel)
        ax.set_title(title if len(boards) > 1 else f"{title} ({boards[0]})")
        ax.margins(y=0.12)
        if len(boards) > 1:
            ax.legend(title="Board")
        path = out_dir / fname
        fig.savefig(path, dpi=120)
        written.append(path)
    return written


def aggregate(paths, out_dir):
    """Load reports (files or folders) and write ``report.csv``, ``report.md`` and the plots.

    Returns ``{"csv": Path, "markdown": Path, "plots": [Path, ...], "reports": count}``."""
    rows = [flatten(r) for r in load_reports(paths)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(rows, out_dir / "report.csv")
    md_path = out_dir / "report.md"
    md_path.write_text(markdown_table(rows))
    return {"csv": csv_path, "markdown": md_path, "plots": plot(rows, out_dir),
            "reports": len(rows)}


# --- modules -------------------------------------------------------------------------------------

def _modules(report, which="The report"):
    mods = report.get("modules")
    if not isinstance(mods, dict) or not mods:
        raise ValueError(f"{which} ({_ident(report)}) has no per-module breakdown ('modules'); "
                         f"synthesise it again with a `pezo synth` that writes one")
    return mods


def _ident(report):
    return f"{report.get('board', '?')} {report.get('config_name', '?')}"


def _resolve_prefix(modules, prefix, which="the report"):
    """The module path in ``modules`` that ``prefix`` names: the path itself, or the path with
    the top level added or replaced (``bridge.engine`` or ``top.bridge.engine`` for
    ``pezo_top.bridge.engine``)."""
    if not isinstance(prefix, str) or not prefix:
        raise TypeError(f"Module path must be a non-empty string, not {prefix!r}")
    prefix = prefix.strip(".")
    if any(p == prefix or p.startswith(prefix + ".") for p in modules):
        return prefix
    tops = sorted({p.split(".")[0] for p in modules})
    rest = prefix.partition(".")[2]
    candidates = [f"{t}.{prefix}" for t in tops] + ([f"{t}.{rest}" for t in tops] if rest else [])
    if not rest:
        candidates += tops if len(tops) == 1 and prefix not in tops else []
    hits = [c for c in dict.fromkeys(candidates)
            if any(p == c or p.startswith(c + ".") for p in modules)]
    if len(hits) == 1:
        return hits[0]
    shown = sorted(modules)
    more = f" (and {len(shown) - 12} more)" if len(shown) > 12 else ""
    if hits:
        raise ValueError(f"Module path {prefix!r} is ambiguous in {which}: it could be "
                         f"{', '.join(map(repr, hits))}")
    raise ValueError(f"No module {prefix!r} in {which}; its modules are "
                     f"{', '.join(shown[:12])}{more}")


def module_totals(report, prefix):
    """Sum the per-module figures of the module at ``prefix`` and everything under it.

    ``prefix`` is a hierarchical instance path (``"pezo_top.bridge.engine.gen"``); a path whose
    top level differs or is left out (``"top.bridge.engine.gen"``, ``"bridge.engine.gen"``) also
    works when it names one module. Returns ``{"lut4", "ff", "carry", "bram", "spram", "dsp":
    int, "cells": {type: count}, "modules": count, "path": the resolved path}``.

    Raises
    ------
    ValueError
        If the report has no ``modules``, or no module (or more than one) matches ``prefix``.
    """
    mods = _modules(report)
    path = _resolve_prefix(mods, prefix, f"report {_ident(report)}")
    total = {k: 0 for k in RESOURCES}
    cells, count = {}, 0
    for p, m in mods.items():
        if p == path or p.startswith(path + "."):
            count += 1
            for k in RESOURCES:
                total[k] += m.get(k) or 0
            for c, n in (m.get("cells") or {}).items():
                cells[c] = cells.get(c, 0) + n
    total.update(cells=dict(sorted(cells.items())), modules=count, path=path)
    return total


def _keyed_modules(modules, prefix=None):
    """{key: (full path, figures)}: keys are paths relative to ``prefix`` (the subtree root is
    ""), or, without a prefix, paths without the top level when the report has a single top."""
    out = {}
    if prefix is not None:
        for p, m in modules.items():
            if p == prefix or p.startswith(prefix + "."):
                out[p[len(prefix) + 1:]] = (p, m)
        return out
    single_top = len({p.split(".")[0] for p in modules}) == 1
    for p, m in modules.items():
        out[p.partition(".")[2] if single_top else p] = (p, m)
    return out


def _match(keys_a, keys_b):
    """Pairs of matching keys, then keys only in A and only in B. Keys match when equal, or
    (once) when equal after dropping yosys's ``$<n>`` instance numbers."""
    pairs = [(k, k) for k in keys_a if k in keys_b]
    rest_a = [k for k in keys_a if k not in keys_b]
    rest_b = [k for k in keys_b if k not in keys_a]
    by_a, by_b = {}, {}
    for k in rest_a:
        by_a.setdefault(_AUTO_SUFFIX.sub("", k), []).append(k)
    for k in rest_b:
        by_b.setdefault(_AUTO_SUFFIX.sub("", k), []).append(k)
    for n, ka in by_a.items():
        if len(ka) == 1 and len(by_b.get(n, ())) == 1:
            pairs.append((ka[0], by_b[n][0]))
    paired_a = {a for a, _ in pairs}
    paired_b = {b for _, b in pairs}
    return (sorted(pairs), [k for k in rest_a if k not in paired_a],
            [k for k in rest_b if k not in paired_b])


# --- comparing -----------------------------------------------------------------------------------

def _delta(a, b):
    if a is None or b is None:
        return None, None
    d = b - a
    if isinstance(d, float):
        d = round(d, 9)
    return d, (100.0 * d / a if a else None)


def _entry(key, label, a, b):
    d, pct = _delta(a, b)
    return {"key": key, "label": label, "a": a, "b": b, "delta": d, "percent": pct}


def _figures(m):
    return {k: m.get(k) or 0 for k in RESOURCES}


def _design_resources(a, b, notes):
    sa, sb = a["summary"], b["summary"]
    res = [_entry(k, lbl, sa.get(k), sb.get(k)) for k, lbl in RESOURCES.items()]
    la, lb = logic_cells(a), logic_cells(b)
    if la and lb:
        kind = la[0] if la[0] == lb[0] else f"{la[0]} / {lb[0]}"
        res.append(_entry("logic_cells", f"Logic cells ({kind})", la[1], lb[1]))
    elif la or lb:
        notes.append(f"Logic cells only in {'A' if la else 'B'}.")
    ca, cb = first_clock(a), first_clock(b)
    if ca and cb:
        clock = ca[0] if ca[0] == cb[0] else f"{ca[0]} / {cb[0]}"
        res.append(_entry("fmax_mhz", f"fmax {clock} (MHz)", ca[1], cb[1]))
    elif ca or cb:
        notes.append(f"fmax only in {'A' if ca else 'B'}.")
    pa, pb = _power(a), _power(b)
    for k, lbl in _POWER:
        if pa.get(k) is not None and pb.get(k) is not None:
            res.append(_entry(f"power_{k}", lbl, pa[k], pb[k]))
    if bool(pa) != bool(pb):
        notes.append(f"Power estimate only in {'A' if pa else 'B'}.")
    acta, actb = pa.get("activity_per_cycle"), pb.get("activity_per_cycle")
    fam = a.get("family") or ("ecp5" if str(a.get("board", "")).startswith("ulx3s") else "ice40")
    if (acta and actb and pa.get("clock_mhz") and pa.get("clock_mhz") == pb.get("clock_mhz")
            and a.get("family") == b.get("family") and pb.get("dynamic_mw")):
        mid, lo, hi = reduction_range(acta, actb, pa["clock_mhz"], fam)
        notes.append(f"Dynamic power change over the model's uncertainty (pezo.power.UNCERTAIN, "
                     f"the same corner for A and B): {mid:+.1f} % [{lo:+.1f}, {hi:+.1f}].")
    uncal = [w for w, r in (("A", a), ("B", b)) if _power_calibrated(r) is False]
    if uncal:
        notes.append(f"Power of {' and '.join(uncal)} is an uncalibrated estimate (ECP5: the "
                     f"iCE40 UP5K coefficients scaled to the 1.1 V core); read power deltas only "
                     f"between designs on the same family.")
    return res


def _display(key_a, key_b, root_a, root_b):
    if key_a == "" and key_b == "":
        return root_a if root_a == root_b else f"{root_a} / {root_b}"
    return key_a if key_a == key_b else f"{key_a} / {key_b}"


def _share_text(share):
    return "<1 %" if 0 < share < 0.5 else f"{share:.0f} %"


def _explain(candidates):
    """The modules with the largest |ΔLUT4| + |ΔFF| that together make >= 90 % of the total."""
    total = sum(abs(c["delta"]["lut4"]) + abs(c["delta"]["ff"]) for c in candidates)
    if not total:
        return [], []
    ranked = sorted(candidates, key=lambda c: (-(abs(c["delta"]["lut4"]) + abs(c["delta"]["ff"])),
                                                c["module"]))
    contributions, explanation, acc = [], [], 0
    for c in ranked:
        size = abs(c["delta"]["lut4"]) + abs(c["delta"]["ff"])
        if not size:
            break
        share = 100.0 * size / total
        parts = [f"{c['delta'][k]:+d} {RESOURCES[k]}" for k in _MODULE_SHOWN if c["delta"][k]]
        tag = {"a": " (only in A)", "b": " (only in B)"}.get(c["status"], "")
        text = f"{c['module']}{tag}: {', '.join(parts)} ({_share_text(share)} of the change)"
        contributions.append({"module": c["module"], "status": c["status"], "share": share,
                              "delta": c["delta"], "text": text})
        if acc < 0.9 * total:
            explanation.append(text)
        acc += size
    return explanation, contributions


def compare(a, b, module_a=None, module_b=None):
    """Compare two reports (dicts or ``report.json`` paths): resources, modules, and why.

    Parameters
    ----------
    a, b : dict or path
        The reports; deltas and percentages are B relative to A.
    module_a, module_b : str, optional
        Compare only the subtree at these hierarchical paths (see :func:`module_totals`), for
        two designs in the same harness. One given alone is used for both.

    Returns
    -------
    dict
        ``a``/``b``: board, config_name, design, family, source, and the subtree compared.
        ``resources``: a list of ``{key, label, a, b, delta, percent}`` for LUT4, FF, carry,
        BRAM, SPRAM, DSP, then (whole design only, when both reports have them) logic cells,
        fmax of the first clock and power (static, dynamic, total). ``percent`` is None when A
        is 0; ``delta`` is None when a side lacks the figure.
        ``modules``: ``matched`` (``{module, path_a, path_b, a, b, delta}``, figures per
        resource), ``only_a`` and ``only_b`` (``{module, path, figures}``); modules are matched by
        hierarchical path without the top level (so ``top.x`` meets ``pezo_top.x``), or relative
        to the subtree, and also across yosys's ``$<n>`` instance numbers. Empty lists when a
        report has no per-module breakdown (a note says so).
        ``explanation``: sentences naming the modules, largest |ΔLUT4| + |ΔFF| first, that
        together account for at least 90 % of the change; ``contributions``: every changed
        module with its share. ``notes``: caveats, as sentences.

    Raises
    ------
    ValueError
        If a report is not one, or a subtree is asked of a report without the module.
    """
    a, b = _as_report(a, "A"), _as_report(b, "B")
    if module_a is None:
        module_a = module_b
    if module_b is None:
        module_b = module_a
    notes = []
    if a.get("family") and b.get("family") and a["family"] != b["family"]:
        notes.append(f"A is {a['family']} and B is {b['family']}: their cells differ in kind, so "
                     f"compare the counts with care.")
    if module_a is None:
        resources = _design_resources(a, b, notes)
        mods_a, mods_b = a.get("modules") or {}, b.get("modules") or {}
        for which, r, mods in (("A", a, mods_a), ("B", b, mods_b)):
            if not mods:
                notes.append(f"{which} has no per-module breakdown ('modules').")
        keyed_a, keyed_b = _keyed_modules(mods_a), _keyed_modules(mods_b)
        root_a = min(mods_a, key=len) if mods_a else ""
        root_b = min(mods_b, key=len) if mods_b else ""
        if mods_a and mods_b:
            for which, r, mods in (("A", a, mods_a), ("B", b, mods_b)):
                summed = sum(m.get("lut4") or 0 for m in mods.values())
                flat = r["summary"].get("lut4")
                if flat is not None and summed != flat:
                    notes.append(f"{which}'s modules sum to {summed} LUT4 against {flat} in the "
                                 f"flat build: the breakdown is a separate hierarchy-keeping "
                                 f"synthesis, without cross-module optimisation.")
    else:
        mods_a, mods_b = _modules(a, "Report A"), _modules(b, "Report B")
        path_a = _resolve_prefix(mods_a, module_a, f"report A ({_ident(a)})")
        path_b = _resolve_prefix(mods_b, module_b, f"report B ({_ident(b)})")
        ta, tb = module_totals(a, path_a), module_totals(b, path_b)
        resources = [_entry(k, lbl, ta[k], tb[k]) for k, lbl in RESOURCES.items()]
        notes.append("Subtree comparison: sums of per-module figures; logic cells, fmax and power "
                     "are design-wide and left out.")
        keyed_a, keyed_b = _keyed_modules(mods_a, path_a), _keyed_modules(mods_b, path_b)
        root_a, root_b = path_a.rsplit(".", 1)[-1], path_b.rsplit(".", 1)[-1]
    pairs, only_a, only_b = _match(list(keyed_a), list(keyed_b))
    matched, candidates = [], []
    for ka, kb in pairs:
        fa, fb = _figures(keyed_a[ka][1]), _figures(keyed_b[kb][1])
        name = _display(ka, kb, root_a, root_b)
        delta = {k: fb[k] - fa[k] for k in RESOURCES}
        matched.append({"module": name, "path_a": keyed_a[ka][0], "path_b": keyed_b[kb][0],
                        "a": fa, "b": fb, "delta": delta})
        candidates.append({"module": name, "status": "both", "delta": delta})
    sides = []
    for status, keys, keyed, root, sign in (("a", only_a, keyed_a, root_a, -1),
                                           ("b", only_b, keyed_b, root_b, 1)):
        side = []
        for k in sorted(keys):
            f = _figures(keyed[k][1])
            name = k or root
            side.append({"module": name, "path": keyed[k][0], "figures": f})
            candidates.append({"module": name, "status": status,
                               "delta": {r: sign * f[r] for r in RESOURCES}})
        sides.append(side)
    explanation, contributions = _explain(candidates)
    if (keyed_a or keyed_b) and not contributions:
        notes.append("No module changed in LUT4 or FF.")

    def ident(r, path):
        return {"board": r.get("board"), "config_name": r.get("config_name"),
                "design": r.get("design"), "family": r.get("family"),
                "source": r.get("source"), "module": path}

    return {"a": ident(a, module_a and path_a), "b": ident(b, module_b and path_b),
            "resources": resources,
            "modules": {"matched": matched, "only_a": sides[0], "only_b": sides[1]},
            "explanation": explanation, "contributions": contributions, "notes": notes}


# --- plain-text rendering ------------------------------------------------------------------------

def _text_table(head, rows, left=1):
    """Aligned plain-text table: the first ``left`` columns left-aligned, the rest right."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def _signed(x, digits):
    if x is None:
        return DASH
    if isinstance(x, int):
        return f"{x:+d}"
    return f"{x:+.{digits}f}"


def _pct(p):
    return "n/a" if p is None else f"{p:+.1f} %"


def format_compare(result):
    """Render a :func:`compare` result as a plain-text report: which reports, the resource
    table (A, B, delta, percent), the per-module table (LUT4, FF, BRAM, DSP), the explanation
    and the notes."""
    lines = []
    for which in ("a", "b"):
        r = result[which]
        design = f" ({r['design']})" if r.get("design") else ""
        sub = f", module {r['module']}" if r.get("module") else ""
        src = f"  [{r['source']}]" if r.get("source") else ""
        lines.append(f"{which.upper()}: {r.get('board') or DASH} {r.get('config_name') or DASH}"
                     f"{design}{sub}{src}")
    lines.append("")
    rows = []
    for e in result["resources"]:
        digits = 2 if e["key"].startswith("power") else 1
        rows.append([e["label"], _num(e["a"], digits), _num(e["b"], digits),
                     _signed(e["delta"], digits), DASH if e["delta"] is None else _pct(e["percent"])])
    lines += _text_table(["Resource", "A", "B", "Delta", "Change"], rows)

    mods = result["modules"]
    entries = ([(m["module"], m["a"], m["b"], "") for m in mods["matched"]]
               + [(m["module"], m["figures"], None, "only in A") for m in mods["only_a"]]
               + [(m["module"], None, m["figures"], "only in B") for m in mods["only_b"]])
    if entries:
        head = ["Module"]
        for k in _MODULE_SHOWN:
            head += [f"{RESOURCES[k]} A", "B", "Delta"]
        head.append("")
        rows = []
        for name, fa, fb, tag in sorted(entries, key=lambda e: e[0]):
            row = [name]
            for k in _MODULE_SHOWN:
                va = fa[k] if fa else None
                vb = fb[k] if fb else None
                d = (vb or 0) - (va or 0)
                row += [_num(va), _num(vb), _signed(d, 0) if d else ("0" if fa and fb else _signed(d, 0))]
            row.append(tag)
            rows.append(row)
        lines += ["", "Modules (own cells, not counting submodules):"]
        lines += _text_table(head, rows)
    if result["explanation"]:
        share = sum(c["share"] for c in result["contributions"][:len(result["explanation"])])
        n = len(result["explanation"])
        lines += ["", f"Explanation: {n} module{'s' if n > 1 else ''} account for "
                      f"{_share_text(share)} of the LUT4+FF change:"]
        lines += [f"  {t}" for t in result["explanation"]]
    if result["notes"]:
        lines += ["", "Notes:"] + [f"  {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"
