"""The bank model for many seeds at once: the first cycles of :class:`pezo.sim.bank.BankModel`
after loading each of a list of seeds, vectorised over all their generators.

Built on the same primitives as the resumable model (start states from
:func:`pezo.sim.seeding.bank_states`, the geometry of :func:`pezo.sim.bank.bank_geometry`, the
sequence of :mod:`pezo.sim.lfsr`): every sequence is a GF(2)-linear function of its start state,
so the k basis sequences are computed once per (k, length) and a state's sequence is the XOR of
those of its set bits (grouped into byte tables: ceil(k/8) table rows per state instead of k).
Tested equal to :class:`~pezo.sim.bank.BankModel` seed by seed. Used by the host's fast training
paths and ``pezo quality``.
"""

import collections

import numpy as np

from pezo.sim.bank import BankModel, bank_geometry
from pezo.sim.lfsr import sequence_words
from pezo.sim.seeding import bank_states

__all__ = ["bank_first_cycles", "bank_first_fields", "seed_lane_states", "TABLE_BYTES",
           "FirstCyclesBank"]


def _extract_rows(words, positions, width):
    """:func:`pezo.sim.lfsr.extract` for every row of ``words`` (2-D) at once."""
    idx = positions >> 6
    sh = (positions & 63).astype(np.uint64)
    lo = words[:, idx] >> sh
    hi = (words[:, idx + 1] << np.uint64(1)) << (np.uint64(63) - sh)
    v = lo | hi
    if width == 64:
        return v.astype(np.int64)
    v = (v & np.uint64((1 << width) - 1)).astype(np.int64)
    sign = np.int64(1 << (width - 1))
    return (v ^ sign) - sign


_BASIS = collections.OrderedDict()
_TABLES = collections.OrderedDict()
TABLE_BYTES = 32 << 20      # largest byte-table set kept for one (k, length); above it: XOR loop


def _basis(k, nbits):
    """The k basis sequences (start state 1 << i) as packed words, kept per (k, length)."""
    nwords = -(-max(int(nbits), 1) // 64) + 1
    basis = _BASIS.get((k, nwords))
    if basis is None:
        basis = sequence_words(k, [1 << i for i in range(k)], nbits)[:, :nwords]
        _BASIS[(k, nwords)] = basis
        while len(_BASIS) > 16:
            _BASIS.popitem(last=False)
    return basis


def _byte_tables(k, nbits):
    """(ceil(k/8), 256, nwords) uint64: entry [c, b] is the XOR of the basis sequences of the
    set bits of byte value b in state byte c, or None when that would exceed TABLE_BYTES."""
    nwords = -(-max(int(nbits), 1) // 64) + 1
    chunks = -(-k // 8)
    if chunks * 256 * nwords * 8 > TABLE_BYTES:
        return None
    tables = _TABLES.get((k, nwords))
    if tables is None:
        basis = _basis(k, nbits)
        tables = np.zeros((chunks, 256, nwords), dtype=np.uint64)
        for c in range(chunks):
            for j in range(min(8, k - 8 * c)):
                np.bitwise_xor(tables[c, :1 << j], basis[8 * c + j], out=tables[c, 1 << j:2 << j])
        _TABLES[(k, nwords)] = tables
        while len(_TABLES) > 4:
            _TABLES.popitem(last=False)
    return tables


def _linear_sequence_words(k, states, nbits):
    """:func:`pezo.sim.lfsr.sequence_words` for many start states at once, by linearity: the
    sequence of a state is the XOR of the sequences of its set bits. The k basis sequences are
    computed once per (k, length); for k <= 64 they are grouped into byte tables (256 XOR
    combinations per state byte), so a state costs ceil(k/8) table rows instead of k."""
    nwords = -(-max(int(nbits), 1) // 64) + 1
    if k <= 64:
        st = np.asarray(states, dtype=np.uint64).reshape(-1)
        tables = _byte_tables(k, nbits)
        if tables is not None:
            out = tables[0][(st & np.uint64(255)).astype(np.intp)]
            for c in range(1, tables.shape[0]):
                byte = (st >> np.uint64(8 * c)) & np.uint64(255)
                out ^= tables[c][byte.astype(np.intp)]
            return out
    basis = _basis(k, nbits)
    out = np.zeros((len(states), nwords), dtype=np.uint64)
    for i in range(k):
        if k <= 64:
            sel = ((st >> np.uint64(i)) & np.uint64(1)).astype(bool)
        else:
            sel = np.array([(int(s) >> i) & 1 for s in states], dtype=bool)
        out[sel] ^= basis[i]
    return out


def seed_lane_states(seeds, k, gens, seed_width, tweak=0):
    """Start states of many seeds: :func:`pezo.sim.seeding.bank_states` (the one definition)."""
    return bank_states([int(x) for x in seeds], k, gens, seed_width, tweak)


def _fields_unsigned(words, positions, width):
    """The unsigned ``width``-bit fields at bit ``positions`` of every row of ``words``."""
    idx = positions >> 6
    sh = (positions & 63).astype(np.uint64)
    v = (words[:, idx] >> sh) | ((words[:, idx + 1] << np.uint64(1)) << (np.uint64(63) - sh))
    return v & np.uint64((1 << width) - 1) if width < 64 else v


_FIELD_TABLES = collections.OrderedDict()


def _field_tables(cfg, cycles):
    """Byte tables of the bank's unsigned output fields: (ceil(k/8), 256, F) uint32, entry
    [c, b] the first ``cycles`` fields (F = cycles * lanes cycle-major for a shared bank, else
    ``cycles`` per generator) of the start state whose byte c is b and other bits are 0. A field
    is a GF(2)-linear function of the start state, so the fields of any state are the XOR of one
    row per state byte. None when k > 64 or the tables would exceed TABLE_BYTES."""
    gens, step, offsets = bank_geometry(cfg)
    k, w, n = cfg.state_bits, cfg.width, cfg.lanes
    f = cycles * n if cfg.shared else cycles
    chunks = -(-k // 8)
    if k > 64 or w > 32 or chunks * 256 * f * 4 > TABLE_BYTES:
        return None
    key = (k, w, step, tuple(offsets), cfg.shared, n, int(cycles))
    tables = _FIELD_TABLES.get(key)
    if tables is None:
        pos = np.arange(cycles, dtype=np.int64) * step
        if cfg.shared:
            pos = (pos[:, None] + np.asarray(offsets, dtype=np.int64)[None, :]).reshape(-1)
        nbits = (cycles - 1) * step + max(offsets) + w
        basis = _fields_unsigned(_basis(k, nbits), pos, w).astype(np.uint32)
        tables = np.zeros((chunks, 256, f), dtype=np.uint32)
        for c in range(chunks):
            for j in range(min(8, k - 8 * c)):
                np.bitwise_xor(tables[c, :1 << j], basis[8 * c + j], out=tables[c, 1 << j:2 << j])
        _FIELD_TABLES[key] = tables
        while len(_FIELD_TABLES) > 4:
            _FIELD_TABLES.popitem(last=False)
    return tables


def bank_first_fields(cfg, seeds, cycles, tweak=0):
    """The first ``cycles`` outputs of the bank for each seed as *unsigned* w-bit fields
    ((len(seeds), cycles, lanes) uint32, the two's complement bits of
    :func:`bank_first_cycles`), from the field tables; None when there are none (k > 64 or too
    long a run)."""
    tables = _field_tables(cfg, cycles)
    if tables is None:
        return None
    gens = bank_geometry(cfg)[0]
    st = seed_lane_states(seeds, cfg.state_bits, gens, cfg.seed_width, tweak).reshape(-1)
    v = tables[0][(st & np.uint64(255)).astype(np.intp)]
    for c in range(1, tables.shape[0]):
        v ^= tables[c][((st >> np.uint64(8 * c)) & np.uint64(255)).astype(np.intp)]
    if cfg.shared:
        return v.reshape(len(seeds), cycles, cfg.lanes)
    return v.reshape(len(seeds), cfg.lanes, cycles).transpose(0, 2, 1)


def bank_first_cycles(cfg, seeds, cycles, rotate=False, dtype=np.int64, tweak=0) -> np.ndarray:
    """The first ``cycles`` outputs of the uniform bank for each of ``seeds``:
    (len(seeds), cycles, lanes) int64 (or ``dtype``, wide enough for the width), equal to
    ``BankModel(cfg, seed, rotate).next(cycles)``.
    Vectorised over every seed's generators by linearity (the stream definition of
    :mod:`pezo.sim.bank`): byte-aligned ``leap`` fields are views of the packed sequences, other
    fields come from :func:`bank_first_fields`."""
    gens, step, offsets = bank_geometry(cfg)
    k, w, n = cfg.state_bits, cfg.width, cfg.lanes
    nseeds = len(seeds)
    aligned = w in (8, 16, 32)
    fields = None if aligned else bank_first_fields(cfg, seeds, cycles, tweak)
    if fields is not None:
        out = fields.astype(dtype)
        sign = out.dtype.type(1 << (w - 1))
        out ^= sign
        out -= sign
    else:
        states = seed_lane_states(seeds, k, gens, cfg.seed_width, tweak)
        states = states.reshape(-1) if k <= 64 else [st for row in states for st in row]
        nbits = (cycles - 1) * step + max(offsets) + w
        words = _linear_sequence_words(k, states, nbits)
        words = words.reshape(nseeds, gens, words.shape[1])
        if aligned:
            # Every number is the next w-bit field of its generator's sequence: a view.
            view = words.view(f"<i{w // 8}")
            if cfg.shared:      # lane l of cycle c is field c*n + l of the one sequence
                out = view[:, 0, :cycles * n].reshape(nseeds, cycles, n).astype(dtype)
            else:               # lane l of cycle c is field c of generator l
                out = view[:, :, :cycles].transpose(0, 2, 1).astype(dtype)
        else:
            pos = np.arange(cycles, dtype=np.int64) * step
            out = np.empty((nseeds, cycles, n), dtype=dtype)
            for lane in range(n):
                g = 0 if cfg.shared else lane
                out[:, :, lane] = _extract_rows(words[:, g, :], pos + offsets[lane], w)
    if rotate and n > 1:
        perm = (np.arange(n)[None, :] + np.arange(cycles)[:, None]) % n
        out = np.take_along_axis(out, np.broadcast_to(perm, out.shape), axis=2)
    return out


class FirstCyclesBank:
    """Stands in for ``BankModel(cfg, seed, tweak=tweak)``: its first ``first`` cycles come from
    :func:`bank_first_cycles` (no per-seed sequence bootstrap), anything later from a real
    :class:`~pezo.sim.bank.BankModel` advanced to the same position. Same numbers, always."""

    def __init__(self, cfg, seed, tweak=0, first=64):
        self.cfg, self.seed, self.tweak = cfg, int(seed), tweak
        self._first = bank_first_cycles(cfg, [self.seed], int(first), tweak=tweak)[0]
        self._pos = 0
        self._model = None

    def next(self, cycles):
        cycles = int(cycles)
        if self._model is None and self._pos + cycles <= len(self._first):
            out = self._first[self._pos:self._pos + cycles]
            self._pos += cycles
            return out
        if self._model is None:
            self._model = BankModel(self.cfg, self.seed, tweak=self.tweak)
            if self._pos:
                self._model.next(self._pos)
        self._pos += cycles
        return self._model.next(cycles)
