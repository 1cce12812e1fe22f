"""The training design's power workload (issue 25): the gate-level netlist of
:class:`pezo.hw.ontrain.OnChipTrainer` loads digits (as the host does: INVALIDATE, the data
image, the standardisation table, COMMIT) and trains; the measured window is the run's first
``steps`` MeZO step(s) (two forward passes of the batch, four engine passes, the coefficient,
the log), which is what a run is made of (its evaluations are forward passes too).
"""

from pathlib import Path

import numpy as np

from pezo.boards.protocol import train_rows, words_rows
from pezo.hw.engine import status_layout
from pezo.hw.ontrain import LOG_WORDS_PER_STEP, LoadKind, TrainOp, flags_layout, train_beats

__all__ = ["train_workload"]

#: TRAIN's run for the workload: digits, batch 64 (the measured runs' batch), the default lr/mu
RUN = dict(batch=64, seed=0)


def _hex(path, rows):
    """Payload beats (rows of two signed 16-bit lanes) as 32-bit hex lines, lane 0 low."""
    r = np.asarray(rows, dtype=np.int64) & 0xFFFF
    Path(path).write_text("".join(f"{int(a) | int(b) << 16:08x}\n" for a, b in r))
    return len(r)


def train_workload(tcfg, work, steps=1):
    """Write the data files into ``work`` and return (tb_for, description) for
    :func:`pezo.power.model.netlist_activity`."""
    # lazy imports: the data set and the golden model's registers are needed only here
    from pezo.host.ontrain import chip_data
    from pezo.sim.ontrain import OnChipConfig, data_image, train_registers
    data = chip_data("digits", tcfg.feature_bits)
    tcfg.fits(data, RUN["batch"])
    run = OnChipConfig(steps=max(steps, 2), eval_every=max(steps, 2), **RUN)
    fields = train_registers(data, run).fields()
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    image, _ = data_image(data)
    n_img = _hex(work / "image.hex", words_rows(image))
    n_tab = _hex(work / "table.hex", words_rows(data.table.reshape(-1) & 0xFFFF))
    n_trn = _hex(work / "train.hex", train_rows(fields))
    assert n_trn == train_beats() and n_img < 1 << 15 and n_tab < 1 << 15
    ecfg = tcfg.engine()
    sl, fl = status_layout(ecfg), flags_layout()
    busy, err = sl["busy"].offset, fl["error"]
    cap = 200_000 * steps                # cycles: a step is about 25,000
    wb = ecfg.lanes * ecfg.w_bits

    def tb_for(ports, extra):
        return f"""`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1, cmd__valid = 0, wdata__valid = 0, rdata__ready = 1;
  reg [68:0] cmd__payload = 0;
  reg [{wb - 1}:0] wdata__payload = 0;
  wire cmd__ready, wdata__ready, rdata__valid;
  wire [{wb - 1}:0] rdata__payload;
  wire [{sl.size - 1}:0] status;
  wire [{fl.size - 1}:0] flags;
  wire [13:0] log_words;
  wire busy = status[{busy}];
  reg [31:0] image [0:{n_img - 1}];
  reg [31:0] table_w [0:{n_tab - 1}];
  reg [31:0] train_w [0:{n_trn - 1}];
  integer i;
  always #5 clk = ~clk;
  core dut (.clk(clk), .rst(rst), .cmd__valid(cmd__valid), .cmd__payload(cmd__payload),
            .cmd__ready(cmd__ready), .wdata__valid(wdata__valid),
            .wdata__payload(wdata__payload), .wdata__ready(wdata__ready),
            .rdata__valid(rdata__valid), .rdata__payload(rdata__payload),
            .rdata__ready(rdata__ready), .status(status), .flags(flags),
            .log_words(log_words));
  task cmd(input [3:0] op, input [63:0] arg);
    begin
      @(negedge clk); cmd__valid = 1; cmd__payload = {{1'b1, arg, op}};
      while (!cmd__ready) @(negedge clk);
      @(negedge clk); cmd__valid = 0;
    end
  endtask
  task beat(input [31:0] v);
    begin
      wdata__valid = 1; wdata__payload = v;
      @(negedge clk);
      while (!wdata__ready) @(negedge clk);
      @(posedge clk); #1 wdata__valid = 0;
    end
  endtask
  task idle;
    begin
      @(negedge clk);
      while (busy) @(negedge clk);
    end
  endtask
  initial begin
    $readmemh("image.hex", image);
    $readmemh("table.hex", table_w);
    $readmemh("train.hex", train_w);
    repeat (4) @(negedge clk);
    rst = 0;
    repeat (4) @(negedge clk);
    cmd({int(TrainOp.LOAD)}, 64'd{LoadKind.INVALIDATE << 24}); idle;
    cmd({int(TrainOp.LOAD)}, {{32'd{n_img}, 32'd{LoadKind.DATA << 24}}});
    for (i = 0; i < {n_img}; i = i + 1) beat(image[i]);
    idle;
    cmd({int(TrainOp.LOAD)}, {{32'd{n_tab}, 32'd{LoadKind.TABLE << 24}}});
    for (i = 0; i < {n_tab}; i = i + 1) beat(table_w[i]);
    idle;
    cmd({int(TrainOp.LOAD)}, 64'd{LoadKind.COMMIT << 24}); idle;
    cmd({int(TrainOp.TRAIN)}, {{32'd{n_trn}, 32'd0}});
    for (i = 0; i < {n_trn}; i = i + 1) beat(train_w[i]);
    $dumpfile("power.vcd");
    $dumpvars(1, dut);{extra}
    $display("WINDOW_START %0t", $time);
    i = 0;
    while (log_words < {LOG_WORDS_PER_STEP * steps} && i < {cap}) begin
      @(negedge clk); i = i + 1;
    end
    if (i < {cap} && flags[{err.offset} +: {err.width}] == 0)
      $display("WINDOW_END %0t", $time);
    else
      $display("TRAIN_FAILED error %0d after %0d cycles", flags[{err.offset} +: {err.width}], i);
    $finish;
  end
endmodule
"""
    desc = (f"training design: LOAD of digits ({n_img:,} data beats, {n_tab} table beats), "
            f"TRAIN (batch {RUN['batch']}); window = the run's first {steps} MeZO step(s)")
    return tb_for, desc
