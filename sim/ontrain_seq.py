"""The step sequencer's instruction set: its encoding, an assembler and an instruction-level
model (docs/on_device.md, section 9, defines it; :class:`pezo.hw.ontrain_seq.Sequencer` is the
hardware). The model is written from that definition alone, so a test comparing the two checks
the hardware against the specification, not against itself.

The sequencer is a 32-bit accumulator machine: one register A, the flags Z (A is zero) and C
(the carry out of the last ADD, SUB or ADDI: for SUB and a negative ADDI, C = 1 exactly when
there was no borrow, i.e. A >= the operand, unsigned), 64 registers R[0..63] of 32 bits, a
program counter, and one return address. An instruction is 16 bits: ``op`` [15:12] and an
operand [11:0].
"""

from dataclasses import dataclass, field

__all__ = ["Op", "Cond", "N_REGS", "Assembler", "SequencerModel", "decode", "MASK32"]

N_REGS = 64
MASK32 = (1 << 32) - 1
PC_BITS = 9


class Op:
    LD = 0      # A = R[r]                         Z
    ST = 1      # R[r] = A
    ADD = 2     # A = A + R[r]                     Z C
    SUB = 3     # A = A - R[r]                     Z C (C: no borrow)
    AND = 4     # A = A & R[r]                     Z
    LDI = 5     # A = k (12 bits, zero-extended)   Z
    ADDI = 6    # A = A + sext(k)                  Z C
    SHR = 7     # A = A >> 1 (logical)             Z
    JMP = 8     # cond [11:9], target [8:0]
    IO = 9      # unit [11:8], sub [7:0]: the unit answers; A = its data if it returns one  (Z)


class Cond:
    ALWAYS, Z, NZ, C, NC, CALL, RET = range(7)


def decode(word):
    """(op, operand) of an instruction word."""
    return (word >> 12) & 0xF, word & 0xFFF


@dataclass
class Assembler:
    """Builds a program: one method per instruction, labels by name, registers by number.

    ``assemble()`` resolves the labels and returns the 16-bit words; an unknown label, a
    register outside 0..63, an immediate outside its field or a program longer than
    2^9 words raises ValueError naming it."""
    words: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    fixups: list = field(default_factory=list)

    def label(self, name):
        if name in self.labels:
            raise ValueError(f"Label {name!r} is defined twice")
        self.labels[name] = len(self.words)

    def _emit(self, op, operand):
        self.words.append((op << 12) | operand)

    def _reg(self, op, r):
        if not isinstance(r, int) or not 0 <= r < N_REGS:
            raise ValueError(f"Register {r!r} is outside 0..{N_REGS - 1}")
        self._emit(op, r)

    def ld(self, r): self._reg(Op.LD, r)
    def st(self, r): self._reg(Op.ST, r)
    def add(self, r): self._reg(Op.ADD, r)
    def sub(self, r): self._reg(Op.SUB, r)
    def and_(self, r): self._reg(Op.AND, r)
    def shr(self): self._emit(Op.SHR, 0)

    def ldi(self, k):
        if not 0 <= k < 1 << 12:
            raise ValueError(f"LDI immediate {k!r} is outside 0..4095")
        self._emit(Op.LDI, k)

    def addi(self, k):
        if not -(1 << 11) <= k < 1 << 11:
            raise ValueError(f"ADDI immediate {k!r} is outside -2048..2047")
        self._emit(Op.ADDI, k & 0xFFF)

    def _jump(self, cond, target):
        self.fixups.append((len(self.words), target))
        self._emit(Op.JMP, cond << 9)

    def jmp(self, t): self._jump(Cond.ALWAYS, t)
    def jz(self, t): self._jump(Cond.Z, t)
    def jnz(self, t): self._jump(Cond.NZ, t)
    def jc(self, t): self._jump(Cond.C, t)
    def jnc(self, t): self._jump(Cond.NC, t)
    def call(self, t): self._jump(Cond.CALL, t)
    def ret(self): self._emit(Op.JMP, Cond.RET << 9)

    def io(self, unit, sub=0):
        if not (0 <= unit < 16 and 0 <= sub < 256):
            raise ValueError(f"IO unit {unit!r} / sub {sub!r} outside 0..15 / 0..255")
        self._emit(Op.IO, (unit << 8) | sub)

    def assemble(self):
        words = list(self.words)
        for at, target in self.fixups:
            if target not in self.labels:
                raise ValueError(f"Jump to unknown label {target!r}")
            words[at] |= self.labels[target]
        if len(words) > 1 << PC_BITS:
            raise ValueError(f"The program has {len(words)} words; at most {1 << PC_BITS}")
        return words


class SequencerModel:
    """Runs a program instruction by instruction.

    ``io(unit, sub, a)`` answers an IO instruction: it returns None (A unchanged) or the 32-bit
    value A takes. ``halt_unit``: the IO unit that ends the program (A unchanged). ``run``
    stops there, or after ``limit`` instructions (then raises RuntimeError)."""

    def __init__(self, program, regs=None, io=None, halt_unit=15):
        self.rom = list(program)
        self.r = [0] * N_REGS if regs is None else [int(v) & MASK32 for v in regs]
        if len(self.r) != N_REGS:
            raise ValueError(f"regs must have {N_REGS} values")
        self.io = io or (lambda unit, sub, a: None)
        self.halt_unit = halt_unit
        self.a, self.z, self.c, self.pc, self.ret = 0, 0, 0, 0, 0
        self.executed = 0

    def _set(self, value):
        self.a = value & MASK32
        self.z = int(self.a == 0)

    def step(self):
        """Executes one instruction; returns False at the halt."""
        op, k = decode(self.rom[self.pc])
        r = k & (N_REGS - 1)
        nxt = (self.pc + 1) % (1 << PC_BITS)
        self.executed += 1
        if op == Op.LD:
            self._set(self.r[r])
        elif op == Op.ST:
            self.r[r] = self.a
        elif op in (Op.ADD, Op.SUB, Op.ADDI):
            b = self.r[r] if op != Op.ADDI else (k - (1 << 12) if k >> 11 else k) & MASK32
            if op == Op.SUB:
                total = self.a + (~b & MASK32) + 1
            else:
                total = self.a + b
            self.c = total >> 32
            self._set(total)
        elif op == Op.AND:
            self._set(self.a & self.r[r])
        elif op == Op.LDI:
            self._set(k)
        elif op == Op.SHR:
            self._set(self.a >> 1)
        elif op == Op.JMP:
            cond, target = k >> 9, k & ((1 << PC_BITS) - 1)
            if cond == Cond.RET:
                nxt = self.ret
            elif cond == Cond.CALL:
                self.ret, nxt = nxt, target
            elif (cond == Cond.ALWAYS or (cond == Cond.Z and self.z) or (cond == Cond.NZ and not self.z)
                  or (cond == Cond.C and self.c) or (cond == Cond.NC and not self.c)):
                nxt = target
        elif op == Op.IO:
            unit, sub = k >> 8, k & 0xFF
            if unit == self.halt_unit:
                return False
            v = self.io(unit, sub, self.a)
            if v is not None:
                self._set(v)
        else:
            raise ValueError(f"Opcode {op} at {self.pc} is not an instruction")
        self.pc = nxt
        return True

    def run(self, limit=1_000_000):
        for _ in range(limit):
            if not self.step():
                return self
        raise RuntimeError(f"The program did not halt within {limit} instructions")
