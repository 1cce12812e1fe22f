"""Renamed: the UART block wrapper is :mod:`pezo.boards.wrapper` (``BlockWrapper``, was
``BlockHarness``); "harness" now means only the Verilator harness (:mod:`pezo.sim.cosim.harness`)."""

raise ImportError("pezo.boards.harness was renamed pezo.boards.wrapper (BlockHarness -> "
                  "BlockWrapper); the Verilator harness is pezo.sim.cosim.harness")
