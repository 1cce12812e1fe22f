"""cocotb testbench of a Gaussian baseline's generated Verilog (:mod:`pezo.hw.gauss`): driver ->
DUT -> monitor -> scoreboard against the golden model (:class:`pezo.sim.gauss.GaussModel`).

Run by tests/test_gauss.py through ``cocotb_tools.runner``; parameters arrive as a JSON sidecar
named by ``PEZO_COCOTB_PARAMS``::

    {"config": {...GaussConfig fields...}, "seeds": [0x5EED, 987654321], "values": 100000,
     "ready_prob": 0.7, "rng_seed": 3, "reset_beats": 64}

After reset the first ``reset_beats`` beats are checked against seed 0 (reset acts as a load of
seed 0); then for every seed in turn the driver loads it and the monitor records
``values / len(seeds)`` values (rounded up to whole beats) with ``o.ready`` random every cycle;
the scoreboard compares them with a fresh golden model of that seed and names the first mismatch.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from pezo.sim.cosim.cocotb_tb import pulse
from pezo.sim.cosim.streams import StreamSink
from pezo.sim.gauss import GaussConfig, GaussModel


def split_words(words, cfg):
    """Payload integers (lane j in bits j*z_bits..) -> (beats, lanes) signed values."""
    zb, n = cfg.z_bits, cfg.lanes
    nbytes = (zb * n + 7) // 8
    buf = np.frombuffer(b"".join(int(w).to_bytes(nbytes, "little") for w in words),
                        dtype=np.uint8).reshape(len(words), nbytes)
    bits = np.unpackbits(buf, axis=1, bitorder="little")[:, :zb * n].reshape(len(words), n, zb)
    vals = (bits.astype(np.int64) << np.arange(zb, dtype=np.int64)).sum(axis=2)
    return vals - ((vals >> (zb - 1)) << zb)


def compare(hw, ref, label):
    bad = np.argwhere(hw != ref)
    if len(bad):
        b, j = bad[0]
        raise AssertionError(f"{label}: beat {b} lane {j}: DUT {hw[b, j]} != model {ref[b, j]} "
                             f"({len(bad)} mismatches)")


@cocotb.test()
async def gauss_matches_golden_model(dut):
    with open(os.environ["PEZO_COCOTB_PARAMS"]) as f:
        p = json.load(f)
    cfg = GaussConfig.from_dict(p["config"])
    rng = random.Random(p.get("rng_seed", 1))
    sink = StreamSink(dut, "o", rng, p.get("ready_prob", 0.7))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.seed_load.value = 0
    sink.idle()
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    checked = 0
    reset_beats = p.get("reset_beats", 0)
    if reset_beats:
        hw = split_words(await sink.recv(reset_beats), cfg)
        compare(hw, GaussModel(cfg, 0).next(reset_beats), "after reset (seed 0)")
        checked += hw.size
    seeds = p["seeds"]
    beats = -(-p["values"] // (cfg.lanes * len(seeds)))
    for seed in seeds:
        await pulse(dut, "seed_load", "seed", seed)
        hw = split_words(await sink.recv(beats), cfg)
        compare(hw, GaussModel(cfg, seed).next(beats), f"seed {seed}")
        checked += hw.size
    assert checked >= p["values"], checked
    dut._log.info(f"{cfg.name()}: {checked} values bit-exact with the golden model")
