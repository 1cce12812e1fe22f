"""Two reports side by side, resource by resource and module by module (``pezo compare``)."""

from pezo.power import reduction_range
from pezo.report.load import (_AUTO_SUFFIX, _MODULE_SHOWN, _POWER, DASH, RESOURCES, _as_report,
                              _num, _power, _power_calibrated, first_clock, logic_cells)

__all__ = ["compare", "format_compare", "module_totals"]

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
    # (name, value) pairs of A and B: one row when both have one, a note when only one does
    for key, label, note, (xa, xb) in (
            ("logic_cells", "Logic cells ({})", "Logic cells", (logic_cells(a), logic_cells(b))),
            ("fmax_mhz", "fmax {} (MHz)", "fmax", (first_clock(a), first_clock(b)))):
        if xa and xb:
            name = xa[0] if xa[0] == xb[0] else f"{xa[0]} / {xb[0]}"
            res.append(_entry(key, label.format(name), xa[1], xb[1]))
        elif xa or xb:
            notes.append(f"{note} only in {'A' if xa else 'B'}.")
    pa, pb = _power(a), _power(b)
    for k, lbl in _POWER:
        if pa.get(k) is not None and pb.get(k) is not None:
            res.append(_entry(f"power_{k}", lbl, pa[k], pb[k]))
    if bool(pa) != bool(pb):
        notes.append(f"Power estimate only in {'A' if pa else 'B'}.")
    acta, actb = pa.get("activity_per_cycle"), pb.get("activity_per_cycle")
    fam = a.get("family")       # reports with simulated activity carry their family
    if (acta and actb and fam and fam == b.get("family") and pb.get("dynamic_mw")
            and pa.get("clock_mhz") and pa.get("clock_mhz") == pb.get("clock_mhz")):
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
