"""The derived figures of a generator configuration (``pezo info``)."""

from pezo.hw.generator import generator_fill_cycles, generator_latency
from pezo.sim import scaler
from pezo.sim.lfsr import POLYNOMIALS

__all__ = ["config_info"]


def config_info(cfg):
    """A dict of ``cfg``'s derived figures: name, configuration, LFSR polynomial, the scaler's
    alpha (ideal, realised, relative error, CSD digits), z format, latency and fill cycles, and
    random bits per cycle."""
    rep = scaler.alpha_report(cfg)
    poly = " + ".join(f"x^{e}" if e > 1 else ("x" if e == 1 else "1")
                      for e in (cfg.state_bits,) + POLYNOMIALS[cfg.state_bits])
    return {
        "name": cfg.name(), "config": cfg.to_dict(), "polynomial": poly,
        "alpha0": rep["alpha0"], "alpha": rep["alpha"], "alpha_rel_error": rep["rel_error"],
        "alpha_digits": rep["digits"], "z_format": f"Q{cfg.z_int}.{cfg.z_frac}",
        "latency": generator_latency(cfg), "fill_cycles": generator_fill_cycles(cfg),
        "random_bits_per_cycle": cfg.lanes * cfg.width,
    }
