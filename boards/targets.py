"""Board targets: which amaranth-boards platform, and an engine configuration that fits it."""

import importlib
from dataclasses import dataclass, replace

from pezo.config import EngineConfig, GeneratorConfig

__all__ = ["Board", "BOARDS", "get_board", "clocked_board"]


@dataclass(frozen=True)
class Board:
    name: str
    platform: str            # "module:Class" in amaranth_boards
    family: str              # "ice40" or "ecp5"
    description: str
    default: EngineConfig
    dsp: bool = False        # the device has DSP blocks yosys can map multipliers to
    lut_cells: int = 0       # logic cells / LUTs available (for the fit check message)
    pll_mhz: float | None = None   # iCE40: clock the design from the PLL at this frequency

    def platform_class(self):
        mod, cls = self.platform.split(":")
        return getattr(importlib.import_module(mod), cls)


_UP5K = EngineConfig(
    generator=GeneratorConfig(lanes=4, reuse="pregen", pool_size=1024, scale="fixed"),
    depth=4096, w_int=4, w_frac=12)

BOARDS = {b.name: b for b in [
    Board("ice40", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40",
          "iCEBreaker, iCE40 UP5K (the default iCE40 board)", _UP5K, dsp=True, lut_cells=5280,
          pll_mhz=48.0),
    Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40",
          "iCEBreaker, iCE40 UP5K", _UP5K, dsp=True, lut_cells=5280, pll_mhz=48.0),
    Board("ice40-hx8k", "amaranth_boards.ice40_hx8k_b_evn:ICE40HX8KBEVNPlatform", "ice40",
          "iCE40-HX8K breakout board (no DSP)",
          EngineConfig(generator=GeneratorConfig(lanes=2, scale="fixed"), depth=2048,
                       coef_bits=12, coef_frac=16), lut_cells=7680),
    Board("icestick", "amaranth_boards.icestick:ICEStickPlatform", "ice40",
          "iCEstick, iCE40 HX1K (1,280 cells): block designs; the engine with its command link "
          "needs about 1,570 cells",
          EngineConfig(generator=GeneratorConfig(lanes=1, width=8, z_int=2, z_frac=6,
                                                 scale="fixed", state_bits=16),
                       depth=256, w_int=2, w_frac=6, coef_bits=8, coef_frac=10,
                       stochastic=False), lut_cells=1280),
    Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5",
          "ULX3S with ECP5 LFE5U-85F",
          EngineConfig(generator=GeneratorConfig(lanes=8, reuse="pregen", pool_size=4096),
                       depth=16384), dsp=True, lut_cells=83640),
]}


def get_board(name) -> Board:
    if name not in BOARDS:
        raise ValueError(f"Unknown board {name!r}; available: {', '.join(BOARDS)}")
    return BOARDS[name]


def clocked_board(board, config) -> Board:
    """``board`` as a design of ``config`` is built for it: a configuration with a
    ``pll_mhz`` (the training design's, :class:`pezo.sim.ontrain.TrainerConfig`) sets the
    clock of an iCE40 board with a PLL; on a board without one (the ULX3S runs from its
    oscillator) and for any other configuration the board is as it is."""
    mhz = getattr(config, "pll_mhz", None)
    if mhz is None or not board.pll_mhz:
        return board
    return replace(board, pll_mhz=float(mhz))
