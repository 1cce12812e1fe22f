"""The power model of the project: the activity-based estimate (:mod:`pezo.power.model`), its
calibration on public UP5K measurements (:mod:`pezo.power.calibration`) and the VCD toggle counter
(:mod:`pezo.power.vcd`). ``from pezo.power import ...`` gives the model's public names."""

from pezo.power.model import (COEFFICIENTS, ECP5_COEFFICIENTS, UNCERTAIN, FAMILIES, CLOCK_SOURCES,
                              estimate_power, netlist_activity, block_testbench,
                              power_from_activity, power_range, reduction_range, corners,
                              board_clock, board_power, core_current_ua, parse_vcd_toggles)

__all__ = ["COEFFICIENTS", "ECP5_COEFFICIENTS", "UNCERTAIN", "FAMILIES", "CLOCK_SOURCES",
           "estimate_power", "netlist_activity", "block_testbench", "power_from_activity",
           "power_range", "reduction_range", "corners", "board_clock", "board_power",
           "core_current_ua", "parse_vcd_toggles"]
