"""The fused golden engine: MeZO steps on the golden engine model without a command per pass.

:class:`FusedGoldenTransport` is the batched golden transport
(:class:`pezo.host.perturb.BatchedGoldenTransport`: the engine model's own commands, MAC, scaler
and status) with two more entry points that do the work of a whole command sequence at once, for
the default ``pezo`` source:

* :meth:`~FusedGoldenTransport.pair`: passes 1-3 of one query (``SEED s`` or ``OFFSET o`` before
  each of ``PERTURB 0``, ``PERTURB 1``, ``PERTURB 0``, a ``READ`` after the first two), returning
  the two weight vectors the host reads, theta+ = w + p and theta- = w - p;
* :meth:`~FusedGoldenTransport.update`: ``SEED s`` (or ``OFFSET o``) and ``UPDATE c``.

Why this is exact, and what it skips:

* p = round_half_even(mu z / 2^S) depends only on z and the mu register, so it is computed once
  per query; passes 1-3 give w + p, w - p, w whenever nothing saturates (the MAC's definition in
  :mod:`pezo.sim.mac`), so pass 3 leaves the weights as they were and needs no arithmetic.
* z of a step seed (``none`` / ``onthefly``) is the first pass after ``SEED s``: computed for a
  block of announced seeds at once (:meth:`prefetch`; one vectorised LFSR run,
  :func:`pezo.host.perturb.bank_first_cycles`), scaled, and kept with p, p as float, and the
  stochastic-rounding bits of the same seed (the rounding bank's first pass after the ``SEED``).
  ``pregen`` reads the pool: p of the whole pool is computed once per (pool, scale, mu) and laid
  out cyclically, so a query's p is a slice.
* The perturbation mask (RANGE, MASK): a masked weight has z = 0, so p = 0 and u = 0 (the
  stochastic rounding's r < 2^S never carries into a weight LSB): p and u are multiplied by the
  mask; the random streams advance as without it.
* Saturation: an upper bound on max |w| (kept across updates: max |u| <= ceil(|c| max|z| / 2^S))
  shows in O(1) that no pass can saturate; only when the bound is too close to the format's limit
  are the sums checked, and a query that really saturates is handed to the command path (passes
  1-3, which consume no random state) or saturated exactly as the MAC does (the update).
* Float weights: theta = w * 2^-f is exact (|w| < 2^53), so theta+- = theta + (p * 2^-f) is the
  same float the host would get from ``READ`` and :func:`pezo.fixed.from_fixed`.
* The engine state a command sequence would leave (generator seed and position, rounding bank,
  pool offset, ``last_pass``) is set, lazily for the seed-dependent parts, before any later
  command or status read, so commands can be mixed freely with the fused calls.

Anything outside these cases (an error flag, a saturation flag already set, a seed out of range, a
z that saturates in the scaler, a scale changed after a block was computed) returns ``None`` and
the caller runs the ordinary commands. ``fused`` and ``fallback`` count the two outcomes.
"""

import collections

import numpy as np

from pezo.fixed import saturate
from pezo.host.batched import BatchedGoldenTransport, _FastBank, query_key
from pezo.sim.reuse import (apply_signs, onthefly_lanes, onthefly_taps, pregen_read, sign_bits,
                            sign_rate)
from pezo.sim.banks import (_basis, _field_tables, _fields_unsigned, bank_first_cycles,
                            bank_first_fields, seed_lane_states)
from pezo.sim import scaler as smodel
from pezo.sim.bank import bank_geometry
from pezo.sim.engine import Op
from pezo.sim.mac import addend, rounding_config
from pezo.sim.seeding import domain_tweak

__all__ = ["FusedGoldenTransport"]


def _jump_tables(cfg, chunk, count):
    """(count, ceil(k/8), 256) uint64: entry [j, c, b] is the LFSR state, (j + 1) * chunk bank
    cycles on, of the start state whose byte c is b (the state after t sequence steps is bits
    t .. t+k-1 of the sequence, linear in the start state). k <= 64."""
    k, step = cfg.state_bits, bank_geometry(cfg)[1]
    pos = (np.arange(1, count + 1, dtype=np.int64) * chunk) * step
    basis = _basis(k, int(pos[-1]) + k)
    after = _fields_unsigned(basis, pos, k)                  # (k, count)
    chunks = -(-k // 8)
    tables = np.zeros((count, chunks, 256), dtype=np.uint64)
    for c in range(chunks):
        for j in range(min(8, k - 8 * c)):
            np.bitwise_xor(tables[:, c, :1 << j], after[8 * c + j][:, None],
                           out=tables[:, c, 1 << j:2 << j])
    return tables


class _RoundingStream:
    """A rounding bank's stream after ``SEED`` (``BankModel(cfg, seed)`` from cycle 0), read
    ahead ``COUNT`` chunks of ``chunk`` cycles at a time: the jump tables give every chunk's
    start states at once, the field tables its numbers. Position-exact: :meth:`next` returns
    what the bank model would, so it can stand in for it in the engine model."""

    COUNT = 64
    _TABLES = {}

    def __init__(self, cfg, seed, chunk, mask):
        self.cfg, self.seed, self.chunk, self.mask = cfg, int(seed), int(chunk), mask
        gens = bank_geometry(cfg)[0]
        self.states = seed_lane_states([self.seed], cfg.state_bits, gens, cfg.seed_width,
                                       domain_tweak("rounding", cfg.seed_width))[0]
        key = (cfg, self.chunk)
        if key not in self._TABLES:
            self._TABLES.clear()
            self._TABLES[key] = _jump_tables(cfg, self.chunk, self.COUNT)
        self.jumps = self._TABLES[key]
        self.fields = _field_tables(cfg, self.chunk)
        self.pos = 0
        n = cfg.lanes
        self._raw = np.empty((0, n), dtype=np.uint32)
        self._bits = np.empty(0, dtype=np.int64)

    @classmethod
    def usable(cls, cfg, chunk):
        return cfg.state_bits <= 64 and _field_tables(cfg, chunk) is not None

    def _fill(self):
        cfg, n, count = self.cfg, self.cfg.lanes, self.COUNT
        st = self.states
        starts = np.empty((count, len(st)), dtype=np.uint64)
        starts[0] = st
        after = np.zeros((count, len(st)), dtype=np.uint64)
        for c in range(self.jumps.shape[1]):
            after ^= self.jumps[:, c, ((st >> np.uint64(8 * c)) & np.uint64(255)).astype(np.intp)]
        starts[1:] = after[:-1]
        self.states = after[-1]
        flat = starts.reshape(-1)
        v = self.fields[0][(flat & np.uint64(255)).astype(np.intp)]
        for c in range(1, self.fields.shape[0]):
            v ^= self.fields[c][((flat >> np.uint64(8 * c)) & np.uint64(255)).astype(np.intp)]
        if cfg.shared:
            v = v.reshape(count * self.chunk, n)
        else:
            v = v.reshape(count, n, self.chunk).transpose(0, 2, 1).reshape(count * self.chunk, n)
        self._raw = np.concatenate([self._raw, v]) if len(self._raw) else v
        bits = (v & np.uint32(self.mask)).astype(np.int64).reshape(-1)
        self._bits = np.concatenate([self._bits, bits]) if len(self._bits) else bits

    def next_bits(self, cycles):
        """The next ``cycles`` cycles' numbers, masked to the rounding bits, flat int64."""
        while len(self._raw) < cycles:
            self._fill()
        n = self.cfg.lanes
        out = self._bits[:cycles * n]
        self._raw, self._bits = self._raw[cycles:], self._bits[cycles * n:]
        self.pos += cycles
        return out

    def next(self, cycles):
        """The next ``cycles`` outputs (cycles, lanes) int64, as ``BankModel.next``."""
        cycles = int(cycles)
        while len(self._raw) < cycles:
            self._fill()
        out = self._raw[:cycles].astype(np.int64)
        self._raw, self._bits = self._raw[cycles:], self._bits[cycles * self.cfg.lanes:]
        self.pos += cycles
        w = self.cfg.width
        sign = np.int64(1 << (w - 1))
        return (out ^ sign) - sign


class _Block:
    """z (and what follows from it) for a block of step seeds, one row per seed."""

    __slots__ = ("digits", "z", "zmax", "zok", "r", "mu", "p", "pf", "pmax")

    def __init__(self, digits, z, zmax, zok, r):
        self.digits, self.z, self.zmax, self.zok, self.r = digits, z, zmax, zok, r
        self.mu = self.p = self.pf = self.pmax = None


class FusedGoldenTransport(BatchedGoldenTransport):
    """The golden engine model with fused MeZO passes (see the module docstring); bit-exact with
    :class:`~pezo.host.engine.GoldenTransport` for every command and every fused call."""

    name = "golden-fused"
    BLOCK = 64          # seeds per vectorised block
    KEEP = 512          # seeds kept (oldest blocks dropped first)

    def __init__(self, cfg):
        super().__init__(cfg)
        g = cfg.generator
        self._reuse = g.reuse
        self._tile = g.out_lanes // g.lanes if g.reuse == "onthefly" else 0
        self._taps = onthefly_taps(g.width, self._tile) if self._tile else []
        self._rtweak = domain_tweak("rounding", g.seed_width)
        self._words, self._depth = cfg.words, cfg.depth
        self._sw = g.seed_width
        self._S = cfg.product_shift
        self._hi = (1 << (cfg.w_bits - 1)) - 1
        self._cmax = 1 << (cfg.coef_bits - 1)
        self._lsb = 2.0 ** -cfg.w_frac
        self._rcfg = rounding_config(cfg)
        self._rmask = np.int64((1 << self._S) - 1) if self._S > 0 else np.int64(0)
        self._with_r = cfg.stochastic and self._S > 0
        # p = round_half_even(mu z / 2^S) in float64 is exact when mu z and the scaled value
        # are integers below 2^53 (then np.rint rounds half to even, like the MAC)
        self._float_p = g.z_bits + cfg.coef_bits + max(0, -self._S) <= 52
        self._rows = {}                          # seed -> (block, row)
        self._order = collections.deque()        # (block, seeds) oldest first
        self._keep = self.KEEP
        self._held = 0                           # rows in the blocks of _order
        self._wf = None                          # weights as float64, or None
        self._wbound = None                      # an upper bound on max |w|, or None
        self._pending = None                     # (seed, rounding-bank position) to apply
        self._pending_pregen = None              # pregen: (offset, key) of the last query
        self._stweak = domain_tweak("sign", self._sw)
        self._signs = collections.OrderedDict()  # pregen: sign-bank seed -> sign bits
        self._last_pregen = None                 # pregen: (what, block) of the last query
        self._tiles = None                       # pregen: the pool's z and p, laid out
        self.fused = 0
        self.fallback = 0

    # Commands: bring the model up to date, then the batched golden model -----------------------
    def _sync(self):
        if self._pending is not None:
            seed, rpos = self._pending
            self._pending = None
            self.model.resume(seed, self._words, rpos)
        if self._pending_pregen is not None:     # OFFSET o with the key, then one pass
            offset, key = self._pending_pregen
            self._pending_pregen = None
            self.model.gen.set_offset(offset, key)
            self.model.gen.next_uniform(self._words)

    def command(self, op, arg=0, wdata=None, rcount=0):
        self._sync()
        if op != Op.READ:
            self._wf = self._wbound = None
        return super().command(op, arg, wdata, rcount)

    def status(self):
        self._sync()
        return super().status()

    # Step seeds -----------------------------------------------------------------------------
    def prefetch(self, seeds):
        """Compute z (and p, the rounding bits) for these step seeds now, in blocks (pregen:
        the sign bits of their queries, whose pool offsets are not known yet)."""
        if self._reuse == "pregen":
            todo = [self._sign_seed(s) for s in seeds]
            todo = list(dict.fromkeys(s for s in todo if s is not None and s not in self._signs))
            for i in range(0, len(todo), self.BLOCK):
                self._build_signs(todo[i:i + self.BLOCK])
            return
        todo, seen = [], set()
        for s in seeds:
            s = int(s)
            if s not in self._rows and s not in seen and 0 <= s and not s >> self._sw:
                seen.add(s)
                todo.append(s)
        self._keep = max(self.KEEP, 2 * len(todo))      # an announcement is never evicted
        for i in range(0, len(todo), self.BLOCK):
            self._build(todo[i:i + self.BLOCK])

    def _build(self, seeds):
        g, words, nseeds = self.cfg.generator, self._words, len(seeds)
        narrow = np.int32 if g.width <= 32 else np.int64
        u = bank_first_cycles(g, seeds, words, rotate=bool(self._tile), dtype=narrow)
        if self._tile:
            u = onthefly_lanes(u, self._taps, g.width)
        u = u.reshape(nseeds, self._depth)
        digits = list(self.model.gen.digits)
        z, sat = smodel.scale_values(u, digits, g)       # int32 when that is exact
        if sat:     # which seeds saturate in the scaler: those go through the commands
            zok = [not smodel.scale_values(row, digits, g)[1] for row in u]
        else:
            zok = [True] * nseeds
        r = None
        if self._with_r:    # the rounding bank's first pass: its low S bits
            fields = bank_first_fields(self._rcfg, seeds, words, self._rtweak)
            if fields is None:
                fields = bank_first_cycles(self._rcfg, seeds, words, tweak=self._rtweak)
            r = np.empty(fields.shape, dtype=fields.dtype)
            np.bitwise_and(fields, fields.dtype.type(self._rmask), out=r)
            r = r.reshape(nseeds, self._depth)
        zmax = np.maximum(z.max(axis=1), -z.min(axis=1)).tolist()
        blk = _Block(digits, z, zmax, zok, r)
        for i, s in enumerate(seeds):
            self._rows[s] = (blk, i)
        self._order.append((blk, seeds))
        self._held += nseeds
        while self._held > self._keep and len(self._order) > 1:
            old_blk, old = self._order.popleft()
            self._held -= len(old)
            for s in old:
                if self._rows.get(s, (None,))[0] is old_blk:
                    del self._rows[s]

    def _p_float(self, z, mu):
        """p * 2^-f (float64; p = round(mu z / 2^S) in weight LSBs, the MAC's perturbation
        addend) and max |p| along the last axis, for z of any shape."""
        if self._float_p:
            p = z * (mu * 2.0 ** -self._S)      # exact: an integer times 2^-S
            np.rint(p, out=p)
        else:
            p = addend(self.cfg, z, mu)
        a = np.maximum(p.max(axis=-1), -p.min(axis=-1))
        pmax = a.astype(np.int64).tolist() if a.ndim else int(a)
        return (np.multiply(p, self._lsb, out=p) if p.dtype == np.float64 else p * self._lsb), pmax

    def _with_mu(self, blk, mu):
        """p * 2^-f and max |p| of a block for the mu register."""
        if blk.mu != mu:
            blk.p = None                                # as integers only when needed
            blk.pf, blk.pmax = self._p_float(blk.z, mu)
            blk.mu = mu
        return blk

    def _p_int(self, blk, row):
        if blk.p is None:
            blk.p = np.rint(blk.pf / self._lsb).astype(np.int64)
        return blk.p if row is None else blk.p[row]

    def _seed_row(self, seed):
        """(block, row) of a step seed, computing it when it was not announced; None when the
        fused path does not apply."""
        if seed < 0 or seed >> self._sw:
            return None
        hit = self._rows.get(seed)
        if hit is None or hit[0].digits != self.model.gen.digits:     # not announced, or the
            self._build([seed])                                       # scale changed since
            hit = self._rows[seed]
        blk, row = hit
        return hit if blk.zok[row] else None

    def _sign_seed(self, seed):
        """pregen: the seed of a query's sign bank (the pool's seed ^ the sign domain ^ the
        step seed's key, :meth:`pezo.sim.reuse.ReuseModel.set_offset`), or None."""
        s = int(seed)
        if s < 0 or s >> self._sw:
            return None
        return self.model.gen.seed ^ self._stweak ^ query_key(s)

    def _build_signs(self, sbs):
        """pregen: the sign bits of one pass after ``OFFSET`` for each sign-bank seed, from
        the first cycles of all their banks at once (:func:`pezo.sim.banks.bank_first_cycles`
        vectorised over the seeds; :func:`pezo.sim.reuse.sign_bits` over the rows)."""
        g = self.cfg.generator
        cycles = -(-self._words // sign_rate(g)) + 1
        bits = sign_bits(bank_first_cycles(g, sbs, cycles), g, 0, self._words).astype(np.uint8)
        for sb, row in zip(sbs, bits):
            self._signs[sb] = row
        while len(self._signs) > max(self.KEEP, 2 * len(sbs)):
            self._signs.popitem(last=False)

    def _pool_tiles(self, mu):
        """pregen: z and p * 2^-f of every pool number and of its one's complement (the two
        values a sign bit chooses between: :func:`pezo.sim.reuse.apply_signs` then the
        scaler, number by number), laid out cyclically over N/m + d/m words so that a query's
        values are a slice from its offset; with max |z| and max |p| over the pool (bounds for
        every query). Kept per (pool, scale, mu); None when the scaler saturates on the pool
        (then every query is scaled, and checked, on its own)."""
        gen, g = self.model.gen, self.cfg.generator
        key = (gen.seed, tuple(gen.digits))
        t = self._tiles
        if t is None or t["key"] != key:
            pool = gen.pool
            zs = [smodel.scale_values(apply_signs(pool, sign), gen.digits, g) for sign in (0, 1)]
            if zs[0][1] or zs[1][1]:
                t = {"key": key, "z": None}
            else:
                n = (g.pool_words + self._words) * g.out_lanes
                z = np.stack([np.resize(zz.reshape(-1), n) for zz, _ in zs])    # cyclic
                t = {"key": key, "z": z, "zmax": int(np.abs(z).max()), "mu": None}
            self._tiles = t
        if t["z"] is not None and t["mu"] != mu:
            t["pf"], pmax = self._p_float(t["z"], mu)
            t["pmax"], t["mu"] = max(pmax), mu
        return t if t["z"] is not None else None

    def _pregen_row(self, seed, offset):
        """pregen: (block, 0) holding z of the query (``OFFSET offset`` with the seed's key, then
        one pass: :func:`pezo.sim.reuse.pregen_read` of the pool with the query's sign bits,
        scaled), the generator's state after that pass pending (applied before any later
        command or status read); None (counted as a fallback: the command path replays the
        OFFSET itself) when it does not apply."""
        g = self.cfg.generator
        if offset is None or not 0 <= offset < g.pool_words or seed is None:
            self.fallback += 1
            return None
        sb = self._sign_seed(seed)
        if sb is None:
            self.fallback += 1
            return None
        gen = self.model.gen
        what = (gen.seed, sb, int(offset), tuple(gen.digits))
        if self._last_pregen is not None and self._last_pregen[0] == what:
            blk = self._last_pregen[1]          # the update replays the pair's query
        else:       # (a pending query state moves the pool's read position, not the pool)
            s = self._signs.get(sb)
            if s is None:
                self._build_signs([sb])
                s = self._signs[sb]
            mu = self.model.mu
            tiles = self._pool_tiles(mu)
            if tiles is not None:       # z (and p) chosen number by number by the sign bits
                s = s.reshape(-1).view(bool)
                at = slice(int(offset) * g.out_lanes, int(offset) * g.out_lanes + self._depth)
                blk = _Block(list(gen.digits), np.where(s, *tiles["z"][::-1, at])[None, :],
                             [tiles["zmax"]], [True], None)
                blk.pf = np.where(s, *tiles["pf"][::-1, at])[None, :]
                blk.pmax, blk.mu = [tiles["pmax"]], mu
            else:
                z, sat = smodel.scale_values(pregen_read(gen.pool, offset, s).reshape(-1),
                                             gen.digits, g)
                if sat:
                    self.fallback += 1
                    return None
                zmax = int(max(z.max(), -z.min()))
                blk = _Block(list(gen.digits), z[None, :], [zmax], [True], None)
            self._last_pregen = (what, blk)
        self._pending_pregen = (int(offset), query_key(seed))
        return blk, 0

    def _pregen_bits(self):
        """pregen: the rounding bits of the next update from the engine's rounding bank, which
        runs on from the pool's SEED; a fresh bank is replaced by a :class:`_RoundingStream`."""
        m, words = self.model, self._words
        rb = m.rbank
        if (isinstance(rb, _FastBank) and rb.pos == 0 and rb._fallback is None
                and _RoundingStream.usable(self._rcfg, words)):
            rb = _RoundingStream(self._rcfg, rb.seed, words, int(self._rmask))
            m.use_rounding_stream(rb)
        if isinstance(rb, _RoundingStream):
            return rb.next_bits(words)
        return rb.next(words).reshape(-1) & self._rmask

    # Fused MeZO passes ------------------------------------------------------------------------
    def _seed_hit(self, seed):
        """(block, row) of the step seed's z, or None (counted as a fallback)."""
        hit = self._seed_row(int(seed))
        if hit is None:
            self.fallback += 1
        return hit

    def _ready(self):
        m = self.model
        return not (m.error or m.mac_saturated or m.gen.saturated)

    def pair(self, seed=None, offset=None, visible=None):
        """Passes 1-3 of a query, replayed by ``SEED seed`` (``none``, ``onthefly``) or
        ``OFFSET offset`` (``pregen``): returns theta+ and theta- as float64 (2, visible), what
        the host reads after pass 1 and pass 2, or None (nothing done) when the commands must
        run instead."""
        m = self.model          # (a pending seed state is overwritten: no _sync needed)
        d = self._depth
        visible = d if visible is None else visible
        if not self._ready():
            self.fallback += 1
            return None
        hit = self._pregen_row(seed, offset) if self._reuse == "pregen" else self._seed_hit(seed)
        if hit is None:
            return None
        blk, row = hit
        self._with_mu(blk, m.mu)
        pf, pmax = blk.pf[row], blk.pmax[row]
        active = m.pass_mask()          # the engine's perturbation mask: z = 0 outside it
        if active is not None:
            pf = pf * active
        w = m.weights
        if self._wbound is None:
            self._wbound = int(np.abs(w).max())
        if self._wbound + pmax > self._hi:
            lo = -self._hi - 1
            p = self._p_int(blk, row)
            if active is not None:
                p = p * active
            wp, wm = w + p, w - p
            if min(wp.min(), wm.min()) < lo or max(wp.max(), wm.max()) > self._hi:
                self.fallback += 1
                return None         # a pass saturates: the commands count and clear it
        if self._wf is None:
            self._wf = w * self._lsb
        wf = self._wf[:visible]
        out = np.empty((2, visible))
        np.add(wf, pf[:visible], out=out[0])
        np.subtract(wf, pf[:visible], out=out[1])
        # the state after the three passes (pregen: left by _pregen_row)
        if self._reuse != "pregen":
            self._pending = (int(seed), 0)
        m.commit_pass("plus", m.weights, False)     # passes 1-3 leave the weights as they were
        self.fused += 1
        return out

    def update(self, seed=None, offset=None, coef=0):
        """``UPDATE coef`` (a signed register integer) replayed by ``SEED seed`` or
        ``OFFSET offset``: returns whether the MAC saturated (the sticky flag is set, as by the
        command), or None (nothing done) when the commands must run instead."""
        m = self.model
        coef = int(coef)
        if not self._ready() or not -self._cmax <= coef < self._cmax:
            self.fallback += 1
            return None
        S = self._S
        if self._reuse == "pregen":
            hit = self._pregen_row(seed, offset)
            if hit is None:
                return None
            z, zmax, r = hit[0].z[0], hit[0].zmax[0], None
            if m.stochastic and S > 0:      # the rounding bank runs on from the pool's SEED
                r = self._pregen_bits()
        else:
            hit = self._seed_hit(seed)
            if hit is None:
                return None
            blk, row = hit
            z, zmax = blk.z[row], blk.zmax[row]
            r = blk.r[row] if m.stochastic and S > 0 else None
            if m.stochastic and S > 0 and r is None:
                self.fallback += 1
                return None
        x = abs(coef) * zmax
        ubound = (x + (1 << S) - 1) >> S if S > 0 else x << -S
        u = addend(self.cfg, z, coef, r)        # the MAC's own rounding (pezo.sim.mac)
        active = m.pass_mask()                  # z = 0 outside the mask: u = 0 (r < 2^S)
        if active is not None:
            u = u * active
        w = m.weights
        if self._wbound is None:
            self._wbound = int(np.abs(w).max())
        if self._wbound + ubound <= self._hi:   # no weight can saturate: add in place
            w += u
            sat = False
            self._wbound += ubound
        else:                                   # exactly the MAC: saturate(w + u)
            w, sat = saturate(w + u, self.cfg.w_bits)
            self._wbound = None
        m.commit_pass("update", w, sat)
        self._wf = None
        if self._reuse != "pregen":
            self._pending = (int(seed), self._words if m.stochastic else 0)   # bank read?
        self.fused += 1
        return bool(sat)
