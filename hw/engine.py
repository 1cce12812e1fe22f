"""The perturbation engine: generator + MAC + weight memory + command FSM."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pezo.config import EngineConfig
from pezo.hw.common import NO_RW_CHECK, collision_read, one_hot_states
from pezo.hw.generator import PerturbationGenerator
from pezo.hw.lfsr import SeedMixer, UniformBank, bank_blocks, bank_latency
from pezo.hw.mac import MAC_LATENCY, MacOp, PerturbMAC, mac_input_layout
from pezo.hw.scaler import scale_register_bits
from pezo.hw.spram import READ_LATENCY as SPRAM_READ_LATENCY, SpramWeights
from pezo.hw.streamed import StreamMAC
from pezo.sim.engine import STATUS, Err, Op
from pezo.sim.mac import rounding_config
from pezo.sim.seeding import ROUNDS

__all__ = ["EngineOp", "PerturbEngine", "command_layout", "status_layout"]

ARG_BITS = 64


class EngineOp(enum.Enum, shape=4):
    """The command field's opcode: the members of :class:`pezo.sim.engine.Op` as a 4-bit
    hardware enum. The field is 4 bits wide, so the value 15 (no member) can still arrive
    on the port; the engine answers them with ``Err.OPCODE``. Drive such a value through
    ``payload.as_value()`` (``EngineOp`` constants exist only for the members)."""
    NOP = Op.NOP.value
    SEED = Op.SEED.value
    MU = Op.MU.value
    PERTURB = Op.PERTURB.value
    UPDATE = Op.UPDATE.value
    SCALE = Op.SCALE.value
    OFFSET = Op.OFFSET.value
    WRITE = Op.WRITE.value
    READ = Op.READ.value
    CLEAR = Op.CLEAR.value
    ROUNDING = Op.ROUNDING.value
    COORD = Op.COORD.value
    MASK = Op.MASK.value
    RANGE = Op.RANGE.value
    STREAM = Op.STREAM.value


def command_layout():
    return data.StructLayout({"op": EngineOp, "arg": ARG_BITS})


def command_bits(op, arg):
    """The command payload as one integer (``op`` in bits 0-3, ``arg`` two's complement in
    bits 4-67): any 4-bit opcode, member or not."""
    op = int(op)
    if not 0 <= op < 16:
        raise ValueError(f"opcode {op} does not fit the 4-bit op field (accepted: 0..15)")
    return op | ((int(arg) & ((1 << ARG_BITS) - 1)) << 4)


def status_layout(cfg):
    """The engine's status struct for configuration ``cfg``: the fields of
    :data:`pezo.sim.engine.STATUS`, in that order (``offset`` is a pool word for ``pregen``)."""
    g = cfg.generator
    layout = data.StructLayout({
        "busy": 1, "error": 1, "error_code": 2, "saturated": 1, "filling": 1, "last_pass": 2,
        "offset": range(g.pool_words) if g.reuse == "pregen" else 1})
    assert tuple(dict(layout.members)) == STATUS
    return layout


class _Port:
    """Address, enable and data signals of one access of a single-ported weight memory, named
    like an Amaranth memory port's so the engine drives either alike."""

    def __init__(self, row, words, name):
        self.addr = Signal(range(words), name=f"{name}_addr")
        self.en = Signal(name=f"{name}_en")
        self.data = Signal(row, name=f"{name}_data")


class PerturbEngine(wiring.Component):
    """ZO perturbation engine, bit-exact with :class:`pezo.sim.engine.EngineModel`.

    Commands (opcodes, arguments, errors) are those of :mod:`pezo.sim.engine`. A PERTURB or UPDATE
    pass streams all d weights through the MAC at m per cycle: memory read -> MAC (4 stages) ->
    write back; the z values come from the generator, so a pass stalls only while the generator
    has no beat (pool fill, 2-3 cycles after a SEED or OFFSET).

    Options: ``config.coord`` builds COORD (a read-modify-write of one weight: read, select
    the lane, add, saturate and write, 5 cycles after EXEC); ``config.mask`` builds RANGE (two
    word registers compared with the pass's word counter as z is issued) and, for ``"bitmap"``,
    MASK (a d-bit memory, one bit per weight, read beside the weights; a 0 zeroes that lane's z
    at the MAC input). Without them those commands are answered ``Err.UNSUPPORTED``.
    ``config.weights = "spram"`` keeps the weights in the iCE40 UltraPlus SPRAMs
    (:class:`pezo.hw.spram.SpramWeights`): one port, so a pass alternates a read cycle (issue)
    and a write cycle (the MAC's write-back, an odd number of cycles after its read) and takes
    two cycles per word; READ, WRITE and COORD never read and write in the same cycle anyway.
    The SPRAMs' inputs and output are registered (:data:`pezo.hw.spram.READ_LATENCY`, 3).
    ``config.weights = "stream"`` builds no weight memory and no PerturbMAC: STREAM feeds the
    host's words on ``wdata``, z of a second generator (the previous step's, for the deferred
    update, restarted by UPDATE from the last SEED's seed) and z of the first through
    :class:`pezo.hw.streamed.StreamMAC` and sends three rows per word (one in update-only mode)
    on ``rdata``, with backpressure on both streams.

    Parameters
    ----------
    config : EngineConfig
    held_arg : bool
        The command source holds ``cmd.payload.arg`` from the command's acceptance until
        ``busy`` falls (the training design's sources do: its sequencer's A, and the serial
        bridge's frame register), so the engine keeps no copy of it: 64 flip-flops fewer.
        Default False: the argument is registered on acceptance.
    lean : bool
        Build for area (the training design), with the same results: the weight memory's
        read-write collisions are undefined (:data:`pezo.hw.common.NO_RW_CHECK`; no read uses
        one); the MAC's products live in the SB_MAC16 output registers; block-RAM weights are
        read for the MAC's last stage instead of carried through it; without a mask, a word
        enters the MAC as it is issued and its rounding bits at the stage that uses them; the
        generator's scaler has no skid slots (input or output); the generator's bank and the
        rounding bank share one seed mixer (one after the other on SEED, :attr:`seed_cycles`).
        Default False keeps the registers the default engine's timing was closed with.

    Members
    -------
    cmd : In(stream.Signature(StructLayout({"op": EngineOp, "arg": 64})))
        Commands; ``cmd.ready`` is high only while the engine is idle; an accepted
        command is checked in the two cycles after it (CHECK, DECODE) and executed in the third
        (EXEC); ``busy`` is high from the cycle after acceptance until it is done.
    wdata : In(stream.Signature(ArrayLayout(signed(b), m)))
        Weight words for WRITE.
    rdata : Out(stream.Signature(ArrayLayout(signed(b), m)))
        Weight words answering READ.
    status : Out(:func:`status_layout`)
        The status fields (:data:`pezo.sim.engine.STATUS`, in that order: busy, error,
        error_code, saturated, filling, last_pass, offset), one struct read by the bridge, the
        host transports and the testbenches.
    """

    def __init__(self, config, held_arg=False, lean=False):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"Configuration must be an EngineConfig, not {config!r}")
        self._cfg = cfg = config
        self._held_arg = bool(held_arg)
        self._lean = bool(lean)
        self._has_r = "r" in dict(mac_input_layout(cfg).members)
        g = cfg.generator
        # lean: the generator's bank and the rounding bank share one seed mixer (they mix one
        # after the other on SEED) when they take the same number of blocks
        self._shared_mixer = (
            self._lean and self._has_r and cfg.weights != "stream" and g.reuse != "pregen"
            and bank_blocks(g) == bank_blocks(rounding_config(cfg)))
        row = data.ArrayLayout(signed(cfg.w_bits), cfg.lanes)
        super().__init__({
            "cmd": In(stream.Signature(command_layout())),
            "wdata": In(stream.Signature(row)),
            "rdata": Out(stream.Signature(row)),
            "status": Out(status_layout(cfg)),
        })

    config = property(lambda self: self._cfg)
    shares_seed_mixer = property(
        lambda self: self._shared_mixer,
        doc="``lean``: the generator's bank and the rounding bank share one seed mixer.")

    @property
    def pass_cycles(self):
        """Cycles from accepting PERTURB/UPDATE to accepting the next command, when the generator
        does not stall: two cycles to check and one to execute the registered command, one issue
        cycle per word (two with ``weights="spram"``: a read cycle and a write cycle), then 7
        (last read, 4 MAC stages, write, return to idle)."""
        if self._cfg.weights == "spram":     # and the SPRAM's longer read latency
            return 2 * self._cfg.words - 1 + SPRAM_READ_LATENCY - 1 + MAC_LATENCY + 6
        return self._cfg.words + MAC_LATENCY + 6

    @property
    def seed_cycles(self):
        """Cycles from accepting SEED to accepting the next command: check, execute and the
        registered load pulse (5), the banks' seed mixing (:attr:`pezo.hw.lfsr.UniformBank.latency`), and for pregen the pool
        fill (the rounding bank mixes in parallel; it is never slower than the generator's;
        ``lean``: after the generator's, with the same mixer)."""
        g = self._cfg.generator
        bank = bank_latency(g)
        if self._shared_mixer:          # the rounding bank's blocks follow the generator's
            bank += 1 + bank_blocks(g) * ROUNDS
        elif self._has_r:
            bank = max(bank, bank_latency(rounding_config(self._cfg)))
        fill = g.pool_size // g.lanes + 2 if g.reuse == "pregen" else 0
        return 5 + bank + fill

    @property
    def latency(self):
        """Cycles from a word's read to its write-back in a pass (memory read + MAC stages)."""
        return MAC_LATENCY + 1

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        g = cfg.generator
        words = cfg.words
        S = cfg.product_shift
        has_r = "r" in dict(mac_input_layout(cfg).members)

        # sumsq is not in the command map; the output skid keeps the pass's issue signal off the
        # generator's stage enables (timing).
        # (lean: no skid slots in the scaler: the training design, closed at 24 MHz)
        streamed = cfg.weights == "stream"
        r_cfg = rounding_config(cfg) if has_r else None
        shared = self._shared_mixer
        m.submodules.gen = gen = PerturbationGenerator(g, sumsq=False, out_skid=not self._lean,
                                                       in_skid=not self._lean,
                                                       bank_mixer=not shared)
        spram = cfg.weights == "spram"
        late_w = early = False
        if streamed:
            # STREAM: no weight memory; a second generator replays the previous step's z for
            # its deferred update (the rounding bank belongs to it).
            m.submodules.gen_u = gen_u = PerturbationGenerator(g, sumsq=False, out_skid=True)
            m.submodules.smac = smac = StreamMAC(cfg)
            mac = rd = wr = None
        else:
            # lean (block-RAM weights): the weight is read for the MAC's last stage, not carried
            late_w = self._lean and not spram
            early = late_w and cfg.mask == "none"       # see the pass pipeline below
            m.submodules.mac = mac = PerturbMAC(cfg, products_in_dsp=self._lean, late_w=late_w,
                                                late_r=early)
        if has_r:
            m.submodules.rbank = rbank = UniformBank(r_cfg, domain="rounding",
                                                     mixer=not shared)
        row = data.ArrayLayout(signed(cfg.w_bits), cfg.lanes)
        if streamed:
            pass
        elif spram:
            # One port: a cycle reads or writes. Passes alternate a read (issue) cycle and a
            # write cycle; a word's write-back lands SPRAM_READ_LATENCY + MAC_LATENCY cycles
            # after its read, an odd distance, so always in a write cycle.
            assert (SPRAM_READ_LATENCY + MAC_LATENCY) % 2 == 1
            m.submodules.weights = wmem = SpramWeights(cfg.lanes * cfg.w_bits, words)
            rd = _Port(row, words, "rd")
            wr = _Port(row, words, "wr")
            m.d.comb += [wmem.addr.eq(Mux(wr.en, wr.addr, rd.addr)), wmem.we.eq(wr.en),
                         wmem.re.eq(rd.en & ~wr.en), wmem.wdata.eq(wr.data),
                         rd.data.eq(wmem.rdata)]
        else:
            # A pass reads each word before its write-back and never again, COORD reads, then
            # writes: no read uses the data of a word written in the same cycle (NO_RW_CHECK)
            m.submodules.weights = wmem = memory.Memory(shape=row, depth=words, init=[],
                                                        attrs=NO_RW_CHECK if self._lean else None)
            wr = wmem.write_port()
            rd = wmem.read_port()

        if not streamed:
            rd_data = collision_read(m, rd, wr, platform) if self._lean and not spram else rd.data
        # Commands are registered when accepted (IDLE), checked in CHECK and DECODE and executed in
        # EXEC: no path from the command port, or through the checks, into the actions (timing).
        arg = self.cmd.payload.arg if self._held_arg else Signal(ARG_BITS)
        mu = Signal(signed(cfg.coef_bits))
        coef_c = Signal(signed(cfg.coef_bits))
        mac_op = Signal(MacOp)
        stochastic = Signal()
        error = Signal()
        error_code = Signal(2)
        last_pass = Signal(2)
        coord_sat = Signal()    # sticky: a COORD saturated (cleared with the MAC's record)
        st_out = self.status
        m.d.comb += [st_out.error.eq(error), st_out.error_code.eq(error_code),
                     st_out.last_pass.eq(last_pass),
                     st_out.saturated.eq((smac if streamed else mac).saturated | gen.saturated
                                         | (gen_u.saturated if streamed else 0) | coord_sat)]
        if g.reuse == "pregen":
            # The pool position is registered on its way to the status (timing: it is the
            # difference of the pool's head and the scaler's occupancy, a carry chain that
            # otherwise ran on into the bridge's reply). It settles in the drain and fill states,
            # before busy falls.
            offset_r = Signal.like(gen.offset, name="offset_r")
            m.d.sync += offset_r.eq(gen.offset)
            m.d.comb += [st_out.filling.eq(gen.filling), st_out.offset.eq(offset_r)]

        coord_states = ("COORD_RD",) + (("COORD_WAIT",) if spram else ()) + (
            "COORD_SEL", "COORD_ADD", "COORD_SAT", "COORD_WR")
        datapath_states = ("STREAM",) if streamed else ("PASS", "DRAIN", "WRITE", "READ")
        st, goto = one_hot_states(m, ("IDLE", "CHECK", "DECODE", "EXEC", "SETTLE", "FILL")
                                  + datapath_states + (coord_states if cfg.coord else ()),
                                  init="FILL")

        if not streamed:
            # MAC wiring: coefficient and operation are registers, constant during a pass.
            m.d.comb += [mac.op.eq(mac_op), mac.stochastic.eq(stochastic),
                         mac.coef.eq(Mux(mac_op == MacOp.UPDATE, coef_c, mu)),
                         mac.o.ready.eq(1)]

        # Argument checks, in two steps for timing. On acceptance the argument is registered with
        # per-nibble OR / AND reductions and the two comparisons that need carry chains; in
        # DECODE each check is a shallow function of those registers.
        cb = cfg.coef_bits
        in_arg = self.cmd.payload.arg
        nb = words.bit_length()
        start, count = arg[:32], arg[32:]
        nib_any = Signal(ARG_BITS // 4)
        nib_all = Signal(ARG_BITS // 4)
        fits = Signal()          # start + count <= words, on the low bits (no 32-bit carry chains)
        accept_regs = [
            nib_any.eq(Cat(in_arg[i:i + 4].any() for i in range(0, ARG_BITS, 4))),
            nib_all.eq(Cat(in_arg[i:i + 4].all() for i in range(0, ARG_BITS, 4))),
            fits.eq(in_arg[:nb] + in_arg[32:32 + nb] <= words),
        ]

        def terms(lo, hi, nib):
            """The bits of arg[lo:hi] to OR (``nib`` = nib_any) or AND (nib_all): the registered
            nibble reductions where a whole nibble is covered, single bits elsewhere."""
            out, i = [], lo
            while i < hi:
                whole = i % 4 == 0 and i + 4 <= hi
                out.append(nib[i // 4] if whole else arg[i])
                i += 4 if whole else 1
            return Cat(*out)

        def any_of(lo, hi=ARG_BITS):
            return terms(lo, hi, nib_any).any()

        def all_of(lo, hi=ARG_BITS):
            return terms(lo, hi, nib_all).all()

        checks = {
            "coef_ok": all_of(cb - 1) | ~any_of(cb - 1),
            "block_ok": any_of(32) & ~any_of(nb, 32) & ~any_of(32 + nb) & fits,
            "seed_bad": any_of(g.seed_width),
            "gt1": any_of(1),
        }
        if streamed:
            # STREAM: 1 <= count (bits 0-31) <= words, mode (bits 32-63) 0 or 1
            count_le = Signal()
            accept_regs.append(count_le.eq(in_arg[:nb] <= words))
            checks["stream_ok"] = any_of(0, 32) & ~any_of(nb, 32) & count_le & ~any_of(33)
        if g.scale == "runtime":
            checks["scale_bad"] = any_of(scale_register_bits(g))
        if g.reuse == "pregen":
            pb = g.pool_words.bit_length()
            offset_ge = Signal()
            accept_regs.append(offset_ge.eq(in_arg[:pb] >= g.pool_words))
            checks["offset_bad"] = any_of(pb, 32) | offset_ge
        word_lt = Signal()      # arg[:nb] < words (COORD's and MASK's word)
        if cfg.coord or cfg.mask == "bitmap":
            accept_regs.append(word_lt.eq(in_arg[:nb] < words))
        if cfg.coord:
            b = cfg.w_bits
            lane_lt = Signal()
            accept_regs.append(lane_lt.eq(in_arg[24:32] < cfg.lanes))
            checks["coord_ok"] = (word_lt & ~any_of(nb, 24) & lane_lt
                                  & (all_of(32 + b - 1) | ~any_of(32 + b - 1)))
        if cfg.mask == "bitmap":
            checks["mask_ok"] = word_lt & ~any_of(nb, 32) & ~any_of(32 + cfg.lanes)
        if cfg.mask != "none":
            lo_lt_hi, hi_le = Signal(), Signal()
            accept_regs += [lo_lt_hi.eq(in_arg[:nb] < in_arg[32:32 + nb]),
                            hi_le.eq(in_arg[32:32 + nb] <= words)]
            checks["range_ok"] = ~any_of(nb, 32) & ~any_of(32 + nb) & lo_lt_hi & hi_le
        # The opcode is registered one-hot; DECODE combines it with the checks into a registered
        # verdict (ok, err_code) with a flat OR, and EXEC acts on that verdict: no path runs from
        # the command port, or from a binary opcode decode, into the actions.
        checks_r = {name: Signal(name=f"{name}_r") for name in checks}
        is_op = {o: Signal(name=f"is_{o.name.lower()}") for o in Op}
        # Per argument check, the opcodes it rejects: each group's flag is registered at
        # acceptance (a function of the 4 opcode bits: one LUT), so the verdict ORs one term per
        # check, not one per opcode.
        bad_groups = {                           # (check, its value that rejects) -> opcodes
            ("seed_bad", 1): (Op.SEED,),
            ("coef_ok", 0): (Op.MU, Op.UPDATE),
            ("gt1", 1): (Op.ROUNDING, Op.CLEAR) + (() if streamed else (Op.PERTURB,)),
        }
        if streamed:
            bad_groups[("stream_ok", 0)] = (Op.STREAM,)
        else:
            bad_groups[("block_ok", 0)] = (Op.WRITE, Op.READ)
        if g.scale == "runtime":
            bad_groups[("scale_bad", 1)] = (Op.SCALE,)
        if g.reuse == "pregen":
            bad_groups[("offset_bad", 1)] = (Op.OFFSET,)
        if cfg.coord:
            bad_groups[("coord_ok", 0)] = (Op.COORD,)
        if cfg.mask == "bitmap":
            bad_groups[("mask_ok", 0)] = (Op.MASK,)
        if cfg.mask != "none":
            bad_groups[("range_ok", 0)] = (Op.RANGE,)
        in_group = {key: Signal(name=f"is_{key[0]}_op") for key in bad_groups}
        unsup = [is_op[Op.SCALE]] if g.scale != "runtime" else []
        if g.reuse != "pregen":
            unsup.append(is_op[Op.OFFSET])
        if not has_r:
            unsup.append(is_op[Op.ROUNDING] & ~checks_r["gt1"] & arg[0])
        if not cfg.coord:
            unsup.append(is_op[Op.COORD])
        if cfg.mask != "bitmap":
            unsup.append(is_op[Op.MASK])
        if cfg.mask == "none":
            unsup.append(is_op[Op.RANGE])
        if streamed:
            unsup += [is_op[Op.PERTURB], is_op[Op.WRITE], is_op[Op.READ]]
        else:
            unsup.append(is_op[Op.STREAM])
        err_arg = Signal()
        err_unsup = Signal()
        err_opcode = Signal()
        m.d.comb += [err_arg.eq(Cat(in_group[(name, rej)] & (checks_r[name] == rej)
                                    for name, rej in bad_groups).any()),
                     err_unsup.eq(Cat(*unsup).any() if unsup else 0),
                     err_opcode.eq(~Cat(*is_op.values()).any())]
        ARG, UNSUP, OPCODE = int(Err.ARG), int(Err.UNSUPPORTED), int(Err.OPCODE)
        # Decoded in DECODE and registered: EXEC acts on a registered verdict.
        ok = Signal()
        err_code = Signal(2)

        # Two address counters (timing: each has one increment condition): the pass's, from 0,
        # and the block transfer's (WRITE/READ), from the block's start.
        counter = Signal(range(words + 1))      # PASS: the next word to issue
        blk = Signal(range(words + 1))          # WRITE/READ: the next address
        more = Signal()                         # PASS: words still to issue (counter < words)
        more_r = Signal()                       # more & use_r, its own register (timing)
        left = Signal(range(words + 1))         # WRITE/READ: words still to transfer
        issue_left = Signal(range(words + 1))   # READ: words still to read from memory
        issue_more = Signal()                   # issue_left != 0, registered
        one_left = Signal()                     # left == 1, registered
        drain = Signal(range(8))
        in_left = Signal(range(words + 1))      # STREAM: words still to take from the host
        out_left = Signal(range(words + 1))     # STREAM: words still to send back
        sub = Signal(range(3))                  # STREAM: the row of the word being sent
        if not streamed:
            # Pass pipeline registers.
            va = Signal()
            za = Signal(data.ArrayLayout(signed(g.z_bits), cfg.lanes))
            ra = Signal(data.ArrayLayout(unsigned(S), cfg.lanes)) if has_r else None
            # Word addresses travel beside the data: one register per MAC stage.
            addr_a = Signal(range(words), name="addr_a")
            addr_pipe = [Signal(range(words), name=f"addr_s{i}") for i in range(mac.latency)]
            # Read pipeline register.
            rvalid = Signal()           # high only in READ: cleared with the last word
            m.d.comb += [self.rdata.valid.eq(rvalid), self.rdata.payload.eq(rd_data)]

            # The MAC takes a word when the memory returns it: 1 cycle after its read (block RAM)
            # or SPRAM_READ_LATENCY; what was registered at issue waits as long beside it.
            extra = SPRAM_READ_LATENCY - 1 if spram else 0

            def delayed(sig, name):
                for k in range(extra):
                    nxt = Signal.like(sig, name=f"{name}_d{k + 1}")
                    m.d.sync += nxt.eq(sig)
                    sig = nxt
                return sig
            # lean, no mask: the word goes into the MAC as it is issued (the weight comes late,
            # so nothing waits for a read): no issue-stage registers of z, r and the address
            va_m, za_m = delayed(va, "va"), delayed(za, "za")
            if not early:
                m.d.comb += [mac.i.valid.eq(va_m), mac.i.payload.w.eq(rd_data)]
            if late_w:
                m.d.comb += mac.w_late.eq(rd_data)
            # The perturbation mask: a word outside [rng_lo, rng_hi) is issued with z = 0; the
            # bitmap, read beside the weights, zeroes single lanes at the MAC input.
            rng_lo = Signal(range(words + 1))
            rng_hi = Signal(range(words + 1), init=words)
            z_issue = gen.o.payload
            # The range verdict of the issued word is registered beside it (at issue) and applied
            # at the MAC input (timing: the two counter compares no longer select za's 64 bits).
            inr = Signal(name="in_range") if cfg.mask != "none" else None
            keep = delayed(inr, "in_range") if inr is not None else None
            if cfg.mask == "bitmap":
                m.submodules.bitmap = bmem = memory.Memory(shape=cfg.lanes, depth=words,
                                                           init=[(1 << cfg.lanes) - 1] * words)
                bwr = bmem.write_port()
                brd = bmem.read_port()
                m.d.comb += [brd.addr.eq(counter), brd.en.eq(st["PASS"])]
                bits_m = delayed(brd.data, "bitmap")
                m.d.comb += [mac.i.payload.z[l].eq(Mux(bits_m[l] & keep, za_m[l], 0))
                             for l in range(cfg.lanes)]
            elif keep is not None:
                m.d.comb += mac.i.payload.z.eq(Mux(keep, za_m, 0))
            elif not early:
                m.d.comb += mac.i.payload.z.eq(za_m)
            if has_r and not early:
                m.d.comb += mac.i.payload.r.eq(delayed(ra, "ra"))
            m.d.sync += va.eq(0)
            first = counter if early else delayed(addr_a, "addr_a")
            for prev, nxt in zip([first] + addr_pipe[:-1], addr_pipe):
                m.d.sync += nxt.eq(prev)
            addr_c = addr_pipe[-1]

        # Control pulses to the generator and MAC are registered (one cycle after EXEC; the
        # argument register still holds their value then): no path from decode into the datapath.
        seed_p, scale_p, offset_p, clear_p = (Signal(name=n) for n in
                                              ("seed_p", "scale_p", "offset_p", "clear_p"))
        m.d.sync += [seed_p.eq(0), scale_p.eq(0), offset_p.eq(0), clear_p.eq(0)]
        m.d.comb += [gen.seed.eq(arg), gen.seed_load.eq(seed_p),
                     (smac if streamed else mac).sat_clear.eq(clear_p), gen.sat_clear.eq(clear_p)]
        if streamed:
            # UPDATE restarts the update generator and the rounding bank from the seed of the
            # last SEED (seed_b): the step whose perturbation the pending update belongs to.
            seed_b = Signal(g.seed_width)
            seedu_p = Signal()
            m.d.sync += seedu_p.eq(0)
            m.d.comb += [gen_u.seed.eq(seed_b), gen_u.seed_load.eq(seedu_p),
                         gen_u.sat_clear.eq(clear_p)]
            if has_r:
                m.d.comb += [rbank.seed.eq(seed_b), rbank.seed_load.eq(seedu_p)]
        elif has_r:
            m.d.comb += [rbank.seed.eq(arg[:g.seed_width]), rbank.seed_load.eq(seed_p)]
        if shared:
            # One mixer: the generator's bank's blocks, then (restarted in the cycle after its
            # last one) the rounding bank's. The seed is the argument, held until SEED is done
            # (FILL waits for both banks).
            gbank = gen.bank
            m.submodules.mixer = mixer = SeedMixer(g.seed_width, gbank.blocks)
            phase = Signal()            # 0: the generator's bank, 1: the rounding bank's
            second = Signal()
            m.d.sync += second.eq(mixer.done & ~phase & ~seed_p)
            with m.If(seed_p):
                m.d.sync += phase.eq(0)
            with m.Elif(second):
                m.d.sync += phase.eq(1)
            seed = arg[:g.seed_width]
            m.d.comb += [mixer.start.eq(seed_p | second),
                         mixer.iv.eq(seed ^ Mux(second & ~seed_p, rbank.tweak, gbank.tweak))]
            for bank, mine in ((gbank, ~phase), (rbank, phase)):
                m.d.comb += [bank.mix_block.eq(mixer.block),
                             bank.mix_valid.eq(mixer.block_valid & mine),
                             bank.mix_done.eq(mixer.done & mine)]
        if g.scale == "runtime":
            m.d.comb += [gen.scale_value.eq(arg), gen.scale_load.eq(scale_p)]
            if streamed:
                m.d.comb += [gen_u.scale_value.eq(arg), gen_u.scale_load.eq(scale_p)]
        if g.reuse == "pregen":
            m.d.comb += [gen.offset_value.eq(arg), gen.offset_key.eq(arg[32:]),
                         gen.offset_set.eq(offset_p)]

        # Issue of a word in a pass: ``more`` is high only in PASS (no state decode on the path
        # into the generator's ready).
        use_r = Signal()        # (mac_op == UPDATE) & stochastic, registered in EXEC (timing)
        r_ok = (rbank.o.valid | ~use_r) if has_r else 1
        rphase = 1              # SPRAM: this PASS cycle may read (issue); the next one writes
        if spram:
            rphase = Signal(name="rphase")
            m.d.sync += rphase.eq(~rphase)          # EXEC starts a pass with rphase high
        if streamed:
            m.d.comb += [smac.coef.eq(coef_c), smac.mu.eq(mu), smac.stochastic.eq(stochastic),
                         smac.update_only.eq(arg[32])]
        else:
            issue = more & gen.o.valid & r_ok & rphase
            m.d.comb += gen.o.ready.eq(issue)
            if early:       # (the MAC never stalls in the engine: its ready is always high)
                m.d.comb += [mac.i.valid.eq(issue), mac.i.payload.z.eq(gen.o.payload)]
            if has_r and early:
                # the rounding bits are taken a cycle after the issue, with the word in MAC
                # stage 1 (the bank is free-running in a pass: valid then as at the issue)
                issued = Signal()
                m.d.sync += issued.eq(issue & use_r)
                m.d.comb += [mac.r_late.eq(Cat(rbank.o.payload[l].as_unsigned()[:S]
                                               for l in range(cfg.lanes))),
                             rbank.o.ready.eq(issued)]
            elif has_r:                                 # issue & use_r
                m.d.comb += rbank.o.ready.eq(more_r & rbank.o.valid & gen.o.valid & rphase)


        m.d.comb += st_out.busy.eq(~st["IDLE"])

        with m.If(st["IDLE"]):
            m.d.comb += self.cmd.ready.eq(1)
            with m.If(self.cmd.valid):
                if not self._held_arg:
                    m.d.sync += arg.eq(in_arg)
                m.d.sync += accept_regs
                m.d.sync += [is_op[o].eq(self.cmd.payload.op == EngineOp[o.name]) for o in Op]
                m.d.sync += [in_group[key].eq(Cat(self.cmd.payload.op == EngineOp[o.name]
                                                  for o in ops).any())
                             for key, ops in bad_groups.items()]
                goto("IDLE", "CHECK")

        with m.If(st["CHECK"]):
            m.d.sync += [checks_r[name].eq(v) for name, v in checks.items()]
            goto("CHECK", "DECODE")

        with m.If(st["DECODE"]):
            m.d.sync += [ok.eq(~(err_arg | err_unsup | err_opcode)),
                         err_code.eq(Mux(err_opcode, OPCODE, Mux(err_arg, ARG, UNSUP)))]
            goto("DECODE", "EXEC")

        with m.If(st["EXEC"]):
            # The opcode flags are one-hot: at most one action is taken; the next state is
            # SETTLE unless the command starts a pass, a transfer or a fill.
            fill = is_op[Op.SEED] | (is_op[Op.OFFSET] if g.reuse == "pregen" else 0)
            if streamed:
                jumps = {"FILL": fill | is_op[Op.UPDATE], "STREAM": is_op[Op.STREAM]}
            else:
                jumps = {"FILL": fill, "PASS": is_op[Op.PERTURB] | is_op[Op.UPDATE],
                         "WRITE": is_op[Op.WRITE], "READ": is_op[Op.READ]}
            if cfg.coord:
                jumps["COORD_RD"] = is_op[Op.COORD]
            m.d.sync += st["EXEC"].eq(0)
            m.d.sync += st["SETTLE"].eq(~ok | ~Cat(*jumps.values()).any())
            for dst, cond in jumps.items():
                with m.If(ok & cond):
                    m.d.sync += st[dst].eq(1)
            with m.If(~ok):
                m.d.sync += [error.eq(1), error_code.eq(err_code)]
            with m.If(ok & is_op[Op.SEED]):
                m.d.sync += seed_p.eq(1)
                if streamed:
                    m.d.sync += seed_b.eq(arg[:g.seed_width])
            with m.If(ok & is_op[Op.MU]):
                m.d.sync += mu.eq(arg[:cb])
            if spram:
                m.d.sync += rphase.eq(1)
            with m.If(ok & is_op[Op.PERTURB]):
                m.d.sync += [mac_op.eq(Mux(arg[0], MacOp.MINUS2, MacOp.PLUS)), use_r.eq(0),
                             last_pass.eq(Mux(arg[0], 2, 1)), counter.eq(0), more.eq(1),
                             more_r.eq(0)]
            if streamed:
                with m.If(ok & is_op[Op.UPDATE]):
                    m.d.sync += [coef_c.eq(arg[:cb]), seedu_p.eq(1)]
                with m.If(ok & is_op[Op.STREAM]):
                    m.d.sync += [in_left.eq(arg[:nb]), out_left.eq(arg[:nb]), sub.eq(0),
                                 last_pass.eq(Mux(arg[32], 3, 1))]
            else:
                with m.If(ok & is_op[Op.UPDATE]):
                    m.d.sync += [coef_c.eq(arg[:cb]), mac_op.eq(MacOp.UPDATE),
                                 use_r.eq(stochastic if has_r else 0),
                                 more_r.eq(stochastic if has_r else 0),
                                 last_pass.eq(3), counter.eq(0), more.eq(1)]
            with m.If(ok & is_op[Op.SCALE]):
                m.d.sync += scale_p.eq(1)
            with m.If(ok & is_op[Op.OFFSET]):
                m.d.sync += offset_p.eq(1)
            if cfg.coord:
                # COORD reads and writes its word at blk, and its lane is a registered one-hot
                # (timing: no third source from the argument register in the memory's address
                # multiplexer, no 8-bit lane compare in front of the lane select).
                c_hit = Signal(cfg.lanes, name="c_hit")
                with m.If(ok & is_op[Op.COORD]):
                    m.d.sync += [blk.eq(arg[:nb]),
                                 c_hit.eq(Cat(arg[24:32] == l for l in range(cfg.lanes)))]
            with m.If(ok & (is_op[Op.WRITE] | is_op[Op.READ])):
                # blk runs over the block's addresses from start.
                # (an accepted block has count >= 1: issue_more starts high)
                m.d.sync += [left.eq(count), issue_left.eq(count), issue_more.eq(1),
                             blk.eq(start), one_left.eq(count == 1)]
                if not streamed:
                    m.d.sync += rvalid.eq(0)
            with m.If(ok & is_op[Op.CLEAR]):
                m.d.sync += [error.eq(0), error_code.eq(0), clear_p.eq(~arg[0])]
            with m.If(ok & is_op[Op.ROUNDING]):
                m.d.sync += stochastic.eq(arg[0])
            if cfg.mask != "none":
                with m.If(ok & is_op[Op.RANGE]):
                    m.d.sync += [rng_lo.eq(arg[:nb]), rng_hi.eq(arg[32:32 + nb])]
            if cfg.mask == "bitmap":
                with m.If(ok & is_op[Op.MASK]):
                    m.d.comb += [bwr.en.eq(1), bwr.addr.eq(arg[:nb]),
                                 bwr.data.eq(arg[32:32 + cfg.lanes])]

        with m.If(st["SETTLE"]):
            # The registered pulses (scale, offset, clear) take effect in this cycle: the status
            # is current when busy falls.
            goto("SETTLE", "IDLE")

        with m.If(st["FILL"]):
            # After reset, SEED or a pregen OFFSET: busy until the banks have mixed the seed
            # and a pregen pool is full.
            wait = seed_p | offset_p | gen.loading
            if streamed:
                wait = wait | seedu_p | gen_u.loading
            if has_r:
                wait = wait | rbank.loading
            if g.reuse == "pregen":
                wait = wait | gen.filling
            with m.If(~wait):
                goto("FILL", "IDLE")

        if streamed:
            # STREAM: a word goes in when the host has one, both generators (the perturbation
            # generator only in fused mode) and the rounding bank (stochastic) have a beat and
            # the datapath takes it; per word, three rows (w1, w2, w3) or one (w0) go out.
            only_u = arg[32]
            z_ok = gen.o.valid | only_u
            ru_ok = (rbank.o.valid | ~stochastic) if has_r else 1
            in_more = Signal()
            m.d.comb += in_more.eq(st["STREAM"] & (in_left != 0))
            take = in_more & self.wdata.valid & gen_u.o.valid & z_ok & ru_ok & smac.i.ready
            m.d.comb += [self.wdata.ready.eq(in_more & gen_u.o.valid & z_ok & ru_ok
                                             & smac.i.ready),
                         gen_u.o.ready.eq(take), gen.o.ready.eq(take & ~only_u),
                         smac.i.valid.eq(take), smac.i.payload.w.eq(self.wdata.payload),
                         smac.i.payload.zu.eq(gen_u.o.payload),
                         smac.i.payload.z.eq(Mux(only_u, 0, gen.o.payload))]
            if has_r:
                m.d.comb += [rbank.o.ready.eq(take & stochastic),
                             smac.i.payload.r.eq(Cat(rbank.o.payload[l].as_unsigned()[:S]
                                                     for l in range(cfg.lanes)))]
            with m.If(take):
                m.d.sync += in_left.eq(in_left - 1)
            # output: w1, w2, w3 (sub 0, 1, 2) or w0 alone
            o = smac.o.payload
            m.d.comb += [self.rdata.valid.eq(smac.o.valid & st["STREAM"]),
                         self.rdata.payload.eq(Mux(only_u, o.w0, Mux(sub == 0, o.w1,
                                                                      Mux(sub == 1, o.w2, o.w3))))]
            last_row = only_u | (sub == 2)
            sent = self.rdata.valid & self.rdata.ready
            m.d.comb += smac.o.ready.eq(sent & last_row)
            with m.If(sent):
                m.d.sync += sub.eq(Mux(last_row, 0, sub + 1))
                with m.If(last_row):
                    m.d.sync += out_left.eq(out_left - 1)
                    with m.If(out_left == 1):
                        goto("STREAM", "IDLE")
        else:
            if late_w:
                # the word in MAC stage 2: its weight is there with it in stage 3 (the address
                # pipeline shifts every cycle; the MAC never stalls in a pass), through the drain
                with m.If(st["PASS"] | st["DRAIN"]):
                    m.d.comb += [rd.addr.eq(addr_pipe[1]), rd.en.eq(1)]
            with m.If(st["PASS"]):
                if not late_w:
                    m.d.comb += [rd.addr.eq(counter), rd.en.eq(rphase)]
                with m.If(issue):
                    m.d.sync += [va.eq(1), za.eq(z_issue), addr_a.eq(counter),
                                 counter.eq(counter + 1), more.eq(counter != words - 1),
                                 more_r.eq(use_r & (counter != words - 1))]
                    if inr is not None:
                        m.d.sync += inr.eq((counter >= rng_lo) & (counter < rng_hi))
                    if has_r:
                        m.d.sync += ra.eq(Cat(rbank.o.payload[l].as_unsigned()[:S]
                                              for l in range(cfg.lanes)))
                with m.If(~more):
                    m.d.sync += drain.eq(0)
                    goto("PASS", "DRAIN")

            with m.If(st["DRAIN"]):
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == mac.latency + extra):
                    goto("DRAIN", "IDLE")

            with m.If(st["WRITE"]):
                m.d.comb += self.wdata.ready.eq(1)
                with m.If(self.wdata.valid):
                    m.d.sync += [blk.eq(blk + 1), left.eq(left - 1), one_left.eq(left == 2)]
                    with m.If(one_left):
                        goto("WRITE", "IDLE")

            if spram:
                with m.If(st["READ"]):
                    # one word at a time: ask for it, wait SPRAM_READ_LATENCY cycles, offer it
                    # until taken (the link is far slower; the SPRAM's inputs stay registered)
                    asked = [Signal(name=f"asked{k}") for k in range(SPRAM_READ_LATENCY - 1)]
                    ask = ~rvalid & ~Cat(*asked).any() & issue_more
                    m.d.comb += [rd.addr.eq(blk), rd.en.eq(ask)]
                    m.d.sync += [asked[0].eq(ask)] + [b.eq(a) for a, b in zip(asked, asked[1:])]
                    with m.If(asked[-1]):
                        m.d.sync += rvalid.eq(1)
                    with m.If(ask):
                        m.d.sync += [blk.eq(blk + 1), issue_left.eq(issue_left - 1),
                                     issue_more.eq(issue_left != 1)]
                    with m.If(self.rdata.valid & self.rdata.ready):
                        m.d.sync += [rvalid.eq(0), left.eq(left - 1), one_left.eq(left == 2)]
                        with m.If(one_left):
                            goto("READ", "IDLE")
            else:
                with m.If(st["READ"]):
                    advance = ~rvalid | self.rdata.ready
                    m.d.comb += [rd.addr.eq(blk), rd.en.eq(advance)]
                    with m.If(advance):
                        m.d.sync += rvalid.eq(issue_more)
                        with m.If(issue_more):
                            m.d.sync += [blk.eq(blk + 1), issue_left.eq(issue_left - 1),
                                         issue_more.eq(issue_left != 1)]
                    with m.If(self.rdata.valid & self.rdata.ready):
                        m.d.sync += [left.eq(left - 1), one_left.eq(left == 2)]
                        with m.If(one_left):
                            m.d.sync += rvalid.eq(0)
                            goto("READ", "IDLE")

        if cfg.coord:
            # COORD: read the word; register it and its lane's weight; add delta; saturate into
            # the word; write it back. One step per cycle (timing: the memory's output, the lane
            # multiplexer, the carry chain and the saturation each end in a register, so the
            # memory's write data comes from registers).
            b = cfg.w_bits
            c_word = Signal(row)
            c_out = Signal(row)
            c_sel = Signal(signed(b))
            c_sum = Signal(signed(b + 1))
            lo_w, hi_w = -(1 << (b - 1)), (1 << (b - 1)) - 1
            with m.If(st["COORD_RD"]):
                m.d.comb += [rd.addr.eq(blk), rd.en.eq(1)]
                goto("COORD_RD", "COORD_WAIT" if spram else "COORD_SEL")
            if spram:
                c_wait = Signal(range(SPRAM_READ_LATENCY))
                with m.If(st["COORD_WAIT"]):            # the SPRAM's read latency
                    m.d.sync += c_wait.eq(c_wait + 1)
                    with m.If(c_wait == SPRAM_READ_LATENCY - 2):
                        m.d.sync += c_wait.eq(0)
                        goto("COORD_WAIT", "COORD_SEL")
            with m.If(st["COORD_SEL"]):
                # the lane's weight: an AND-OR of the one-hot lane flags (a lane index >= m
                # selects nothing; such a COORD is rejected before it gets here)
                pick = 0
                for l in range(cfg.lanes):
                    pick = pick | (rd_data[l].as_unsigned() & c_hit[l].replicate(b))
                m.d.sync += [c_word.eq(rd_data), c_sel.eq(pick)]
                goto("COORD_SEL", "COORD_ADD")
            with m.If(st["COORD_ADD"]):
                m.d.sync += c_sum.eq(c_sel + arg[32:32 + b].as_signed())
                goto("COORD_ADD", "COORD_SAT")
            with m.If(st["COORD_SAT"]):
                # out of range iff the two top bits of the (b+1)-bit sum differ
                over, under = ~c_sum[b] & c_sum[b - 1], c_sum[b] & ~c_sum[b - 1]
                c_new = Mux(over, hi_w, Mux(under, lo_w, c_sum[:b]))
                m.d.sync += [c_out[l].eq(Mux(c_hit[l], c_new, c_word[l]))
                             for l in range(cfg.lanes)]
                with m.If(over | under):
                    m.d.sync += coord_sat.eq(1)
                goto("COORD_SAT", "COORD_WR")
            with m.If(st["COORD_WR"]):
                m.d.comb += [wr.en.eq(1), wr.addr.eq(blk), wr.data.eq(c_out)]
                goto("COORD_WR", "IDLE")
            with m.If(clear_p):
                m.d.sync += coord_sat.eq(0)

        if not streamed:
            # Write port: MAC results during a pass, host words during WRITE.
            with m.If(mac.o.valid):
                m.d.comb += [wr.en.eq(1), wr.addr.eq(addr_c), wr.data.eq(mac.o.payload)]
            with m.Elif(self.wdata.valid & self.wdata.ready):
                m.d.comb += [wr.en.eq(1), wr.addr.eq(blk), wr.data.eq(self.wdata.payload)]
        return m
