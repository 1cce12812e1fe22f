"""Run a cocotb testbench on generated Verilog through ``cocotb_tools.runner`` (tests, bench)."""

import json
from pathlib import Path
import re
import time

from amaranth.back import verilog

from pezo.toolchain import setup_environment

__all__ = ["run_cocotb", "passed_tests"]


def run_cocotb(sim, top, dut, name, test_module, params, root="build/cocotb"):
    """Generate ``dut``'s Verilog as module ``top``, build it for ``sim`` (``verilator`` or
    ``icarus``) in ``root/<name>``, run ``test_module`` with ``params`` in a JSON sidecar
    (``PEZO_COCOTB_PARAMS``). Returns (names of the passed test cases, seconds the test run
    took); a failed, errored or skipped test case raises AssertionError."""
    # lazy import: cocotb is heavy and needed only here
    from cocotb_tools.runner import get_runner
    setup_environment()
    build = Path(root).resolve() / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    build.mkdir(parents=True, exist_ok=True)
    src = build / f"{top}.v"
    src.write_text(verilog.convert(dut, name=top, strip_internal_attrs=True))
    pfile = build / "params.json"
    pfile.write_text(json.dumps(params))
    runner = get_runner(sim)
    runner.build(sources=[src], hdl_toplevel=top, build_dir=build, always=True,
                 timescale=("1ns", "1ps"),
                 build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style"] if sim == "verilator" else [])
    t0 = time.perf_counter()
    xml = runner.test(hdl_toplevel=top, test_module=test_module, build_dir=build,
                      test_dir=build, extra_env={"PEZO_COCOTB_PARAMS": str(pfile)})
    secs = time.perf_counter() - t0
    return passed_tests(Path(xml), f"cocotb {test_module} on {sim}"), secs


def passed_tests(results_xml, what="cocotb"):
    """The names of the test cases of a cocotb ``results.xml`` (JUnit), all passed; raises
    AssertionError naming the failed or errored ones (cocotb's own counts, from
    :func:`cocotb_tools.runner.get_results`, must agree), or when no test ran."""
    from xml.etree import ElementTree

    # lazy import: cocotb is heavy and needed only here
    from cocotb_tools.runner import get_results
    tests, failed = get_results(results_xml)
    cases = ElementTree.parse(results_xml).getroot().iter("testcase")
    bad, ok = [], []
    for case in cases:
        status = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        (bad if status else ok).append(f"{case.get('name')}" + (f" ({status[0]})" if status
                                                                  else ""))
    if bad or failed:
        raise AssertionError(f"{what}: {failed} of {tests} failed: {', '.join(bad)}\n"
                             f"{results_xml.read_text()[-2000:]}")
    if not ok:
        raise AssertionError(f"{what}: no test case ran ({results_xml})")
    return ok
