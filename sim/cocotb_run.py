"""Run a cocotb testbench on generated Verilog through ``cocotb_tools.runner`` (tests, bench)."""

import json
from pathlib import Path
import re
import time

from amaranth.back import verilog

from pezo.toolchain import setup_environment

__all__ = ["run_cocotb"]


def run_cocotb(sim, top, dut, name, test_module, params, root="build/cocotb"):
    """Generate ``dut``'s Verilog as module ``top``, build it for ``sim`` (``verilator`` or
    ``icarus``) in ``root/<name>``, run ``test_module`` with ``params`` in a JSON sidecar
    (``PEZO_COCOTB_PARAMS``). Returns (results.xml text, seconds the test run took)."""
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
    text = Path(xml).read_text()
    if "<failure" in text or "<error" in text:
        raise AssertionError(f"cocotb {test_module} failed on {sim}:\n{text[-2000:]}")
    return text, secs
