"""Amaranth-simulator helpers: drive a stream sink with random stalls and collect transfers."""

import os
import random

import numpy as np
from amaranth.sim import Simulator


def run(dut, testbench, vcd_name=None, clock=True):
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    if os.environ.get("PEZO_VCD") and vcd_name:
        with sim.write_vcd(f"{vcd_name}.vcd"):
            sim.run()
    else:
        sim.run()


def lanes_of(payload_value, lanes):
    """A simulator ArrayLayout value -> list of ints."""
    return [int(payload_value[j]) for j in range(lanes)]


async def collect(ctx, stream, beats, lanes, rng=None, ready_prob=0.7, max_cycles=None):
    """Transfer ``beats`` beats from ``stream`` with ready asserted with ``ready_prob``; returns a
    (beats, lanes) int64 array."""
    rng = rng or random.Random(1)
    out = []
    cycles = 0
    while len(out) < beats:
        ready = rng.random() < ready_prob
        ctx.set(stream.ready, ready)
        if ready and ctx.get(stream.valid):
            out.append(lanes_of(ctx.get(stream.payload), lanes))
        await ctx.tick()
        cycles += 1
        if max_cycles and cycles > max_cycles:
            raise AssertionError(f"stream delivered {len(out)} of {beats} beats in {cycles} cycles")
    ctx.set(stream.ready, 0)
    return np.array(out, dtype=np.int64).reshape(-1, lanes)
