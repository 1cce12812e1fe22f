"""PeZO: hardware generator and co-simulator for cheap zeroth-order training perturbations.

Sub-packages (one distribution, namespaced imports):

- :mod:`pezo.hw`     Amaranth 0.5 hardware (folder ``hw/``)
- :mod:`pezo.sim`    bit-exact NumPy golden models (folder ``sim/``); co-simulation in ``sim/cosim/``
- :mod:`pezo.host`   host-side code (folder ``host/``)
- :mod:`pezo.boards` board targets (folder ``boards/``)
"""

__version__ = "0.1.0"
