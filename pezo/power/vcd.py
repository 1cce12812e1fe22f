"""Toggle counting from a VCD file (the power model's activity source, :mod:`pezo.power`)."""

from pathlib import Path
import re

import numpy as np

__all__ = ["parse_vcd_toggles"]


def parse_vcd_toggles(path, t_start=0, t_end=None, scope=("tb", "dut"), inner=()):
    """Per-signal bit toggles and time-high fraction between ``t_start`` and ``t_end``, for the
    variables declared directly in ``scope`` (a path of scope names; None: every scope).

    ``inner`` names variables also read from the scopes directly below ``scope`` (a cell
    instance's internal nets, e.g. ``cout_0`` of an ECP5 ``CCU2C``); they are returned as
    ``"<instance>.<name>"``.

    Returns ``{name: (toggles per bit as an int array, high time per bit as an int array)}`` for
    every variable of the VCD (names without the scope and without a leading backslash)."""
    ids, width = {}, {}
    inner = frozenset(inner)
    text = Path(path).read_text()
    head, _, body = text.partition("$enddefinitions")
    depth = 0
    scope_ok = [True]     # stack: is this scope the one whose variables count?
    names = []            # stack of scope names
    for mt in re.finditer(r"\$(scope|upscope|var)\b(.*?)\$end", head, flags=re.S):
        kind, rest = mt.group(1), mt.group(2).split()
        if kind == "scope":
            depth += 1
            names.append(rest[-1].lstrip("\\"))
            scope_ok.append(depth == len(scope) and rest[-1] == scope[depth - 1]
                            if scope else True)
            continue
        if kind == "upscope":
            depth -= 1
            scope_ok.pop()
            names.pop()
            continue
        if scope and inner and depth == len(scope) + 1 and scope_ok[-2]:
            name = rest[3].lstrip("\\")
            if name in inner:
                code = rest[2]
                ids.setdefault(code, []).append(f"{names[-1]}.{name}")
                width[code] = int(rest[1])
            continue
        if scope and not (depth == len(scope) and scope_ok[-1]):
            continue
        w, code, name = int(rest[1]), rest[2], rest[3].lstrip("\\")
        ids.setdefault(code, []).append(name)
        width[code] = w
    val = {c: 0 for c in ids}
    vec = [c for c in ids if width[c] != 1]
    tog = {c: np.zeros(width[c], dtype=np.int64) for c in vec}
    high = {c: np.zeros(width[c], dtype=np.int64) for c in vec}
    # 1-bit variables (nearly every net of a gate-level netlist) are counted in plain ints.
    tog1 = {c: 0 for c in ids if width[c] == 1}
    high1 = dict(tog1)
    last = {c: t_start for c in ids}
    t = 0
    inwin = t >= t_start
    bits_cache = {}

    def bits(v, w):
        key = (v, w)
        b = bits_cache.get(key)
        if b is None:
            b = np.array([(v >> i) & 1 for i in range(w)], dtype=np.int64)
            if len(bits_cache) < 100000:
                bits_cache[key] = b
        return b

    def change(code, new):
        # Called only for times up to t_end (the loop stops after it).
        old = val[code]
        if inwin:
            if code in tog1:
                if old:
                    high1[code] += t - last[code]
                if old != new:
                    tog1[code] += 1
            else:
                if old:
                    high[code] += bits(old, width[code]) * (t - last[code])
                if old != new:
                    tog[code] += bits(old ^ new, width[code])
            last[code] = t
        else:
            last[code] = t_start
        val[code] = new

    for line in body.splitlines():
        if not line:
            continue
        ch = line[0]
        if ch == "#":
            t = int(line[1:])
            if t_end is not None and t > t_end:
                break
            inwin = t >= t_start
        elif ch in "01xzXZ":
            code = line[1:].strip()
            if code in val:
                change(code, 1 if ch == "1" else 0)
        elif ch in "bB":
            v, code = line[1:].split()
            if code in val:
                change(code, int(v.replace("x", "0").replace("z", "0").replace("X", "0")
                                  .replace("Z", "0"), 2))
    t_final = t if t_end is None else t_end
    out = {}
    for code, names in ids.items():
        if code in tog1:
            if val[code]:
                high1[code] += max(0, t_final - last[code])
            pair = (np.array([tog1[code]], dtype=np.int64),
                    np.array([high1[code]], dtype=np.int64))
        else:
            if val[code]:
                high[code] += bits(val[code], width[code]) * max(0, t_final - last[code])
            pair = (tog[code], high[code])
        for n in names:
            out[n] = pair
    return out
