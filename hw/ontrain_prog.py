"""The on-chip trainer's step controller as a program for its sequencer
(:mod:`pezo.hw.ontrain_seq`), with the register map and the TRAIN / TSTATUS layouts it reads
and writes (docs/on_device.md, sections 7 and 9). What the program computes is
:func:`pezo.sim.ontrain.train_on_chip`'s run; the bit-exact tests of the trainer hold it there.

Registers (32-bit words of the sequencer's register file):

* 0..14: the TRAIN parameters, one per word, in :data:`TRAIN_FIELDS` order (the host's TRAIN
  beats are written there);
* 16..30: the TSTATUS words (:data:`TSTATUS_FIELDS`: word i at 16 + i; the flags word and the
  cycle counter are flip-flops, the others live here);
* 32..47: the program's temporaries; 48..63: constants (block-RAM initial values).
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from pezo.hw.ontrain_coef import SHIFT_MAX, SHIFT_MIN
from pezo.hw.ontrain_seq import HALT_UNIT
from pezo.sim.engine import Op as EngineOp
from pezo.sim.ontrain_seq import N_REGS, Assembler

__all__ = ["TrainErr", "TRAIN_FIELDS", "TSTATUS_FIELDS", "train_layout", "tstatus_layout",
           "train_beats", "tstatus_beats", "Unit", "InPort", "OutPort", "Mode", "P", "S",
           "CONSTANTS", "register_init", "step_program", "P_BASE", "S_BASE"]


class TrainErr:
    """Codes of the status flags' ``error`` (0: none). A TRAIN that fails its checks changes
    nothing; the checks run in this order."""
    NONE = 0
    NOT_LOADED = 1      # no committed LOAD since power-up
    STEPS = 2           # zero steps or 2^24 or more, or eval_every zero or above steps
    BATCH = 3           # batch_log2 above 10, or the batch larger than the training split or
                        # the index buffer
    SPLIT = 4           # a split of zero samples
    ENGINE = 5          # the engine rejected a command (a design fault, never expected)
    SHIFT = 6           # the coefficient's shift (with the schedule's steps) outside the
                        # coefficient unit's exact range, SHIFT_MIN..SHIFT_MAX
    FIELD = 7           # a field beyond its width (lr_m, schedule, step_shift, mu_reg, a
                        # split's base or size): only a hand-made frame can send one


#: TRAIN's fields, one 32-bit word each (the shapes are the values accepted).
TRAIN_FIELDS = {
    "steps": 24, "batch_log2": 4, "lr_m": 8, "shift": signed(8), "schedule": 1,
    "step_shift": 3, "eval_every": 24, "seed": 32, "mu_reg": 16,
    "train_base": 16, "train_n": 16, "val_base": 16, "val_n": 16, "test_base": 16,
    "test_n": 16}

#: TSTATUS's words: the flags word (running, done, loaded, error), then one field per word.
TSTATUS_FIELDS = {
    "flags": None, "step": 24, "data_tag": 24, "cycles": 32, "sum_plus": 32, "sum_minus": 32,
    "coef": signed(16), "best_step": 24, "best_loss": 32, "best_correct": 16,
    "test_loss": 32, "test_correct": 16, "sat_passes": 32, "clipped": 32, "zero": 32}

P_BASE, S_BASE, T_BASE, K_BASE = 0, 16, 32, 48
P = {n: P_BASE + i for i, n in enumerate(TRAIN_FIELDS)}
S = {n: S_BASE + i for i, n in enumerate(TSTATUS_FIELDS)}
_T = ["half", "three_q", "ev_left", "seed", "step_shift", "batch", "best_valid", "r_cur",
      "coef_word", "loss", "tmp"]
T = {n: T_BASE + i for i, n in enumerate(_T)}
CONSTANTS = {"two_24": 1 << 24, "two_16": 1 << 16}
K = {n: K_BASE + i for i, n in enumerate(CONSTANTS)}


def train_layout():
    return data.FlexibleLayout(32 * len(TRAIN_FIELDS), {
        n: data.Field(unsigned(s) if isinstance(s, int) else s, 32 * i)
        for i, (n, s) in enumerate(TRAIN_FIELDS.items())})


def tstatus_layout():
    fields = {"running": data.Field(unsigned(1), 0), "done": data.Field(unsigned(1), 1),
              "loaded": data.Field(unsigned(1), 2), "error": data.Field(unsigned(3), 3)}
    for i, (n, s) in enumerate(TSTATUS_FIELDS.items()):
        if s is not None:
            fields[n] = data.Field(unsigned(s) if isinstance(s, int) else s, 32 * i)
    return data.FlexibleLayout(32 * len(TSTATUS_FIELDS), fields)


def train_beats():
    return len(TRAIN_FIELDS)


def tstatus_beats():
    return len(TSTATUS_FIELDS)


def register_init():
    """The register file's initial values (the constants; everything else 0)."""
    regs = [0] * N_REGS
    for n, v in CONSTANTS.items():
        regs[K[n]] = v
    return regs


class Unit:
    """The trainer's IO units (the sequencer's IO instruction: unit, sub)."""
    IN = 0          # sub: InPort -> A
    OUT = 1         # sub: OutPort <- A
    ENG = 2         # sub: engine op [3:0], [4] = arg sext(A[:16]) (else A zero-extended);
                    # waits for the engine; A = its saturated flag; an engine error ends the
                    # run (error ENGINE)
    FWD = 3         # sub: Mode; a forward pass over the OUT PASS_BASE / PASS_N samples
    SMP = 4         # sub 0: load the sampler with seed A; sub 1: A = the next step seed
    COEF = 5        # A = diff -> A = coef[15:0] | clipped << 16 | (coef == 0) << 17
    LOGW = 6        # two log words: A[15:0], A[31:16]
    COPY = 7        # the weights -> the checkpoint
    WB = 8          # the checkpoint -> the weights
    FAIL = 9        # sub: a TrainErr; the flags show it and the sequencer stops
    HALT = HALT_UNIT


class InPort:
    LOSS, CORRECT, LOADED, STOP = range(4)
    POW2 = 4        # 1 << A[3:0]
    CLIPPED = 5     # the last coefficient saturated
    COEF = 6        # the last coefficient's 16 bits, zero-extended


class OutPort:
    FLAGS = 0       # A[0] running, A[1] done, A[5:3] error; running 0 -> 1 also clears the
                    # cycle counter, the log pointer and a STOP request
    PASS_BASE, PASS_N, SMP_N, LR_M, SHIFT = range(1, 6)


class Mode:
    PLUS, MINUS, EVAL = range(3)


def step_program(max_batch):
    """The step controller (docs/on_device.md, section 7), assembled."""
    a = Assembler()

    def out(port):
        a.io(Unit.OUT, port)

    def inp(port):
        a.io(Unit.IN, port)

    def eng(op, sext=False):
        a.io(Unit.ENG, op.value | (sext << 4))

    # TRAIN's checks, in TrainErr order (the start cleared done and error) ----------------------
    inp(InPort.LOADED)
    a.jz("e_not_loaded")
    a.ld(P["steps"]); a.jz("e_steps"); a.sub(K["two_24"]); a.jc("e_steps")
    a.ld(P["eval_every"]); a.jz("e_steps")
    a.ld(P["steps"]); a.sub(P["eval_every"]); a.jnc("e_steps")
    for n in ("train_n", "val_n", "test_n"):
        a.ld(P[n]); a.jz("e_split")
    a.ld(P["batch_log2"]); a.addi(-11); a.jc("e_batch")
    a.ld(P["batch_log2"]); inp(InPort.POW2); a.st(T["batch"])     # 1 << batch_log2
    a.ld(P["train_n"]); a.sub(T["batch"]); a.jnc("e_batch")
    a.ld(T["batch"]); a.addi(-(max_batch + 1)); a.jc("e_batch")
    for n, limit in (("lr_m", 256), ("schedule", 2), ("step_shift", 8)):
        a.ld(P[n]); a.addi(-limit); a.jc("e_field")
    for n in ("mu_reg", "train_base", "train_n", "val_base", "val_n", "test_base", "test_n"):
        a.ld(P[n]); a.sub(K["two_16"]); a.jc("e_field")
    a.ld(P["schedule"]); a.jz("no_schedule")    # the schedule's step: 0 without one
    a.ld(P["step_shift"])
    a.label("no_schedule")
    a.st(T["step_shift"])
    span = SHIFT_MAX - SHIFT_MIN + 1            # shift - SHIFT_MIN, unsigned, below span
    a.ld(P["shift"]); a.addi(-SHIFT_MIN); a.st(T["tmp"]); a.addi(-span); a.jc("e_shift")
    a.ld(T["tmp"]); a.add(T["step_shift"]); a.add(T["step_shift"]); a.addi(-span)
    a.jc("e_shift")

    # the run's start ------------------------------------------------------------------------------
    a.ld(P["train_n"]); out(OutPort.SMP_N)
    a.ld(P["lr_m"]); out(OutPort.LR_M)
    a.ld(P["shift"]); a.st(T["r_cur"]); out(OutPort.SHIFT)
    a.ld(P["seed"]); a.io(Unit.SMP, 0)
    a.ldi(0)
    for n in ("step", "sum_plus", "sum_minus", "coef", "best_step", "best_loss", "best_correct",
              "test_loss", "test_correct", "sat_passes", "clipped", "zero"):
        a.st(S[n])
    a.st(T["best_valid"])
    a.ld(P["steps"]); a.shr(); a.st(T["half"])
    a.ld(P["steps"]); a.add(P["steps"]); a.add(P["steps"]); a.shr(); a.shr(); a.st(T["three_q"])
    a.ld(P["eval_every"]); a.st(T["ev_left"])
    a.ldi(1); out(OutPort.FLAGS)                # running
    a.ldi(1); eng(EngineOp.ROUNDING)
    a.ldi(0); eng(EngineOp.CLEAR)
    a.ld(P["mu_reg"]); eng(EngineOp.MU)

    # a step ----------------------------------------------------------------------------------
    a.label("step")
    inp(InPort.STOP); a.jnz("finish")
    a.ld(S["step"]); a.sub(T["half"]); a.jnz("not_half"); a.call("schedule")
    a.label("not_half")
    a.ld(S["step"]); a.sub(T["three_q"]); a.jnz("not_3q"); a.call("schedule")
    a.label("not_3q")
    a.io(Unit.SMP, 1); a.st(T["seed"])
    a.ldi(0); a.call("perturb")                 # +mu z
    a.ld(P["train_base"]); out(OutPort.PASS_BASE); a.ld(T["batch"]); out(OutPort.PASS_N)
    a.io(Unit.FWD, Mode.PLUS); inp(InPort.LOSS); a.st(S["sum_plus"])
    a.ldi(1); a.call("perturb")                 # -2 mu z
    a.io(Unit.FWD, Mode.MINUS); inp(InPort.LOSS); a.st(S["sum_minus"])
    a.ldi(0); a.call("perturb")                 # +mu z: the weights restored
    a.ld(S["sum_minus"]); a.sub(S["sum_plus"]); a.io(Unit.COEF); a.st(T["coef_word"])
    inp(InPort.CLIPPED); a.jz("not_clipped")
    a.ld(S["clipped"]); a.addi(1); a.st(S["clipped"])
    a.label("not_clipped")
    inp(InPort.COEF); a.st(S["coef"]); a.jz("coef_zero")
    a.call("update"); a.jmp("log")
    a.label("coef_zero")
    a.ld(S["zero"]); a.addi(1); a.st(S["zero"])
    a.label("log")                              # sum_plus, sum_minus, c | flags << 16, 0
    for r in (S["sum_plus"], S["sum_minus"], T["coef_word"]):
        a.ld(r); a.io(Unit.LOGW)
    a.ldi(0); a.io(Unit.LOGW)
    a.ld(S["step"]); a.addi(1); a.st(S["step"])
    a.ld(T["ev_left"]); a.addi(-1); a.st(T["ev_left"]); a.jz("eval")
    a.ld(S["step"]); a.sub(P["steps"]); a.jz("eval")
    inp(InPort.STOP); a.jnz("eval")
    a.jmp("step")

    # an evaluation, the checkpoint ----------------------------------------------------------------
    a.label("eval")
    a.ld(P["eval_every"]); a.st(T["ev_left"])
    a.ld(P["val_base"]); out(OutPort.PASS_BASE); a.ld(P["val_n"]); out(OutPort.PASS_N)
    a.io(Unit.FWD, Mode.EVAL); inp(InPort.LOSS); a.st(T["loss"])
    a.ld(T["best_valid"]); a.jz("better")
    a.ld(T["loss"]); a.sub(S["best_loss"]); a.jc("after_eval")   # not strictly lower
    a.label("better")
    a.ldi(1); a.st(T["best_valid"])
    a.ld(T["loss"]); a.st(S["best_loss"])
    inp(InPort.CORRECT); a.st(S["best_correct"])
    a.ld(S["step"]); a.st(S["best_step"])
    a.io(Unit.COPY)
    a.label("after_eval")                       # (a STOP: the step's first check)
    a.ld(S["step"]); a.sub(P["steps"]); a.jnz("step")

    # the end: the checkpoint back (unless it is the last step's), the test ----------------------
    a.label("finish")
    a.ld(S["best_step"]); a.sub(S["step"]); a.jz("test")
    a.io(Unit.WB)
    a.label("test")
    a.ld(P["test_base"]); out(OutPort.PASS_BASE); a.ld(P["test_n"]); out(OutPort.PASS_N)
    a.io(Unit.FWD, Mode.EVAL); inp(InPort.LOSS); a.st(S["test_loss"])
    inp(InPort.CORRECT); a.st(S["test_correct"])
    a.ldi(2); out(OutPort.FLAGS)                # done
    a.io(Unit.HALT)

    # subroutines -------------------------------------------------------------------------------
    a.label("schedule")                         # R += the schedule's step
    a.ld(T["r_cur"]); a.add(T["step_shift"]); a.st(T["r_cur"]); out(OutPort.SHIFT); a.ret()
    a.label("perturb")                          # SEED s_t, PERTURB A
    a.st(T["tmp"]); a.ld(T["seed"]); eng(EngineOp.SEED); a.ld(T["tmp"]); eng(EngineOp.PERTURB)
    a.jmp("saturated")
    a.label("update")                           # SEED s_t, UPDATE c
    a.ld(T["seed"]); eng(EngineOp.SEED); a.ld(S["coef"]); eng(EngineOp.UPDATE, sext=True)
    a.label("saturated")                        # after a pass: count a saturation, clear it
    a.jz("saturated_ret")
    a.ld(S["sat_passes"]); a.addi(1); a.st(S["sat_passes"])
    a.ldi(0); eng(EngineOp.CLEAR)
    a.label("saturated_ret")
    a.ret()
    errors = (("e_not_loaded", TrainErr.NOT_LOADED), ("e_steps", TrainErr.STEPS),
              ("e_split", TrainErr.SPLIT), ("e_batch", TrainErr.BATCH),
              ("e_field", TrainErr.FIELD), ("e_shift", TrainErr.SHIFT))
    for name, code in errors:
        a.label(name)
        a.io(Unit.FAIL, code)
    return a.assemble()
