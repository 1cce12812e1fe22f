"""The SPRAM weight memory (pezo.hw.spram): its contract against a dictionary, the primitive's
model against yosys's simulation model, the instances an UltraPlus build gets, and its errors.
The engine built on it is held to the golden model in tests/test_engine.py."""

import re

from amaranth.hdl import Fragment, Instance
from amaranth.sim import Simulator
from amaranth_boards.ice40_hx8k_b_evn import ICE40HX8KBEVNPlatform
from amaranth_boards.icebreaker import ICEBreakerPlatform
import numpy as np
import pytest

from amaranth_boards.ulx3s import ULX3S_85F_Platform

from pezo.hw.spram import (READ_LATENCY, SPRAM_WORDS, BlockRamWeights, SpramModel, SpramWeights,
                           single_port_memory, spram_count)


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("cls", [SpramWeights, BlockRamWeights])
@pytest.mark.parametrize("row_bits,words", [(64, 256), (40, SPRAM_WORDS + 48)])
def test_reads_return_the_last_write_across_slices_and_banks(cls, row_bits, words):
    """Random reads, writes and idle cycles against a dictionary: a read's row is on rdata
    READ_LATENCY cycles after re and stays there (through writes and idle cycles) until the
    next read's row replaces it; a read asked for right after a write sees it. The second case
    has a partial slice and a second bank (rows beyond 16,384). The block-RAM version keeps
    the same contract."""
    rng = np.random.default_rng(3)
    dut = cls(row_bits, words)
    assert dut.latency == READ_LATENCY
    # addresses near both ends and near the bank boundary, so banks share low address bits
    pool = [0, 1, 2, words - 1, words - 2] + \
        ([SPRAM_WORDS - 1, SPRAM_WORDS, SPRAM_WORDS + 1, 1, SPRAM_WORDS + 2] if words > SPRAM_WORDS
         else [17, 100])
    ref = {}
    checked = 0

    async def bench(ctx):
        nonlocal checked
        due, shown = {}, None       # cycle -> the row a read returns then; the row on rdata
        for cycle in range(700):
            kind = rng.choice(["read", "write", "idle"], p=[0.45, 0.35, 0.2])
            addr = int(rng.choice(pool))
            value = int(rng.integers(0, 1 << 62)) & ((1 << row_bits) - 1)
            ctx.set(dut.re, kind == "read")
            ctx.set(dut.we, kind == "write")
            ctx.set(dut.addr, addr)
            ctx.set(dut.wdata, value)
            if kind == "write":
                ref[addr] = value
            elif kind == "read":
                due[cycle + READ_LATENCY] = ref.get(addr, 0)
            await ctx.tick()
            shown = due.pop(cycle + 1, shown)
            if shown is not None:
                assert ctx.get(dut.rdata) == shown, (cycle, kind, addr)
                checked += 1
    _run(dut, bench)
    assert checked > 600


def test_model_follows_the_primitive():
    """SpramModel against SB_SPRAM256KA as yosys's cells_sim.v defines it, line by line:
    DATAOUT <= mem[ADDRESS] on a read (CHIPSELECT, not WREN); nibble writes under MASKWREN;
    after a write DATAOUT is undefined (the model: the written data inverted); without
    CHIPSELECT nothing changes."""
    rng = np.random.default_rng(5)
    dut = SpramModel()
    mem = {}

    async def bench(ctx):
        out = 0
        for _ in range(500):
            cs, wren = int(rng.random() < 0.85), int(rng.random() < 0.4)
            addr = int(rng.choice([0, 1, 5, 16383, 8000]))
            din, mask = int(rng.integers(0, 1 << 16)), int(rng.integers(0, 16))
            for sig, v in ((dut.cs, cs), (dut.wren, wren), (dut.addr, addr),
                           (dut.data_in, din), (dut.mask_wren, mask)):
                ctx.set(sig, v)
            await ctx.tick()
            if cs and not wren:
                out = mem.get(addr, 0)
            elif cs and wren:
                old = mem.get(addr, 0)
                nib = sum(0xF << (4 * i) for i in range(4) if mask >> i & 1)
                mem[addr] = (old & ~nib) | (din & nib)
                out = ~din & 0xFFFF
            assert ctx.get(dut.data_out) == out
    _run(dut, bench)


def _instances(frag):
    out = []
    for sub, _name, _loc in frag.subfragments:
        if isinstance(sub, Instance):
            out.append(sub.type)
        else:
            out += _instances(sub)
    return out


def test_ultraplus_gets_the_primitives():
    dut = SpramWeights(64, SPRAM_WORDS)
    frag = Fragment.get(dut, ICEBreakerPlatform())
    assert _instances(frag) == ["SB_SPRAM256KA"] * 4 == ["SB_SPRAM256KA"] * dut.sprams
    # without a platform: the model, no primitive
    assert _instances(Fragment.get(SpramWeights(64, 64), None)) == []


def test_single_port_memory_is_spram_on_an_ultraplus_and_in_simulation_else_block_ram():
    for platform in (ICEBreakerPlatform(), None):       # None: simulation, the SPRAM model
        mem = single_port_memory(16, 64, platform)
        assert type(mem) is SpramWeights
        Fragment.get(mem, platform)
    ecp5 = single_port_memory(16, 3 * SPRAM_WORDS, ULX3S_85F_Platform())
    assert type(ecp5) is BlockRamWeights and (ecp5.row_bits, ecp5.words) == (16, 3 * SPRAM_WORDS)
    assert _instances(Fragment.get(ecp5, ULX3S_85F_Platform())) == []  # a Memory, no primitive


def test_spram_count():
    assert spram_count(64, 16384) == 4
    assert spram_count(16, 65536) == 4
    assert spram_count(17, 16385) == 4
    assert spram_count(64, 16385) == 8


@pytest.mark.parametrize("args,msg", [
    ((0, 16), "Row width must be an integer in 1..1024, not 0"),
    ((16, 0), "Row count must be an integer in 1..65536, not 0"),
    ((16, 1 << 17), "Row count must be an integer in 1..65536, not 131072"),
    ((True, 16), "Row width must be an integer in 1..1024, not True"),
])
@pytest.mark.parametrize("cls", [SpramWeights, BlockRamWeights])
def test_parameter_errors(cls, args, msg):
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        cls(*args)


def test_platform_errors():
    with pytest.raises(ValueError, match=r"^weights='spram' needs an iCE40 UltraPlus "
                                         r"\(SB_SPRAM256KA\); the platform ICE40HX8KBEVNPlatform"):
        Fragment.get(SpramWeights(64, 64), ICE40HX8KBEVNPlatform())
    with pytest.raises(ValueError, match=r"^A weight memory of 16385 rows x 64 bits needs 8 "
                                         r"SB_SPRAM256KA; the UltraPlus has 4"):
        Fragment.get(SpramWeights(64, SPRAM_WORDS + 1), ICEBreakerPlatform())
