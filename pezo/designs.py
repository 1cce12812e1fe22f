"""Every design the project builds, in one registry (:data:`REGISTRY`), and how each is built.

``pezo generate NAME`` writes any of them; ``pezo synth --design NAME`` puts the ones with a
board wrapper on a board: ``engine`` (the default) behind the serial command bridge, and the
stream-producing blocks behind :class:`pezo.boards.wrapper.BlockWrapper`:

* ``train`` - the training design (:class:`pezo.hw.ontrain.OnChipTrainer`: the engine with
  on-chip MeZO training) behind the same bridge, configured by a
  :class:`~pezo.sim.ontrain.TrainerConfig` (a configuration file's ``[train]`` table selects it:
  :func:`file_design`);
* ``generator`` - the PeZO generator (bank -> reuse -> scaler) of the configuration;
* ``bank`` - the uniform RNG bank alone;
* ``passthrough`` - ports only, no logic: the wrapper's own cost, subtracted to get a block's
  marginal logic cells;
* ``clt4``, ``clt8``, ``clt12``, ``boxmuller`` - the Gaussian baselines (:mod:`pezo.hw.gauss`) at
  the generator's output lanes and output width (``z_int``/``z_frac``).

``scaler``, ``pool``, ``fanout`` and ``mac`` take an input stream and have no board wrapper: they
are generated (and simulated) but not synthesised on their own.
"""

import dataclasses
import json
from pathlib import Path
import re
from typing import Callable

from amaranth.back import rtlil, verilog
from amaranth.hdl import Shape

from pezo.boards.wrapper import PassThrough
from pezo.config import ConfigError, train_table
from pezo.hw.engine import PerturbEngine
from pezo.hw.gauss import make_gauss
from pezo.hw.generator import PerturbationGenerator
from pezo.hw.lfsr import UniformBank
from pezo.hw.mac import PerturbMAC
from pezo.hw.ontrain import OnChipTrainer
from pezo.hw.reuse import Fanout, PoolBuffer
from pezo.hw.scaler import Scaler
from pezo.sim.gauss import GaussConfig
from pezo.sim.ontrain import TrainerConfig

__all__ = ["Design", "REGISTRY", "DESIGNS", "BLOCK_DESIGNS", "GAUSS_DESIGNS", "design_block",
           "build", "design_name", "check_design", "write_design", "check_module_name",
           "design_config", "default_config", "file_design"]

GAUSS_DESIGNS = ("clt4", "clt8", "clt12", "boxmuller")


@dataclasses.dataclass(frozen=True)
class Design:
    """One design: ``build(cfg)`` gives its Amaranth component; ``config`` says which
    configuration it takes (``"engine"``: an EngineConfig; ``"generator"``: a GeneratorConfig;
    ``"train"``: a TrainerConfig);
    ``board`` says how it goes on a board: ``"bridge"`` (the engine behind the serial command
    bridge), ``"wrapper"`` (a stream-producing block behind the UART block wrapper) or None
    (generate only: a block with an input stream has no board wrapper)."""
    name: str
    build: Callable
    config: str
    board: str | None
    doc: str


def _gauss(name):
    return Design(name, lambda gen: make_gauss(gauss_config(name, gen)), "generator", "wrapper",
                  f"Gaussian baseline {name} at the generator's output lanes and format")


#: Every design, by name: the one registry that ``pezo generate``, ``pezo synth``, the power
#: estimate and ``make compare`` use.
REGISTRY = {d.name: d for d in [
    Design("engine", PerturbEngine, "engine", "bridge",
           "the perturbation engine (generator, MAC, weight memory, command decoder)"),
    Design("train", OnChipTrainer, "train", "bridge",
           "the training design: the engine with on-chip MeZO training (data SPRAM, forward "
           "pass, loss unit, sampler, step controller)"),
    Design("generator", PerturbationGenerator, "generator", "wrapper",
           "the PeZO generator: bank -> reuse -> scaler"),
    Design("bank", lambda gen: UniformBank(gen, rotate=gen.reuse == "onthefly"), "generator",
           "wrapper", "the uniform RNG bank alone"),
    Design("passthrough", lambda gen: PassThrough(gen.lanes, gen.width, gen.seed_width),
           "generator", "wrapper", "ports only, no logic: the wrapper's own cost"),
    Design("scaler", Scaler, "generator", None, "the adaptive scaler alone (input stream)"),
    Design("pool", PoolBuffer, "generator", None, "the pregen pool buffer alone (input stream)"),
    Design("fanout", Fanout, "generator", None, "the onthefly fan-out alone (input stream)"),
    Design("mac", PerturbMAC, "engine", None, "the perturbation MAC alone (input stream)"),
] + [_gauss(n) for n in GAUSS_DESIGNS]}

#: What ``pezo synth --design`` accepts (a board wrapper exists), the engine first.
DESIGNS = tuple(n for n, d in REGISTRY.items() if d.board)
BLOCK_DESIGNS = tuple(n for n, d in REGISTRY.items() if d.board == "wrapper")


def check_design(design, synthesisable=True):
    names = DESIGNS if synthesisable else tuple(REGISTRY)
    if design not in names:
        extra = ""
        if synthesisable and design in REGISTRY:
            extra = (f" ({design} has an input stream and no board wrapper: `pezo generate "
                     f"{design}` writes its Verilog)")
        raise ValueError(f"Design must be one of {', '.join(names)}, not {design!r}{extra}")
    return design


def build(design, cfg):
    """The Amaranth component of any registered design: ``cfg`` is an EngineConfig for the
    engine-configured designs (engine, mac), a TrainerConfig for ``train``, else a
    GeneratorConfig (an EngineConfig's generator is taken)."""
    return REGISTRY[design].build(design_config(design, cfg))


def design_config(design, cfg):
    """The configuration registered design ``design`` is built from, given ``cfg``: an
    EngineConfig's generator for the generator-configured designs, else ``cfg`` itself once
    checked (an EngineConfig for engine and mac, a TrainerConfig for train); a ValueError
    naming what is needed otherwise."""
    check_design(design, synthesisable=False)
    kind = REGISTRY[design].config
    if kind == "generator":
        return getattr(cfg, "generator", cfg)
    if kind == "train":
        if not isinstance(cfg, TrainerConfig):
            raise ValueError(f"Design {design} needs a trainer configuration (a [train] table, "
                             f"as in boards/configs/up5k-train.toml), not "
                             f"{type(cfg).__name__}")
    elif not hasattr(cfg, "generator"):
        raise ValueError(f"Design {design} needs an engine configuration (an [engine] table), "
                         f"not a generator configuration alone")
    return cfg


def gauss_config(design, gen):
    """The Gaussian baseline configuration matching generator configuration ``gen``: same output
    lanes, same output format, same master seed width."""
    kind, k = ("boxmuller", None) if design == "boxmuller" else ("clt", int(design[3:]))
    args = dict(kind=kind, lanes=gen.out_lanes, z_int=gen.z_int, z_frac=gen.z_frac,
                seed_width=gen.seed_width)
    if k is not None:
        args["k"] = k
    return GaussConfig(**args)


def design_block(design, gen):
    """The Amaranth component of wrapped block design ``design`` for generator configuration
    ``gen``."""
    check_design(design)
    if REGISTRY[design].board != "wrapper":
        raise ValueError("The engine is not a wrapped block; use pezo.boards.top.BoardTop")
    return build(design, gen)


def design_name(design, cfg):
    """Build folder name: the configuration's name, prefixed by the design unless it is the
    engine or the training design (whose configuration names already say what they are)."""
    if design in ("engine", "train"):
        return cfg.name()
    gen = getattr(cfg, "generator", cfg)
    if design in GAUSS_DESIGNS:
        return f"{design}-n{gen.out_lanes}-z{gen.z_int}.{gen.z_frac}"
    if design == "passthrough":
        return f"passthrough-n{gen.lanes}-w{gen.width}-s{gen.seed_width}"
    return f"{design}-{gen.name()}"


def default_config(design, board_default):
    """The configuration ``design`` is built with when none is given: the board's engine
    configuration ``board_default`` (or its generator's, for block designs), or the default
    TrainerConfig (the iCEBreaker's: boards/configs/up5k-train.toml) for ``train``."""
    check_design(design, synthesisable=False)
    if REGISTRY[design].config == "train":
        return TrainerConfig()
    return board_default


def file_design(path, design="engine", overrides=None):
    """The design a configuration file describes, and its configuration: ``("train",
    TrainerConfig)`` when ``path`` holds a ``[train]`` table (:func:`pezo.config.train_table`),
    else None (the file is an engine or generator configuration: :mod:`pezo.config` reads it).
    A ``[train]`` file takes ``design`` "engine" (the default) or "train" and no ``overrides``
    (--set); anything else is a ConfigError naming it."""
    table = train_table(path) if path is not None else None
    if table is None:
        return None
    if design not in ("engine", "train"):
        raise ConfigError(f"Configuration file {str(path)!r} describes the training design (a "
                          f"[train] table); the design must be train, not {design!r}")
    if overrides:
        raise ConfigError(f"--set does not apply to the training design's [train] table "
                          f"({str(path)!r}); edit the file instead of setting "
                          f"{', '.join(sorted(overrides))}")
    return "train", TrainerConfig.from_dict(table)


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def check_module_name(name):
    """``name`` if it is a plain Verilog identifier (a letter or ``_``, then letters, digits,
    ``_`` or ``$``), else a ValueError naming it."""
    if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name):
        raise ValueError(f"Module name must be a Verilog identifier (a letter or _, then "
                         f"letters, digits, _ or $), not {name!r}")
    return name


def write_design(design, cfg, out_dir, name=None, formats=("v", "il")):
    """Write Verilog and/or RTLIL of registered design ``design`` under configuration ``cfg``
    into ``out_dir``, with a JSON sidecar (configuration, latency, pass cycles, ports); returns
    the written paths."""
    check_design(design, synthesisable=False)
    name = check_module_name(name or f"pezo_{design}")
    bad = [f for f in formats if f not in ("v", "il")]
    if bad or not formats:
        raise ValueError(f"Output format must be 'v' or 'il', not {(bad or [''])[0]!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        dut = build(design, cfg)  # a fresh elaboration per back-end
        if fmt == "v":
            text = verilog.convert(dut, name=name, strip_internal_attrs=True)
        else:
            text = rtlil.convert(dut, name=name)
        path = out_dir / f"{name}.{fmt}"
        path.write_text(text)
        written.append(path)
    meta = {
        "block": design, "name": name, "config": cfg.to_dict(),
        "latency": getattr(dut, "latency", None),
        "pass_cycles": getattr(dut, "pass_cycles", None),
        "ports": {"__".join(map(str, path)): {"dir": member.flow.value,
                                              "width": Shape.cast(member.shape).width}
                  for path, member in dut.signature.members.flatten() if member.is_port},
    }
    meta_path = out_dir / f"{name}.json"
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    written.append(meta_path)
    return written
