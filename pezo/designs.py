"""The designs ``pezo synth --design`` can put on a board, and how each is built.

``engine`` is the complete perturbation engine behind the serial command port (the default).
Every other design is one stream-producing block behind :class:`pezo.boards.harness.BlockHarness`:

* ``generator`` - the PeZO generator (bank -> reuse -> scaler) of the configuration;
* ``bank`` - the uniform RNG bank alone;
* ``passthrough`` - ports only, no logic: the harness's own cost, subtracted to get a block's
  marginal logic cells;
* ``clt4``, ``clt8``, ``clt12``, ``boxmuller`` - the Gaussian baselines (:mod:`pezo.hw.gauss`) at
  the generator's output lanes and output width (``z_int``/``z_frac``).
"""

from pezo.boards.harness import PassThrough
from pezo.hw.gauss import make_gauss
from pezo.hw.generator import PerturbationGenerator
from pezo.hw.lfsr import UniformBank
from pezo.sim.gauss import GaussConfig

__all__ = ["DESIGNS", "BLOCK_DESIGNS", "GAUSS_DESIGNS", "design_block", "design_name",
           "check_design"]

GAUSS_DESIGNS = ("clt4", "clt8", "clt12", "boxmuller")
BLOCK_DESIGNS = ("generator", "bank", "passthrough") + GAUSS_DESIGNS
DESIGNS = ("engine",) + BLOCK_DESIGNS


def check_design(design):
    if design not in DESIGNS:
        raise ValueError(f"Design must be one of {', '.join(DESIGNS)}, not {design!r}")
    return design


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
    """The Amaranth component of block design ``design`` for generator configuration ``gen``."""
    check_design(design)
    if design == "engine":
        raise ValueError("The engine is not a harnessed block; use pezo.boards.top.BoardTop")
    if design == "generator":
        return PerturbationGenerator(gen)
    if design == "bank":
        return UniformBank(gen, rotate=gen.reuse == "onthefly")
    if design == "passthrough":
        return PassThrough(gen.lanes, gen.width, gen.seed_width)
    return make_gauss(gauss_config(design, gen))


def design_name(design, cfg):
    """Build folder name: the configuration's name, prefixed by the design unless it is the
    engine (whose configuration name already says what it is)."""
    if design == "engine":
        return cfg.name()
    gen = getattr(cfg, "generator", cfg)
    if design in GAUSS_DESIGNS:
        return f"{design}-n{gen.out_lanes}-z{gen.z_int}.{gen.z_frac}"
    if design == "passthrough":
        return f"passthrough-n{gen.lanes}-w{gen.width}-s{gen.seed_width}"
    return f"{design}-{gen.name()}"
