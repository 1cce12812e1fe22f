"""The one configuration object of the perturbation generator, shared by hardware and golden model.

A :class:`GeneratorConfig` is validated when it is made: every bad value raises ``TypeError`` (wrong
kind) or ``ValueError`` (out of range) with a message that names the value and what is accepted.
Configurations load from TOML or JSON files (a ``[generator]`` table or a flat table) and from
``key=value`` strings (the CLI's ``--set``).
"""

import dataclasses
from dataclasses import dataclass, fields
import json
import math
from pathlib import Path
import tomllib

from pezo.sim.gf2 import onthefly_taps
from pezo.sim.lfsr import POLYNOMIALS

__all__ = ["GeneratorConfig", "EngineConfig", "DEFAULT_DIGITS", "load_config", "load_engine_config",
           "load_over_default", "read_config_file", "parse_assignments", "split_assignments",
           "train_table", "ConfigError"]

STEPS = ("leap",)
# Stepping modes that existed and were removed, with the reason (the error names it).
RETIRED_STEPS = {"shift": "its consecutive numbers share w-1 bits, so perturbation coordinates "
                          "are tied (docs/streams.md); use 'leap'"}
REUSES = ("none", "pregen", "onthefly")
#: Engine perturbation masks (EngineConfig.mask): each includes the one before it.
MASKS = ("none", "range", "bitmap")
#: Where the engine keeps its weights (EngineConfig.weights).
WEIGHT_MEMORIES = ("bram", "spram", "stream")
SCALES = ("runtime", "fixed")
SEED_WIDTHS = (32, 64)
# Default scale digits K per scale mode: the fewest that keep the default alpha's variance within
# 0.5 % of 1 for w >= 4 (fixed: any exponent, K = 3 gives +0.27 %; runtime: the exponent window
# of 2^E positions needs K = 4 with E = 4, +0.04 %; K = 3, E = 3 gave -1.5 %).
DEFAULT_DIGITS = {"runtime": 4, "fixed": 3}


class ConfigError(ValueError):
    """A configuration file or assignment could not be read."""


def config_from_dict(cls, data: dict, what: str):
    """``cls(**data)`` for a configuration dataclass, refusing keys it does not have."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"Unknown {what} parameter(s) {', '.join(unknown)}; "
                          f"accepted: {', '.join(sorted(known))}")
    return cls(**data)


def _check_int(name, value, lo, hi=None, what=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be {what or 'an integer in ' + rng}, not {value!r}")


def _check_choice(name, value, choices):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


@dataclass(frozen=True)
class GeneratorConfig:
    """Parameters of the PeZO perturbation generator (RNG bank -> reuse -> scaler).

    Parameters
    ----------
    lanes : int
        n, number of uniform generators (bank lanes), 1..64.
    width : int
        w, bits of each uniform number, 2..32. Numbers are two's complement in [-2^(w-1), 2^(w-1)).
    state_bits : int
        k, LFSR state bits per generator (per bank when ``shared``), 3..64 or a wide trinomial of the
        table (71, 79, 81, 93, 95, 97, 127: cheapest shared banks); the polynomial comes from
        the built-in table of primitive polynomials.
    step : str
        ``"leap"`` (the only mode): the state advances w (n*w when shared) sequence steps per
        number, every output bit is fresh. (``"shift"``, one step per number, was removed: its
        numbers overlap by w-1 bits.)
    shared : bool
        One LFSR of k bits feeds all n lanes (lane l takes bits l*w..l*w+w-1) instead of one per lane.
    seed_width : int
        Bits of the master seed port: 32 or 64.
    reuse : str
        ``"none"``, ``"pregen"`` (pool of ``pool_size`` numbers in on-chip RAM, read cyclically) or
        ``"onthefly"`` (n generators rotated across m output lanes).
    out_lanes : int or None
        m, values delivered per cycle. Default n. ``none`` needs m = n; ``pregen``/``onthefly`` need m
        a multiple of n.
    pool_size : int or None
        N, numbers in the ``pregen`` pool: a multiple of m, at least m, at most 2^20. Default 1024.
    scale : str
        ``"runtime"`` (default): the CSD digits of alpha are a run-time register; ``"fixed"``: alpha's
        digits are constants of the netlist (only adders, cheapest).
    scale_digits : int or None
        K, the most nonzero signed power-of-two digits of alpha, 1..8. Default (None): 4 for a
        ``runtime`` scale, 3 for ``fixed`` (:data:`DEFAULT_DIGITS`: both keep the default alpha's
        variance within 0.5 % of 1).
    scale_shift_bits : int
        Runtime scale only: each digit's exponent is chosen from 2^scale_shift_bits positions, 1..4
        (default 4).
    z_int : int
        Integer bits of the output value z, sign included (Qz_int.z_frac), 2..16.
    z_frac : int
        Fraction bits of z, 0..30. z_int + z_frac <= 32.
    """

    lanes: int = 4
    width: int = 16
    state_bits: int = 32
    step: str = "leap"
    shared: bool = False
    seed_width: int = 32
    reuse: str = "none"
    out_lanes: int | None = None
    pool_size: int | None = None
    scale: str = "runtime"
    scale_digits: int | None = None
    scale_shift_bits: int = 4
    z_int: int = 3
    z_frac: int = 13

    def __post_init__(self):
        _check_int("Lane count (lanes)", self.lanes, 1, 64)
        _check_int("Number width (width)", self.width, 2, 32)
        if isinstance(self.state_bits, int) and self.state_bits in POLYNOMIALS:
            pass
        elif isinstance(self.state_bits, int) and self.state_bits > 64 \
                and not isinstance(self.state_bits, bool):
            raise ValueError(f"LFSR state bits (state_bits) must be an integer in 3..64 or one of "
                             f"{', '.join(str(k) for k in POLYNOMIALS if k > 64)} (the wide "
                             f"trinomials of the table), not {self.state_bits!r}")
        else:
            _check_int("LFSR state bits (state_bits)", self.state_bits, 3, 64)
        if self.step in RETIRED_STEPS:
            raise ValueError(f"Stepping mode (step) {self.step!r} was removed: "
                             f"{RETIRED_STEPS[self.step]}")
        _check_choice("Stepping mode (step)", self.step, STEPS)
        if not isinstance(self.shared, bool):
            raise TypeError(f"shared must be a bool, not {self.shared!r}")
        if self.seed_width not in SEED_WIDTHS or isinstance(self.seed_width, bool):
            if not isinstance(self.seed_width, int) or isinstance(self.seed_width, bool):
                raise TypeError(f"Seed width (seed_width) must be an integer, not {self.seed_width!r}")
            raise ValueError(f"Seed width (seed_width) must be 32 or 64, not {self.seed_width!r}")
        _check_choice("Reuse strategy (reuse)", self.reuse, REUSES)
        if self.out_lanes is None:
            object.__setattr__(self, "out_lanes", self.lanes)
        _check_int("Output lane count (out_lanes)", self.out_lanes, 1, 256)
        if self.reuse == "none" and self.out_lanes != self.lanes:
            raise ValueError(f"Reuse 'none' needs out_lanes equal to lanes ({self.lanes}), "
                             f"not {self.out_lanes!r}")
        if self.out_lanes % self.lanes:
            raise ValueError(f"Output lane count (out_lanes) must be a multiple of lanes "
                             f"({self.lanes}), not {self.out_lanes!r}")
        if self.reuse == "onthefly" and self.shared:
            raise ValueError("Reuse 'onthefly' rotates the generators' states and needs independent "
                             "lanes (shared=False)")
        if self.reuse == "onthefly":
            onthefly_taps(self.width, self.out_lanes // self.lanes)   # ValueError if too many
        if self.reuse == "pregen":
            if self.out_lanes > self.lanes * self.width:
                raise ValueError(f"Reuse 'pregen' draws a fresh sign bit per output number from "
                                 f"the bank's lanes*width = {self.lanes * self.width} bits per "
                                 f"cycle, so out_lanes must be at most that, not "
                                 f"{self.out_lanes!r}")
            if self.pool_size is None:
                object.__setattr__(self, "pool_size", max(1024, self.out_lanes))
            _check_int("Pool size (pool_size)", self.pool_size, 1, 1 << 20)
            if self.pool_size % self.out_lanes:
                raise ValueError(f"Pool size (pool_size) must be a multiple of out_lanes "
                                 f"({self.out_lanes}), not {self.pool_size!r}")
        elif self.pool_size is not None:
            raise ValueError(f"pool_size applies only to reuse 'pregen', not to reuse {self.reuse!r}")
        _check_choice("Scale mode (scale)", self.scale, SCALES)
        if self.scale_digits is None:
            object.__setattr__(self, "scale_digits", DEFAULT_DIGITS[self.scale])
        _check_int("Scale digit count (scale_digits)", self.scale_digits, 1, 8)
        _check_int("Scale shift bits (scale_shift_bits)", self.scale_shift_bits, 1, 4)
        _check_int("Integer bits of z (z_int)", self.z_int, 2, 16)
        _check_int("Fraction bits of z (z_frac)", self.z_frac, 0, 30)
        if self.z_int + self.z_frac > 32:
            raise ValueError(f"z format Q{self.z_int}.{self.z_frac} is wider than 32 bits")
        if not self.shared and self.lanes > (1 << self.state_bits) - 1:
            raise ValueError(f"{self.state_bits} LFSR state bits give only "
                             f"{(1 << self.state_bits) - 1} distinct start states, fewer than the "
                             f"{self.lanes} lanes; use more state_bits or fewer lanes")
        if self.shared:
            if self.lanes * self.width > 1024:
                raise ValueError("A shared bank gives lanes*width bits per cycle, at most 1024")

    # Derived figures -----------------------------------------------------------------------------
    @property
    def z_bits(self) -> int:
        return self.z_int + self.z_frac

    @property
    def pool_words(self) -> int:
        """Depth of the pregen pool memory: words of ``out_lanes`` numbers."""
        return self.pool_size // self.out_lanes

    @property
    def alpha0(self) -> float:
        """The variance-matching scale: z = alpha0 * u has unit variance for uniform u."""
        return math.sqrt(3.0) / 2 ** (self.width - 1)

    def replace(self, **changes) -> "GeneratorConfig":
        if changes.get("reuse", self.reuse) != "pregen" and "pool_size" not in changes:
            changes["pool_size"] = None
        if ("lanes" in changes or changes.get("reuse") == "none") and "out_lanes" not in changes:
            changes["out_lanes"] = None
        if ("scale" in changes and "scale_digits" not in changes
                and self.scale_digits == DEFAULT_DIGITS[self.scale]):
            changes["scale_digits"] = None        # the new scale mode's default
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "GeneratorConfig":
        return config_from_dict(cls, data, "generator")

    def name(self) -> str:
        """A short, file-name-safe identifier of this configuration."""
        parts = [f"n{self.lanes}", f"w{self.width}", f"k{self.state_bits}", self.step]
        if self.shared:
            parts.append("shared")
        parts.append(self.reuse)
        if self.out_lanes != self.lanes:
            parts.append(f"m{self.out_lanes}")
        if self.reuse == "pregen":
            parts.append(f"N{self.pool_size}")
        parts.append(f"{self.scale}K{self.scale_digits}")
        return "-".join(parts)


def _coerce(text: str):
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null", ""):
        return None
    try:
        return int(text, 0)
    except ValueError:
        return text.strip()


def parse_assignments(items) -> dict:
    """Turn ``["lanes=8", "reuse=pregen"]`` into a dict with ints/bools parsed."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"Setting {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        # reuse=none names the strategy "none"; elsewhere none/null means "the default".
        out[key] = "none" if key == "reuse" and value.strip().lower() == "none" else _coerce(value)
    return out


def _read_table_file(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"Configuration file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(f"Configuration file {str(path)!r} must end in .toml or .json")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"Configuration file {str(path)!r} is malformed: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Configuration file {str(path)!r} must hold a table of parameters")
    return data


def _subtable(data, key, where):
    """``data[key]`` as a dict (empty if absent); a ConfigError naming ``where`` if it is not a
    table (or, for ``engine``, if it nests a ``generator`` entry)."""
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] in {where} must be a table of parameters, not {value!r}")
    if key == "engine" and "generator" in value:
        raise ConfigError(f"[engine] in {where} must not hold 'generator' (got "
                          f"{value['generator']!r}): the generator is its own [generator] table")
    return dict(value)


def read_config_file(path):
    """The parameters of a configuration file (TOML or JSON) as two dicts, (generator keys,
    engine keys), unvalidated.

    A file holds a ``[generator]`` table, an ``[engine]`` table, flat top-level keys, or any mix
    of them. Flat keys are split as ``--set`` splits them (:func:`split_assignments`): the
    engine's own fields (depth, w_int...) are engine keys, the generator's fields generator keys.
    A flat key that is neither, or a key given both flat and in its table, is a
    :class:`ConfigError` naming it (unknown keys inside a table are refused when the
    configuration is made). This is the one reader of configuration files: every loader below
    (and so every command taking ``--config``) goes through it."""
    data = _read_table_file(path)
    where = f"configuration file {str(path)!r}"
    if TRAIN_TABLE in data:
        raise ConfigError(f"Configuration file {str(path)!r} holds a [{TRAIN_TABLE}] table: it "
                          f"describes the training design (pezo synth --config takes it), not "
                          f"an engine or generator configuration")
    gen, eng = (_subtable(data, key, repr(str(path))) for key in ("generator", "engine"))
    flat = {k: v for k, v in data.items() if k not in ("generator", "engine")}
    gen_keys = [f.name for f in fields(GeneratorConfig)]
    eng_keys = sorted(_ENGINE_KEYS)
    unknown = sorted(k for k in flat if k not in gen_keys and k not in _ENGINE_KEYS)
    if unknown:
        raise ConfigError(f"Unknown parameter(s) {', '.join(unknown)} in {where}; accepted: the "
                          f"generator's {', '.join(sorted(gen_keys))}; the engine's "
                          f"{', '.join(eng_keys)}; each at the top level or in a [generator] / "
                          f"[engine] table")
    flat_gen, flat_eng = split_assignments(flat)
    for table, name, keys in ((gen, "generator", flat_gen), (eng, "engine", flat_eng)):
        both = sorted(set(table) & set(keys))
        if both:
            raise ConfigError(f"{', '.join(both)} {'is' if len(both) == 1 else 'are'} given both "
                              f"at the top level and in [{name}] of {where}; give "
                              f"{'it' if len(both) == 1 else 'each'} once")
        table.update(keys)
    return gen, eng


#: The table of a configuration file that describes the training design
#: (:class:`pezo.sim.ontrain.TrainerConfig`; boards/configs/up5k-train.toml).
TRAIN_TABLE = "train"


def train_table(path):
    """The ``[train]`` table of configuration file ``path`` (TOML or JSON) as a dict,
    unvalidated (:class:`pezo.sim.ontrain.TrainerConfig` checks it), or None when the file has
    none (it is then an engine or generator configuration: :func:`read_config_file`). A file
    with a ``[train]`` table holds nothing else: other keys are a :class:`ConfigError`."""
    data = _read_table_file(path)
    if TRAIN_TABLE not in data:
        return None
    table = data[TRAIN_TABLE]
    if not isinstance(table, dict):
        raise ConfigError(f"[{TRAIN_TABLE}] in configuration file {str(path)!r} must be a table "
                          f"of parameters, not {table!r}")
    others = sorted(k for k in data if k != TRAIN_TABLE)
    if others:
        raise ConfigError(f"Configuration file {str(path)!r} holds a [{TRAIN_TABLE}] table and "
                          f"{', '.join(others)}: the training design's file holds its "
                          f"[{TRAIN_TABLE}] table only (its engine follows from it)")
    return dict(table)


def _file(path):
    """:func:`read_config_file` of ``path``, or two empty dicts for no file."""
    return read_config_file(path) if path is not None else ({}, {})


def _layered(file, overrides, generator_overrides, default=None) -> dict:
    """The one path of every loader: an engine configuration's dict (``generator`` a dict)
    from ``default`` (an EngineConfig, or the dataclass defaults if None), a file's (generator
    keys, engine keys) (:func:`_file`) on top of it, and the overrides last.

    The file's engine keys and ``overrides`` replace the default's; the file's generator keys,
    if it has any, replace the default *generator* (a file describes a whole generator), and
    ``generator_overrides`` apply last. Keys of the default generator that only fit its own
    choices are dropped when the overrides change those: ``pool_size`` unless the result is
    ``pregen``, ``out_lanes`` when ``lanes`` is overridden."""
    file_gen, file_eng = file
    gen_sets = dict(generator_overrides or {})
    eng = {} if default is None else {k: v for k, v in default.to_dict().items()
                                      if k != "generator"}
    eng.update(file_eng)
    eng.update(overrides or {})
    if file_gen or default is None:
        gen = dict(file_gen)
    else:
        gen = default.generator.to_dict()
        if gen_sets.get("reuse", gen["reuse"]) != "pregen" and "pool_size" not in gen_sets:
            gen.pop("pool_size", None)
        if "lanes" in gen_sets and "out_lanes" not in gen_sets:
            gen.pop("out_lanes", None)
    gen.update(gen_sets)
    return {**eng, "generator": gen}


def load_config(path=None, overrides=None) -> GeneratorConfig:
    """Read a generator configuration from a TOML/JSON file (:func:`read_config_file`: a
    ``[generator]`` table or flat keys), then apply ``overrides`` (a dict of generator keys).

    Engine keys in the file (an ``[engine]`` table or flat ones) are not used here, but they
    are checked: the file must then describe a valid engine on its own (as
    :func:`load_engine_config` reads it), so a file is refused or accepted alike by every
    command."""
    file = _file(path)
    if file[1]:
        EngineConfig.from_dict(_layered(file, None, None))      # checked, not used here
    return GeneratorConfig.from_dict(_layered(file, None, overrides)["generator"])


@dataclass(frozen=True)
class EngineConfig:
    """Parameters of the ZO perturbation engine: generator + MAC + weight memory + control.

    Parameters
    ----------
    generator : GeneratorConfig
        The perturbation generator; its ``out_lanes`` m is the MAC's lane count.
    depth : int
        d, weights in the engine's memory: a multiple of m, 1..2^20 (the host pads a model's
        weights to a multiple of m).
    w_int, w_frac : int
        Weight format Qw_int.w_frac (sign in w_int), 4..32 bits in all.
    coef_bits, coef_frac : int
        Format of the mu and c = -eta*g registers: signed ``coef_bits`` (2..32) integers scaled by
        2^-coef_frac (0..48; may exceed coef_bits, giving small magnitudes fine resolution).
    stochastic : bool
        Build the stochastic-rounding option of the update pass (random bits from a second LFSR
        bank); the rounding mode is then a run-time choice.
    coord : bool
        Build the ``COORD`` command (add a signed integer to one weight: coordinate-wise
        perturbation and update, DeepZero's CGE). Off by default (the MeZO engine needs none).
    mask : str
        Perturbation mask built into the passes (masked weights get z = 0 in PERTURB and UPDATE):
        ``"none"`` (default), ``"range"`` (the ``RANGE`` command: a word range, ElasticZO's ZO
        layers) or ``"bitmap"`` (``RANGE`` and a one-bit-per-weight ``MASK`` memory, DeepZero's
        sparsity).
    weights : str
        Where the weights live: ``"bram"`` (default: block RAM, one word read and one written
        per cycle), ``"spram"`` (the iCE40 UltraPlus single-port SB_SPRAM256KA blocks: up to
        65,536 16-bit weights on an UP5K; passes run at half rate, a read and a write cycle per
        word) or ``"stream"`` (off-engine, ZO2-style: the host streams blocks of weights
        through the ``STREAM`` command, which applies the deferred update of the previous
        step and this step's perturbations in one pass; no weight memory, ``depth`` is the
        largest model the counters address. Needs ``reuse`` none or onthefly, no ``coord``,
        ``mask="none"``).
    """

    generator: GeneratorConfig = GeneratorConfig()
    depth: int = 1024
    w_int: int = 4
    w_frac: int = 12
    coef_bits: int = 16
    coef_frac: int = 20
    stochastic: bool = True
    coord: bool = False
    mask: str = "none"
    weights: str = "bram"

    def __post_init__(self):
        if isinstance(self.generator, dict):
            object.__setattr__(self, "generator", GeneratorConfig.from_dict(self.generator))
        if not isinstance(self.generator, GeneratorConfig):
            raise TypeError(f"generator must be a GeneratorConfig, not {self.generator!r}")
        m = self.generator.out_lanes
        _check_int("Weight count (depth)", self.depth, 1, 1 << 20)
        if self.depth % m:
            raise ValueError(f"Weight count (depth) must be a multiple of the lane count "
                             f"out_lanes ({m}), not {self.depth!r}")
        _check_int("Weight integer bits (w_int)", self.w_int, 1, 32)
        _check_int("Weight fraction bits (w_frac)", self.w_frac, 0, 31)
        if not 4 <= self.w_int + self.w_frac <= 32:
            raise ValueError(f"Weight format Q{self.w_int}.{self.w_frac} must be 4..32 bits wide, "
                             f"not {self.w_int + self.w_frac}")
        _check_int("Coefficient bits (coef_bits)", self.coef_bits, 2, 32)
        _check_int("Coefficient fraction bits (coef_frac)", self.coef_frac, 0, 48)
        for flag in ("stochastic", "coord"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, not {getattr(self, flag)!r}")
        if self.mask not in MASKS:
            raise ValueError(f"Perturbation mask (mask) must be one of {', '.join(MASKS)}, "
                             f"not {self.mask!r}")
        if self.weights not in WEIGHT_MEMORIES:
            raise ValueError(f"Weight memory (weights) must be one of {', '.join(WEIGHT_MEMORIES)}"
                             f", not {self.weights!r}")
        if self.weights == "stream":
            bad = [f"{k}={v!r}" for k, v, ok in (
                ("reuse", self.generator.reuse, self.generator.reuse != "pregen"),
                ("coord", self.coord, not self.coord), ("mask", self.mask, self.mask == "none"))
                if not ok]
            if bad:
                raise ValueError(f"weights='stream' needs reuse none or onthefly, coord=False "
                                 f"and mask='none', not {', '.join(bad)} (a streamed pass keeps "
                                 f"two generators running; a pregen pool would be needed twice)")
        if self.coef_bits + self.generator.z_bits > 62:
            raise ValueError(f"Coefficient ({self.coef_bits} bits) times z "
                             f"({self.generator.z_bits} bits) must fit 62 bits")
        if self.stochastic and self.product_shift > 32:
            raise ValueError(f"Stochastic rounding draws at most 32 random bits, but the product "
                             f"shift coef_frac + z_frac - w_frac is {self.product_shift}")

    @property
    def lanes(self) -> int:
        return self.generator.out_lanes

    @property
    def w_bits(self) -> int:
        return self.w_int + self.w_frac

    @property
    def words(self) -> int:
        """Weight memory words (m weights each)."""
        return self.depth // self.lanes

    @property
    def product_shift(self) -> int:
        """Right shift taking coef*z to weight LSBs: coef_frac + z_frac - w_frac."""
        return self.coef_frac + self.generator.z_frac - self.w_frac

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["generator"] = self.generator.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "EngineConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown engine parameter(s) {', '.join(unknown)}; "
                              f"accepted: {', '.join(sorted(known))}")
        data = dict(data)
        gen = data.get("generator", {})
        if not isinstance(gen, GeneratorConfig):
            gen = GeneratorConfig.from_dict(_subtable(data, "generator", "the engine configuration"))
        data["generator"] = gen
        return cls(**data)

    def replace(self, **changes) -> "EngineConfig":
        return dataclasses.replace(self, **changes)

    def name(self) -> str:
        s = f"{self.generator.name()}-d{self.depth}-Q{self.w_int}.{self.w_frac}"
        if self.coord:
            s += "-coord"
        if self.mask != "none":
            s += f"-mask{self.mask}"
        if self.weights != "bram":
            s += f"-{self.weights}"
        return s


def split_assignments(assignments: dict):
    """KEY=VALUE overrides (parsed) split into (generator keys, engine keys): the engine's own
    fields (depth, w_int, coef_bits...) go to the [engine] table, every other key to
    [generator]."""
    eng = {k: v for k, v in assignments.items() if k in _ENGINE_KEYS}
    gen = {k: v for k, v in assignments.items() if k not in _ENGINE_KEYS}
    return gen, eng


#: The engine's own parameters (its fields but ``generator``): the keys split_assignments and
#: read_config_file send to the engine.
_ENGINE_KEYS = frozenset(f.name for f in fields(EngineConfig)) - {"generator"}


def load_engine_config(path=None, overrides=None, generator_overrides=None) -> EngineConfig:
    """Read an engine configuration from a file (:func:`read_config_file`: ``[engine]`` and
    ``[generator]`` tables or flat keys) over the dataclass defaults, then apply ``overrides``
    (engine keys) and ``generator_overrides``."""
    return EngineConfig.from_dict(_layered(_file(path), overrides, generator_overrides))


def load_over_default(default, path=None, overrides=None, generator_overrides=None) -> EngineConfig:
    """An engine configuration on top of ``default`` (an EngineConfig, e.g. a board's): the
    file's engine keys and ``overrides`` replace the default's; the file's generator keys (a
    ``[generator]`` table or flat ones), if it has any, replace the default generator, and
    ``generator_overrides`` apply last. Default keys that only make sense with the default's
    own choices are dropped when those change: ``pool_size`` unless the result is ``pregen``,
    ``out_lanes`` when ``lanes`` is overridden."""
    return EngineConfig.from_dict(_layered(_file(path), overrides, generator_overrides,
                                          default))
