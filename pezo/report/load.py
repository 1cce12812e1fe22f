"""Reading synthesis reports (``report.json``) and turning one into a table row."""

import json
import math
from pathlib import Path
import re

__all__ = ["COLUMNS", "RESOURCES", "DASH", "load_report", "load_reports", "missing_fields",
           "flatten", "logic_cells", "first_clock"]

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
