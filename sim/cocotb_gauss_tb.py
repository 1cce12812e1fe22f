"""cocotb testbench: a Gaussian baseline (pezo.hw.gauss) against its golden model, with random
``o.ready`` stalls and a reseed half way. Parameters come from the JSON file named by
PEZO_COCOTB_PARAMS: config (GaussConfig fields), seeds, values, ready_prob, rng_seed."""

import json
import os
import random
from dataclasses import fields

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from pezo.sim.cocotb_tb import pulse, stream
from pezo.sim.gauss import GaussConfig, GaussModel


def _split(words, cfg):
    zb, m = cfg.z_bits, cfg.lanes
    out = np.empty((len(words), m), dtype=np.int64)
    mask, sign = (1 << zb) - 1, 1 << (zb - 1)
    for b, w in enumerate(words):
        for j in range(m):
            v = (w >> (j * zb)) & mask
            out[b, j] = v - (sign << 1) if v & sign else v
    return out


@cocotb.test()
async def gauss_matches_golden_model(dut):
    with open(os.environ["PEZO_COCOTB_PARAMS"]) as f:
        p = json.load(f)
    names = {f.name for f in fields(GaussConfig)}
    cfg = GaussConfig(**{k: v for k, v in p["config"].items() if k in names})
    rng = random.Random(p.get("rng_seed", 1))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.seed_load.value = 0
    dut.o__ready.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    checked = 0
    beats = -(-p["values"] // cfg.lanes // len(p["seeds"]))
    for seed in p["seeds"]:
        await pulse(dut, "seed_load", "seed", seed)
        words = await stream(dut, beats, rng, p["ready_prob"])
        hw = _split(words, cfg)
        ref = GaussModel(cfg, seed).next(beats)
        bad = np.argwhere(hw != ref)
        assert not len(bad), f"seed {seed}: beat {bad[0][0]} lane {bad[0][1]}: DUT " \
                             f"{hw[tuple(bad[0])]} != model {ref[tuple(bad[0])]}"
        checked += hw.size
    assert checked >= p["values"], checked
    dut._log.info(f"{checked} values equal to the golden model")
