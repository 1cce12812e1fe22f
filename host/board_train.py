"""On-chip training from the host's side: the training design on a board (or the Verilator-built
board) over its framed serial link. The host loads the data once, says TRAIN, watches, and reads
back the log, the evaluations and the weights; the chip runs every step by itself
(docs/on_device.md, "The training design").

>>> with SimBoard(TrainerConfig()) as board:
...     t = SerialTransport(cfg.engine(), board.port, train=True, closing=board)
...     run = BoardTrainer(cfg, t).train(chip_data(), OnChipConfig(steps=100))

:func:`compare_with_golden` holds a run to the integer golden model
(:func:`pezo.host.ontrain.train_on_chip_model`): every logged step's loss sums and coefficient,
the best step and its validation figures, the test figures and every final weight.
"""

from dataclasses import dataclass, field
import time
import zlib

import numpy as np

from pezo.boards.protocol import TrainOp, decode_tstatus, rows_words, train_rows, words_rows
from pezo.hw.ontrain import (LOG_STEPS, LOG_WORDS_PER_STEP, LoadKind, TrainErr, train_beats,
                             tstatus_beats)
from pezo.sim.engine import Op
from pezo.sim.ontrain import (OnChipConfig, OnChipData, TrainerConfig, data_image,
                              init_weights, train_registers)

__all__ = ["BoardTrainer", "BoardRun", "BoardTrainError", "data_tag", "compare_with_golden"]

#: LOAD frames carry this many beats (two 16-bit words each): 256 payload bytes.
LOAD_BEATS = 64
#: READ LOG frames ask for this many beats (two log words each): 64 steps.
LOG_BEATS = 256

_ERRORS = {
    TrainErr.NOT_LOADED: "TRAIN before LOAD: the board holds no committed data set",
    TrainErr.STEPS: "the step count or the evaluation interval is out of range",
    TrainErr.BATCH: "the batch is larger than the training split or the index buffer",
    TrainErr.SPLIT: "a split has no samples",
    TrainErr.ENGINE: "the engine rejected a command of the step controller",
    TrainErr.SHIFT: "the coefficient's shift (with the schedule's steps) is outside -11..63",
    TrainErr.FIELD: "a TRAIN field is beyond its width (lr_m, schedule, step_shift, mu, a "
                    "split's base or size)",
}


class BoardTrainError(RuntimeError):
    """The board refused a training command, or a run went wrong."""


def data_tag(data: OnChipData) -> int:
    """24-bit fingerprint of the data image and table (what LOAD's COMMIT stores): the low 24
    bits of CRC-32 over the image words, the table and the shape."""
    image, _ = data_image(data)
    blob = (np.asarray(image, dtype="<u2").tobytes()
            + np.asarray(data.table, dtype="<i2").tobytes()
            + bytes([data.n_features & 0xFF, data.feature_bits, data.n_classes]))
    return zlib.crc32(blob) & 0xFFFFFF


@dataclass
class BoardRun:
    """What a run on the board produced (the fields of :class:`~pezo.sim.ontrain.OnChipResult`
    the chip reports)."""

    config: dict
    steps_run: int = 0
    sum_plus: np.ndarray | None = None      # per logged step (the ring keeps the last 2,048)
    sum_minus: np.ndarray | None = None
    coef: np.ndarray | None = None
    log_first: int = 0                      # the first step the log holds
    best_step: int = 0
    best_loss_sum: int = 0
    best_correct: int = 0
    test_loss_sum: int = 0
    test_correct: int = 0
    test_acc: float = float("nan")
    weights: np.ndarray | None = None
    stats: dict = field(default_factory=dict)
    cycles: int = 0                         # the run's clock cycles, counted by the chip
    train_seconds: float = 0.0
    load_seconds: float = 0.0
    loaded: bool = False

    @property
    def log_complete(self) -> bool:
        return self.log_first == 0 and self.sum_plus is not None \
            and len(self.sum_plus) == self.steps_run


class BoardTrainer:
    """The training commands over a :class:`~pezo.host.serial_link.SerialTransport` built with
    ``train=True`` for the design's engine (``cfg.engine()``).

    Parameters
    ----------
    cfg : TrainerConfig
        The bitstream's training design.
    transport : SerialTransport
    progress : callable or None
        Called with a line of text now and then during LOAD and TRAIN.
    """

    def __init__(self, cfg, transport, progress=None):
        if not isinstance(cfg, TrainerConfig):
            raise TypeError(f"Configuration must be a TrainerConfig, not {cfg!r}")
        if not getattr(transport, "train", False):
            raise ValueError("The transport must be built with train=True (the training "
                             "design's LOAD and TRAIN frames carry payloads)")
        if transport.cfg != cfg.engine():
            raise ValueError(f"The transport's engine ({transport.cfg.name()}) is not the "
                             f"training design's ({cfg.engine().name()})")
        self.cfg, self.t = cfg, transport
        self.progress = progress or (lambda msg: None)

    def _cmd(self, op, arg=0, wdata=None, rcount=0):
        out = self.t.command(op, arg, wdata, rcount)
        return out, self.t.status()

    def status(self) -> dict:
        """TSTATUS, decoded (:func:`pezo.hw.ontrain.tstatus_layout`)."""
        rows, st = self._cmd(TrainOp.TSTATUS, tstatus_beats() << 32, rcount=tstatus_beats())
        if rows is None:
            raise BoardTrainError(f"TSTATUS was refused (status {st}): is this the training "
                                  f"design {self.cfg.name()}?")
        return decode_tstatus(rows)

    def load(self, data: OnChipData, force=False) -> bool:
        """LOAD ``data`` unless the board already holds it (its tag matches); returns whether it
        was sent. The data SPRAM has no bitstream initialisation: after a power-up the first
        run loads."""
        self.cfg.fits(data)
        tag = data_tag(data)
        st = self.status()
        if st["running"]:
            raise BoardTrainError("The board is training: STOP it (or wait) before a LOAD")
        if st["loaded"] and st["data_tag"] == tag and not force:
            self.progress(f"data already on the board (tag {tag:06x}), not loaded again")
            return False
        image, _ = data_image(data)
        self.progress(f"LOAD: {len(image):,} data words and {data.table.size:,} table entries "
                      f"(the board has no data with tag {tag:06x})")
        t0 = time.perf_counter()
        self._load_kind(LoadKind.INVALIDATE, 0, None)
        for kind, words in ((LoadKind.DATA, image), (LoadKind.TABLE, data.table.reshape(-1))):
            rows = words_rows(np.asarray(words, dtype=np.int64) & 0xFFFF)
            for k in range(0, len(rows), LOAD_BEATS):
                self._load_kind(kind, 2 * k, rows[k:k + LOAD_BEATS])
        self._load_kind(LoadKind.COMMIT, tag, None)
        self.progress(f"LOAD done in {time.perf_counter() - t0:.1f} s")
        return True

    def _load_kind(self, kind, start, rows):
        count = 0 if rows is None else len(rows)
        _, st = self._cmd(TrainOp.LOAD, start | (int(kind) << 24) | (count << 32), rows)
        if st["error"]:
            raise BoardTrainError(f"LOAD (kind {int(kind)}, word {start}, {count} beats) was "
                                  f"refused: error code {st['error_code']}")

    def start(self, data: OnChipData, config: OnChipConfig, theta0=None):
        """WRITE the initial weights and send TRAIN; returns the registers sent."""
        regs = train_registers(data, config)
        cfg = config.resolved()
        self.cfg.fits(data, cfg.batch)
        ecfg = self.cfg.engine()
        if theta0 is None:
            theta0 = init_weights(cfg.model, data.n_features, data.n_classes, cfg.hidden,
                                  cfg.seed, ecfg.w_frac)
        w = np.zeros(ecfg.depth, dtype=np.int64)
        w[:len(theta0)] = theta0
        _, st = self._cmd(Op.WRITE, ecfg.words << 32, w.reshape(ecfg.words, ecfg.lanes))
        if st["error"]:
            raise BoardTrainError(f"WRITE of the initial weights was refused: {st}")
        fields = regs.fields()
        self.send_train(fields)
        return regs

    def send_train(self, fields: dict):
        """The TRAIN frame with these register fields; raises BoardTrainError, naming the
        board's reason, when the board refuses it."""
        _, st = self._cmd(TrainOp.TRAIN, train_beats() << 32, train_rows(fields))
        if st["error"]:
            ts = self.status()
            why = _ERRORS.get(ts["error"], "the board is training" if ts["running"]
                              else f"error code {st['error_code']}")
            raise BoardTrainError(f"TRAIN was refused: {why}")

    def stop(self):
        """STOP: the run ends after its current step (then evaluates, restores, tests)."""
        self._cmd(TrainOp.STOP)

    def read_log(self, first, count):
        """(sum_plus, sum_minus, coef) of steps first .. first + count - 1 (the log's ring must
        still hold them)."""
        words = []
        step = first
        while step < first + count:
            slot = step % LOG_STEPS
            n = min(first + count - step, LOG_STEPS - slot,
                    LOG_BEATS * 2 // LOG_WORDS_PER_STEP)
            beats = n * LOG_WORDS_PER_STEP // 2
            rows, st = self._cmd(TrainOp.READ_LOG, (slot * LOG_WORDS_PER_STEP) | (beats << 32),
                                 rcount=beats)
            if rows is None:
                raise BoardTrainError(f"READ LOG of steps {step}..{step + n - 1} was refused: "
                                      f"{st}")
            words.append(rows_words(rows))
            step += n
        w = np.concatenate(words).reshape(count, LOG_WORDS_PER_STEP) if words else \
            np.zeros((0, LOG_WORDS_PER_STEP), dtype=np.int64)
        sp = w[:, 0] | (w[:, 1] << 16)
        sm = w[:, 2] | (w[:, 3] << 16)
        c = np.where(w[:, 4] >= 1 << 15, w[:, 4] - (1 << 16), w[:, 4])
        return sp, sm, c

    def weights(self, n=None) -> np.ndarray:
        ecfg = self.cfg.engine()
        rows = self.t.command(Op.READ, ecfg.words << 32, None, ecfg.words)
        w = np.asarray(rows, dtype=np.int64).reshape(-1)
        return w[:n] if n else w

    def train(self, data: OnChipData, config: OnChipConfig = OnChipConfig(), theta0=None,
              load=True, poll=0.5, stop_after=None) -> BoardRun:
        """A whole run: LOAD if needed, TRAIN, drain the log while it runs, read the results.
        ``stop_after``: send STOP once the board reports this many steps (a test of STOP)."""
        cfg = config.resolved()
        run = BoardRun(config=cfg.to_dict())
        t0 = time.perf_counter()
        if load:
            run.loaded = self.load(data)
        run.load_seconds = time.perf_counter() - t0
        self.start(data, config, theta0)
        t1 = time.perf_counter()
        parts, drained, first = [], 0, 0
        last_print = t1
        stopped = False
        while True:
            st = self.status()
            done = not st["running"]
            if stop_after is not None and not stopped and st["step"] >= stop_after:
                self.stop()
                stopped = True
            if st["step"] - drained > LOG_STEPS:          # the ring moved past unread steps
                drained = first = st["step"] - LOG_STEPS + LOG_STEPS // 8
                parts = []
            if st["step"] > drained:
                parts.append(self.read_log(drained, st["step"] - drained))
                drained = st["step"]
            now = time.perf_counter()
            if now - last_print > 2 or done:
                rate = st["step"] / max(1e-9, now - t1)
                last = (st["sum_plus"] + st["sum_minus"]) / (2 << cfg.batch.bit_length() - 1) \
                    / 4096
                self.progress(f"step {st['step']:,}/{cfg.steps:,}  {rate:,.0f} steps/s  "
                              f"batch loss {last:.3f} bits  best val "
                              f"{st['best_correct']}/{data.val.labels.size} at step "
                              f"{st['best_step']:,}")
                last_print = now
            if done:
                break
            time.sleep(poll)
        run.train_seconds = time.perf_counter() - t1
        if st["error"]:
            raise BoardTrainError(f"The run ended with an error: "
                                  f"{_ERRORS.get(st['error'], st['error'])}")
        run.steps_run = st["step"]
        if parts:
            run.sum_plus = np.concatenate([p[0] for p in parts])
            run.sum_minus = np.concatenate([p[1] for p in parts])
            run.coef = np.concatenate([p[2] for p in parts])
        run.log_first = first
        run.best_step, run.best_loss_sum = st["best_step"], st["best_loss"]
        run.best_correct = st["best_correct"]
        run.test_loss_sum, run.test_correct = st["test_loss"], st["test_correct"]
        run.test_acc = st["test_correct"] / len(data.test)
        run.stats = {k: st[k] for k in ("sat_passes", "clipped", "zero")}
        run.cycles = st["cycles"]
        run.weights = self.weights(self.cfg.n_params)
        return run


def compare_with_golden(run: BoardRun, golden) -> list:
    """The differences between a board run and the golden model's
    :class:`~pezo.sim.ontrain.OnChipResult` of the same configuration (an empty list: the two
    are bit-identical on everything the board reports)."""
    bad = []
    if run.steps_run != golden.steps_run:
        bad.append(f"steps run: board {run.steps_run}, golden {golden.steps_run}")
    if run.sum_plus is not None:
        a, b = run.log_first, run.log_first + len(run.sum_plus)
        for name, got, want in (("sum_plus", run.sum_plus, golden.sum_plus[a:b]),
                                ("sum_minus", run.sum_minus, golden.sum_minus[a:b]),
                                ("coef", run.coef, golden.coef[a:b])):
            diff = np.flatnonzero(np.asarray(got) != np.asarray(want))
            if len(diff):
                i = diff[0]
                bad.append(f"{name} of step {a + i}: board {got[i]}, golden {want[i]} "
                           f"({len(diff)} steps differ)")
    if run.best_step != golden.best_step:
        bad.append(f"best step: board {run.best_step}, golden {golden.best_step}")
    else:
        best = next(p for p in golden.curve if p["step"] == golden.best_step)
        if (run.best_loss_sum, run.best_correct) != (best["val_loss_sum"], best["val_correct"]):
            bad.append(f"best validation (loss sum, correct): board "
                       f"{(run.best_loss_sum, run.best_correct)}, golden "
                       f"{(best['val_loss_sum'], best['val_correct'])}")
    w = np.asarray(run.weights)[:len(golden.weights)]
    diff = np.flatnonzero(w != golden.weights)
    if len(diff):
        bad.append(f"weight {diff[0]}: board {w[diff[0]]}, golden {golden.weights[diff[0]]} "
                   f"({len(diff)} differ)")
    if abs(run.test_acc - golden.test_acc) > 0:
        bad.append(f"test accuracy: board {run.test_acc}, golden {golden.test_acc}")
    return bad
