"""cocotb testbench of the generated generator Verilog: driver -> DUT -> monitor -> scoreboard.

Run by tests/test_cocotb.py through ``cocotb_tools.runner``; the configuration arrives as a JSON
sidecar named by the ``PEZO_COCOTB_PARAMS`` environment variable::

    {"config": {...GeneratorConfig...}, "seed": 123, "values": 100000,
     "ready_prob": 0.7, "rng_seed": 1, "rewinds": 3}

The driver randomises ``o.ready`` every cycle (and, for ``pregen``, rewinds the pool offset a few
times); the monitor records every transfer; the scoreboard compares the transfers with the golden
model (:class:`pezo.sim.generator.GeneratorModel`) value by value and names the first mismatch.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from pezo.config import GeneratorConfig
from pezo.sim.cosim.streams import StreamSink
from pezo.sim.generator import GeneratorModel


def _params():
    with open(os.environ["PEZO_COCOTB_PARAMS"]) as f:
        p = json.load(f)
    return GeneratorConfig.from_dict(p["config"]), p


def _split(words, cfg):
    """Payload ints -> (beats, m) signed lane values."""
    zb, m = cfg.z_bits, cfg.out_lanes
    out = np.empty((len(words), m), dtype=np.int64)
    mask, sign = (1 << zb) - 1, 1 << (zb - 1)
    for b, w in enumerate(words):
        for j in range(m):
            v = (w >> (j * zb)) & mask
            out[b, j] = v - (sign << 1) if v & sign else v
    return out


class Scoreboard:
    def __init__(self, cfg, seed):
        self.model = GeneratorModel(cfg, seed)
        self.cfg = cfg
        self.checked = 0

    def check(self, words, label):
        hw = _split(words, self.cfg)
        ref = self.model.next(len(hw))
        bad = np.argwhere(hw != ref)
        if len(bad):
            b, j = bad[0]
            raise AssertionError(f"{label}: beat {b} lane {j}: DUT {hw[b, j]} != model {ref[b, j]}")
        self.checked += hw.size


async def pulse(dut, name, value_name=None, value=None):
    if value_name:
        getattr(dut, value_name).value = value
    getattr(dut, name).value = 1
    await RisingEdge(dut.clk)
    getattr(dut, name).value = 0


@cocotb.test()
async def generator_matches_golden_model(dut):
    cfg, p = _params()
    rng = random.Random(p.get("rng_seed", 1))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.seed_load.value = 0
    sink = StreamSink(dut, "o", rng, p.get("ready_prob", 0.7))
    sink.idle()
    dut.sat_clear.value = 0
    if cfg.scale == "runtime":
        dut.scale_load.value = 0
    if cfg.reuse == "pregen":
        dut.offset_set.value = 0
        dut.offset_key.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await pulse(dut, "seed_load", "seed", p["seed"])

    board = Scoreboard(cfg, p["seed"])
    beats_total = -(-p["values"] // cfg.out_lanes)
    rewinds = p.get("rewinds", 0) if cfg.reuse == "pregen" else 0
    chunk = -(-beats_total // (rewinds + 1))
    done = 0
    while done < beats_total:
        n = min(chunk, beats_total - done)
        if rewinds and done:
            # Rewind to a random earlier offset, as pass 2-4 of a ZO step do.
            # with a random query key for the sign stream.
            target, key = rng.randrange(cfg.pool_words), rng.randrange(1 << 32)
            dut.offset_key.value = key
            await pulse(dut, "offset_set", "offset_value", target)
            board.model.set_offset(target, key)
        words = await sink.recv(n)
        board.check(words, f"chunk at beat {done}")
        done += n
    if cfg.reuse == "pregen":
        await FallingEdge(dut.clk)
        assert int(dut.pool_sumsq.value) == board.model.pool_sumsq
    assert int(dut.saturated.value) == int(board.model.saturated)
    dut._log.info(f"{cfg.name()}: {board.checked} values bit-exact")
