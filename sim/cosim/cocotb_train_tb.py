"""cocotb testbench of the generated training design's Verilog
(:class:`pezo.hw.ontrain.OnChipTrainer`): its commands, with random stalls on every stream,
against the integer golden model (:func:`pezo.sim.ontrain.train_on_chip`).

Parameters arrive as a JSON sidecar named by ``PEZO_COCOTB_PARAMS``::

    {"trainer": {...TrainerConfig...}, "data": {"X_train": [[...]], "y_train": [...], ...},
     "run": {...OnChipConfig keywords...}, "stall": 0.3, "rng_seed": 1}

The sequence, each reply's status checked:

1. TRAIN before any LOAD: refused (status ARG), TSTATUS names NOT_LOADED, no run starts;
2. the initial weights by an engine WRITE (passed through), then LOAD: INVALIDATE, the data
   and table blocks, COMMIT with the data's tag (TSTATUS shows it);
3. TRAIN; during the run an engine command is refused (UNSUPPORTED) and TSTATUS is read;
4. at the end: TSTATUS (done, steps, best step and its validation figures, test figures), READ
   LOG (every step's loss sums and coefficient) and the weights (engine READ), all equal to
   the golden model's.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge

from pezo.boards.protocol import decode_tstatus, rows_words, train_rows, words_rows
from pezo.hw.engine import command_bits, status_layout
from pezo.hw.ontrain import (LOG_WORDS_PER_STEP, LoadKind, TrainErr, TrainOp, train_beats,
                             tstatus_beats)
from pezo.sim.cosim.cocotb_engine_tb import busy, status_bits
from pezo.sim.cosim.streams import StreamSink, StreamSource, reset_dut
from pezo.sim.engine import Err, Op
from pezo.sim.ontrain import (CommandPort, ModelTransport, OnChipConfig, TrainerConfig,
                              data_image, evaluate, init_weights, onchip_data,
                              train_on_chip, train_registers)

TRAIN_BIT = 68          # trainer_command_layout(): op [0:4], arg [4:68], train [68]


class Host:
    """The bridge's side of the trainer's ports: commands with their payload and reply."""

    def __init__(self, dut, ecfg, rng, stall):
        self.dut, self.ecfg = dut, ecfg
        self.layout = status_layout(ecfg)
        self.cmd = StreamSource(dut, "cmd", rng, stall)
        self.wdata = StreamSource(dut, "wdata", rng, stall)
        self.rdata = StreamSink(dut, "rdata", rng, 1 - stall)
        self.wb = ecfg.w_bits

    def _pack(self, row):
        return sum((int(x) & ((1 << self.wb) - 1)) << (j * self.wb) for j, x in enumerate(row))

    def _unpack(self, v):
        out = []
        for j in range(self.ecfg.lanes):
            x = (v >> (j * self.wb)) & ((1 << self.wb) - 1)
            out.append(x - (1 << self.wb) if x >> (self.wb - 1) else x)
        return out

    async def command(self, op, arg=0, rows=None, rcount=0, train=False):
        """One command; returns (the reply's rows, {error, error_code})."""
        await self.cmd.send(command_bits(int(op), arg) | (int(train) << TRAIN_BIT))
        for row in (rows if rows is not None else []):
            await self.wdata.send(self._pack(row))
        got = [self._unpack(v) for v in await self.rdata.recv(rcount)] if rcount else []
        await FallingEdge(self.dut.clk)
        waited = 0
        while busy(self.dut, self.layout):
            await FallingEdge(self.dut.clk)
            waited += 1
            assert waited < 100_000, (f"command {int(op)} (train {train}): still busy after "
                                      f"{waited} cycles, status {self.dut.status.value}")
        st = {k: int(status_bits(self.dut, self.layout, k), 2) for k in ("error", "error_code")}
        await RisingEdge(self.dut.clk)
        return np.array(got, dtype=np.int64).reshape(-1, self.ecfg.lanes), st

    async def tstatus(self):
        rows, st = await self.command(TrainOp.TSTATUS, tstatus_beats() << 32,
                                      rcount=tstatus_beats(), train=True)
        assert st["error"] == 0, st
        return decode_tstatus(rows)


def running(dut):
    return str(dut.flags.value)[-1] == "1"          # flags_layout(): running is bit 0


@cocotb.test()
async def trainer_matches_golden_model(dut):
    with open(os.environ["PEZO_COCOTB_PARAMS"]) as f:
        p = json.load(f)
    tcfg = TrainerConfig.from_dict(p["trainer"])
    d = p["data"]
    data = onchip_data(*(np.array(d[k], dtype=np.int64) for k in (
        "X_train", "y_train", "X_val", "y_val", "X_test", "y_test")),
        feature_bits=tcfg.feature_bits)
    run = OnChipConfig(**p["run"])
    ecfg = tcfg.engine()
    gold = train_on_chip(data, run, port=CommandPort(ModelTransport(ecfg)))
    fields = train_registers(data, run).fields()
    rng = random.Random(p.get("rng_seed", 1))

    await reset_dut(dut)
    for _ in range(4):
        await RisingEdge(dut.clk)
    host = Host(dut, ecfg, rng, p.get("stall", 0.3))
    ARG = {"error": 1, "error_code": int(Err.ARG)}

    # 1. TRAIN before LOAD
    _, st = await host.command(TrainOp.TRAIN, train_beats() << 32, train_rows(fields),
                               train=True)
    assert st == ARG, f"TRAIN before LOAD: {st}"
    ts = await host.tstatus()
    assert ts["error"] == TrainErr.NOT_LOADED and not ts["running"] and not ts["loaded"], ts

    # 2. the initial weights, then LOAD
    theta0 = init_weights("logreg", tcfg.n_features, tcfg.n_classes)
    w0 = np.zeros(ecfg.depth, dtype=np.int64)
    w0[:len(theta0)] = theta0
    _, st = await host.command(Op.WRITE, ecfg.words << 32, w0.reshape(-1, ecfg.lanes))
    assert st["error"] == 0, f"WRITE: {st}"
    image, _ = data_image(data)
    _, st = await host.command(TrainOp.LOAD, LoadKind.INVALIDATE << 24, train=True)
    assert st["error"] == 0, st
    for kind, words in ((LoadKind.DATA, image),
                        (LoadKind.TABLE, data.table.reshape(-1) & 0xFFFF)):
        rows = words_rows(words)
        for k in range(0, len(rows), 32):
            part = rows[k:k + 32]
            _, st = await host.command(TrainOp.LOAD, (2 * k) | (kind << 24) | (len(part) << 32),
                                       part, train=True)
            assert st["error"] == 0, f"LOAD {kind} at {2 * k}: {st}"
    tag = rng.randrange(1 << 24)           # opaque to the design (the host's fingerprint)
    _, st = await host.command(TrainOp.LOAD, (LoadKind.COMMIT << 24) | tag, train=True)
    assert st["error"] == 0, st
    ts = await host.tstatus()
    assert ts["loaded"] and ts["data_tag"] == tag and not ts["running"], ts

    # 3. TRAIN; an engine command during the run is refused
    _, st = await host.command(TrainOp.TRAIN, train_beats() << 32, train_rows(fields),
                               train=True)
    assert st["error"] == 0, f"TRAIN: {st}"
    assert running(dut), "TRAIN accepted but no run started"
    _, st = await host.command(Op.PERTURB, 0)
    assert st == {"error": 1, "error_code": int(Err.UNSUPPORTED)}, f"PERTURB in a run: {st}"
    ts = await host.tstatus()
    assert ts["running"] and ts["error"] == 0, ts
    cycles = 0
    while running(dut):
        await RisingEdge(dut.clk)
        cycles += 1
        assert cycles < p.get("max_cycles", 2_000_000), "the run did not finish"

    # 4. the results
    ts = await host.tstatus()
    assert ts["done"] and ts["error"] == 0 and ts["step"] == run.steps, ts
    assert ts["best_step"] == gold.best_step, (ts["best_step"], gold.best_step)
    best = next(c for c in gold.curve if c["step"] == gold.best_step)
    assert (ts["best_loss"], ts["best_correct"]) == (best["val_loss_sum"], best["val_correct"])
    want_test = evaluate("logreg", gold.weights, data.test, tcfg.n_classes)
    assert (ts["test_loss"], ts["test_correct"]) == tuple(want_test), (ts, want_test)
    n = run.steps * LOG_WORDS_PER_STEP // 2
    rows, st = await host.command(TrainOp.READ_LOG, n << 32, rcount=n, train=True)
    assert st["error"] == 0, st
    w = rows_words(rows).reshape(run.steps, LOG_WORDS_PER_STEP)
    c = np.where(w[:, 4] >= 1 << 15, w[:, 4] - (1 << 16), w[:, 4])
    assert ((w[:, 0] | (w[:, 1] << 16)) == gold.sum_plus).all(), "sum_plus differs"
    assert ((w[:, 2] | (w[:, 3] << 16)) == gold.sum_minus).all(), "sum_minus differs"
    assert (c == gold.coef).all(), (c, gold.coef)
    rows, st = await host.command(Op.READ, ecfg.words << 32, rcount=ecfg.words)
    assert st["error"] == 0, st
    assert (rows.reshape(-1)[:len(gold.weights)] == gold.weights).all(), "weights differ"
    dut._log.info(f"{tcfg.name()}: {run.steps} steps, {cycles} cycles, bit-exact")
