"""cocotb testbench of the generated engine Verilog: MeZO step sequences vs the golden engine.

Parameters arrive as a JSON sidecar named by ``PEZO_COCOTB_PARAMS``::

    {"config": {...EngineConfig...}, "seed": 1, "steps": 10, "queries": 2,
     "stall": 0.3, "rng_seed": 1}

Every stream is stalled at random: command and write-data ``valid`` drop with probability
``stall``, read-data ``ready`` likewise. Each step runs, for each of q queries, passes +1, -2, +1
(replaying z by reseeding, or by rewinding the pool offset for pregen), then the update pass
(engines built with COORD / RANGE / MASK get those commands before each step, :func:`options`); after
every pass all weights are read back and compared with :class:`pezo.sim.engine.EngineModel`
executing the same commands (the scoreboard), along with the status outputs.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge

from pezo.config import EngineConfig
from pezo.hw.engine import command_bits, status_layout
from pezo.sim.cosim.streams import StreamSink, StreamSource, reset_dut
from pezo.sim.engine import STATUS, EngineModel, Op, encode_signed

def status_bits(dut, layout, name):
    """The bits of status field ``name`` (pezo.hw.engine.status_layout: the ``status`` port is
    the packed struct, LSB first) as a string, MSB first; may hold X before the first change."""
    f = layout[name]
    bits = str(dut.status.value)[::-1][f.offset:f.offset + f.width]
    return bits[::-1]


def busy(dut, layout):
    """``busy`` is 1, or not yet resolved: Icarus runs Amaranth's ``always @*`` blocks only when
    an input changes, so a status output can read X until the state first changes after reset."""
    return status_bits(dut, layout, "busy") != "0"


class Driver:
    def __init__(self, dut, cfg, rng, stall):
        self.dut, self.cfg, self.rng, self.stall = dut, cfg, rng, stall
        self.layout = status_layout(cfg)
        self.model = EngineModel(cfg)
        self.weight_ops = 0
        self.m = cfg.lanes
        self.wb = cfg.w_bits
        self.cmd = StreamSource(dut, "cmd", rng, stall)
        self.wdata = StreamSource(dut, "wdata", rng, stall)
        self.rdata = StreamSink(dut, "rdata", rng, 1 - stall)

    def _pack(self, row):
        v = 0
        for j, x in enumerate(row):
            v |= (int(x) & ((1 << self.wb) - 1)) << (j * self.wb)
        return v

    def _unpack(self, v):
        out = []
        for j in range(self.m):
            x = (v >> (j * self.wb)) & ((1 << self.wb) - 1)
            out.append(x - (1 << self.wb) if x >> (self.wb - 1) else x)
        return out

    async def command(self, op, arg=0, wdata=None):
        dut = self.dut
        await self.cmd.send(command_bits(op, arg))
        rows = []
        if op == Op.WRITE and wdata is not None:
            for row in wdata:
                await self.wdata.send(self._pack(row))
        if op == Op.READ:
            rows = [self._unpack(v) for v in await self.rdata.recv(int(arg) >> 32)]
        await FallingEdge(dut.clk)
        while busy(dut, self.layout):
            await FallingEdge(dut.clk)
        ref = self.model.execute(op, arg, wdata)
        if op in (Op.PERTURB, Op.UPDATE):
            self.weight_ops += self.cfg.depth
        status = {k: int(status_bits(dut, self.layout, k), 2) for k in STATUS}
        want = self.model.status()
        assert status == want, f"{Op(op).name}: status {status} != model {want}"
        if op == Op.READ:
            assert (np.array(rows) == ref).all(), f"READ after {Op(op).name}: weights differ"
        await RisingEdge(dut.clk)
        return ref

    async def check_weights(self, label):
        words = self.cfg.words
        await self.command(Op.READ, words << 32)


def coord_arg(word, lane, delta):
    return word | (lane << 24) | ((delta & 0xFFFFFFFF) << 32)


async def options(drv, cfg, rng):
    """The option commands before a step (engines built with them): a random word RANGE, random
    MASK words, COORD +delta/-delta pairs (DeepZero's perturb-and-restore) and a plain COORD
    update, and one bad argument of each (the status is compared after every command)."""
    W, m, b = cfg.words, cfg.lanes, cfg.w_bits
    if cfg.mask != "none":
        lo = rng.randrange(W)
        await drv.command(Op.RANGE, lo | (rng.randrange(lo + 1, W + 1) << 32))
        await drv.command(Op.RANGE, lo | (lo << 32))                  # bad: empty
        await drv.command(Op.CLEAR, 1)
    if cfg.mask == "bitmap":
        for _ in range(4):
            await drv.command(Op.MASK, rng.randrange(W) | (rng.randrange(1 << m) << 32))
        await drv.command(Op.MASK, W)                                   # bad: word
        await drv.command(Op.CLEAR, 1)
    if cfg.coord:
        for _ in range(3):
            word, lane = rng.randrange(W), rng.randrange(m)
            delta = rng.randrange(1, 1 << (b - 3))
            await drv.command(Op.COORD, coord_arg(word, lane, delta))
            await drv.check_weights("coord +")
            await drv.command(Op.COORD, coord_arg(word, lane, -delta))
        await drv.command(Op.COORD, coord_arg(rng.randrange(W), rng.randrange(m),
                                              rng.randrange(-(1 << (b - 1)), 1 << (b - 1))))
        await drv.command(Op.COORD, coord_arg(0, m, 1))                # bad: lane
        await drv.command(Op.CLEAR, 0)


@cocotb.test()
async def engine_matches_golden_model(dut):
    with open(os.environ["PEZO_COCOTB_PARAMS"]) as f:
        p = json.load(f)
    cfg = EngineConfig.from_dict(p["config"])
    g = cfg.generator
    rng = random.Random(p.get("rng_seed", 1))
    await reset_dut(dut)
    await FallingEdge(dut.clk)
    while busy(dut, status_layout(cfg)):    # the reset-time pool fill
        await FallingEdge(dut.clk)
    await RisingEdge(dut.clk)

    drv = Driver(dut, cfg, rng, p.get("stall", 0.3))
    nrng = np.random.default_rng(p.get("rng_seed", 1))
    lim = 1 << (cfg.w_bits - 2)
    w = nrng.integers(-lim, lim, (cfg.words, cfg.lanes))
    await drv.command(Op.WRITE, cfg.words << 32, w)
    await drv.command(Op.ROUNDING, int(cfg.stochastic and cfg.product_shift > 0))
    await drv.command(Op.MU, encode_signed(rng.randrange(1, 1 << (cfg.coef_bits - 2))))
    base_seed = p.get("seed", 1)
    if g.reuse == "pregen":
        await drv.command(Op.SEED, base_seed)
    for step in range(p.get("steps", 5)):
        await options(drv, cfg, rng)
        for query in range(p.get("queries", 1)):
            seed = (base_seed * 1000003 + step * 97 + query) & ((1 << g.seed_width) - 1)
            start = drv.model.status()["offset"]

            async def replay():
                if g.reuse == "pregen":
                    await drv.command(Op.OFFSET, start | (seed & 0xFFFFFFFF) << 32)  # key
                else:
                    await drv.command(Op.SEED, seed)

            for sign in (0, 1, 0):
                await replay()
                await drv.command(Op.PERTURB, sign)
                await drv.check_weights(f"step {step} query {query} pass {sign}")
            await replay()
            c = rng.randrange(-(1 << (cfg.coef_bits - 3)), 1 << (cfg.coef_bits - 3))
            await drv.command(Op.UPDATE, encode_signed(c))
            await drv.check_weights(f"step {step} query {query} update")
    dut._log.info(f"{cfg.name()}: {drv.weight_ops} weight updates bit-exact")
    assert drv.weight_ops >= p.get("min_weight_ops", 0)
