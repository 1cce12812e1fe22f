"""The layering rule of the package (docs/reference.md, "Layout"), pinned by an AST walk over every module,
function-local imports included: foundation -> golden models -> hardware -> boards / host /
co-simulation -> flows -> CLI. A module imports only from its own layer or the layers below, and
the import graph has no cycles."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"pezo": "pezo", "pezo.power": "pezo/power", "pezo.report": "pezo/report", "pezo.hw": "hw",
            "pezo.sim": "sim", "pezo.sim.cosim": "sim/cosim", "pezo.host": "host",
            "pezo.boards": "boards"}

#: Layer of every module; the rule docs/reference.md#layout states.
FOUNDATION = {"pezo", "pezo.config", "pezo.fixed", "pezo.toolchain", "pezo.argtypes", "pezo.tables",
              "pezo.cluster",
              "pezo.sim.gf2", "pezo.sim.lfsr", "pezo.sim.seeding"}
CLI = {"pezo.cli", "pezo.__main__"}
LAYERS = ("foundation", "golden models", "hardware", "boards/host/co-simulation", "flows", "CLI")


def layer(module):
    if module in FOUNDATION:
        return 0
    if module.startswith("pezo.sim.cosim"):
        return 3            # co-simulation (sim/cosim/): above the hardware it simulates
    if module in CLI:
        return 5
    for prefix, n in (("pezo.sim.", 1), ("pezo.hw.", 2), ("pezo.boards.", 3), ("pezo.host.", 3)):
        if module.startswith(prefix) or module == prefix[:-1]:
            return n
    return 4            # pezo.<flow>: designs, synth, power, report, paper, quality...


def modules():
    out = {}
    for pkg, folder in PACKAGES.items():
        for f in sorted((ROOT / folder).glob("*.py")):
            out[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return out


def imports(mods):
    """{module: {(imported module, line)}} over every import statement, local ones included."""
    graph = {}
    for name, path in mods.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pezo"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    edges.add((sub if sub in mods else node.module, node.lineno))
            elif isinstance(node, ast.Import):
                edges |= {(a.name, node.lineno) for a in node.names if a.name.startswith("pezo")}
        # a package's own __init__ is not a dependency of its modules
        graph[name] = {(t, ln) for t, ln in edges if t in mods and t != name
                       and not (t in PACKAGES and name.startswith(t + "."))}
    return graph


def violations(mods):
    return [f"{m} ({LAYERS[layer(m)]}) imports {t} ({LAYERS[layer(t)]}) at line {ln}"
            for m, edges in imports(mods).items() for t, ln in sorted(edges)
            if layer(t) > layer(m)]


def cycles(mods):
    graph = {m: {t for t, _ in edges} for m, edges in imports(mods).items()}
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer_and_imports_point_down():
    mods = modules()
    assert len(mods) > 40 and {"pezo.cli", "pezo.hw.engine", "pezo.sim.engine",
                               "pezo.sim.cosim.harness"} <= set(mods)
    wrong = violations(mods)
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    found = cycles(modules())
    assert not found, found


def test_the_checks_catch_a_violation(tmp_path):
    """The rule is enforced, not vacuous: an upward function-local import and a cycle (one side
    of it function-local) planted beside the real modules are reported."""
    fake = dict(modules())
    up = tmp_path / "up.py"
    up.write_text("def f():\n    from pezo.cli import main\n")
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from pezo.host import b\n")
    b.write_text("def g():\n    from pezo.host import a\n")
    fake.update({"pezo.sim.up": up, "pezo.host.a": a, "pezo.host.b": b})
    assert violations(fake) == ["pezo.sim.up (golden models) imports pezo.cli (CLI) at line 2"]
    assert cycles(fake) == [["pezo.host.a", "pezo.host.b"]]
