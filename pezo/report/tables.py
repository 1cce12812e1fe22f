"""Writing many reports out: CSV, a Markdown table and plots (``pezo report``)."""

import csv
from pathlib import Path

from pezo.report.load import COLUMNS, DASH, RESOURCES, _num, flatten, load_reports
from pezo.tables import markdown_table as md_table

__all__ = ["write_csv", "markdown_table", "plot", "aggregate"]

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
    table = []
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
        table.append(cells)
    lines = md_table(head, table, "lll" + "r" * (len(head) - 3))
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

