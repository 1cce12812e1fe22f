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


async def pump(ctx, sink, source, payloads, lanes, rng, p_valid=0.7, p_ready=0.7,
               max_cycles=None):
    """Send ``payloads`` into a block's input stream ``sink`` (valid with probability
    ``p_valid`` while any are left) while taking its output stream ``source`` (ready with
    probability ``p_ready``) until as many outputs as inputs have left; returns them as lists of
    ``lanes`` ints. Both handshakes follow the stream rules: a beat moves when valid and ready
    are both high at a clock edge."""
    outs, k, cycles = [], 0, 0
    while len(outs) < len(payloads):
        send = k < len(payloads) and rng.random() < p_valid
        ctx.set(sink.valid, send)
        if k < len(payloads):
            ctx.set(sink.payload, payloads[k])
        ctx.set(source.ready, rng.random() < p_ready)
        took = send and ctx.get(sink.ready)
        if ctx.get(source.valid) and ctx.get(source.ready):
            outs.append(lanes_of(ctx.get(source.payload), lanes))
        await ctx.tick()
        k += bool(took)
        cycles += 1
        if max_cycles and cycles > max_cycles:
            raise AssertionError(f"{len(outs)} of {len(payloads)} outputs in {cycles} cycles")
    ctx.set(sink.valid, 0)
    return outs
