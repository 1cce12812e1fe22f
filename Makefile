# Thin layer over the `pezo` command and pytest: every target calls one Python entry point.
# Nothing needs an activated venv: the tools are found by pezo.toolchain.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

.PHONY: setup test test-fast regress fuzz formal bench distbench generate synth program report compare sweep calibrate parity algorithms quality clean help

help:
	@echo "make setup    - create .venv, install pinned dependencies, warm tool caches, Icarus via apt"
	@echo "make test     - the default test suite (unit, Amaranth simulator, cocotb subset)"
	@echo "make test-fast - the edit loop: make test without synthesis, cocotb, the simulated board, formal"
	@echo "make regress  - full cocotb matrix, long runs (10^8 values on Verilator), the 8-seed timing check, then make fuzz"
	@echo "make fuzz     - 10^5 random and mutated frames into the Verilator-built board (CASES=n, SEED=s)"
	@echo "make formal   - SymbiYosys proofs: LFSR never zero, MAC restore, bridge liveness and guards"
	@echo "make bench    - throughput of golden model, Amaranth simulator, Verilator; make test time"
	@echo "make distbench - distributed training: steps/s of 1 vs 2 Dask workers, bytes/step, crossover, accuracy"
	@echo "make generate - Verilog/RTLIL of the default generator into build/rtl (CONFIG=file)"
	@echo "make synth BOARD=ice40 [CONFIG=file] [DESIGN=d] [SEEDS=n] - yosys + nextpnr over n placement seeds"
	@echo "               (fmax spread, best kept; exit 3 if it misses the clock), report in build/<board>/<config>/"
	@echo "make program BOARD=ice40 - program a connected board (iceprog / openFPGALoader)"
	@echo "make report   - aggregate build/**/report.json into build/report (CSV, Markdown, PNG)"
	@echo "make compare [WORKERS=n] - the paper's comparison (Gaussian baselines vs PeZO) into docs/"
	@echo "make sweep [SWEEP='--set k=v1,v2'] [SWEEP_BOARDS=b1,b2] [WORKERS=n] - design-space sweep"
	@echo "               (synthesis + power, stream contract, short training) into build/sweep"
	@echo "make parity   - training quality: gaussian vs uniform vs pezo into docs/ (QUICK=1: reduced)"
	@echo "make algorithms - ZO-RankSGD, DeepZero, ElasticZO(-INT8) on every source into docs/algorithms.md"
	@echo "make calibrate - fit and validate the iCE40 power model into docs/power_calibration.md"
	@echo "make quality  - the stream contract of every mode over 2048 seeds into docs/quality.md"
	@echo "                (DIEHARDER=1: and dieharder -a on each mode, hours; Debian's dieharder)"

setup:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[extras]"
	$(PY) -m pezo setup

test:
	$(PYTEST) -q -n 2 -p no:cacheprovider

test-fast:
	$(PYTEST) -q -n 2 -p no:cacheprovider -m "not synth and not cocotb and not board and not formal and not regress"

regress:
	PEZO_REGRESS=1 $(PYTEST) -q -p no:cacheprovider -m "regress or cocotb"
	$(MAKE) fuzz

formal:
	$(PY) -m pezo formal

# The fuzzed board: a small engine (2 lanes, 64 weights) so that every case is quick. Every run
# draws a fresh seed and prints it; SEED=s replays one.
CASES ?= 100000
SEED ?=
fuzz:
	$(PY) -m pezo board fuzz --cases $(CASES) $(if $(SEED),--seed $(SEED)) --set depth=64 --set lanes=2 --set reuse=none --set pool_size=none

bench:
	$(PY) -m pezo bench

distbench:
	$(PY) -m pezo distbench

CONFIG ?=
generate:
	$(PY) -m pezo generate generator $(if $(CONFIG),--config $(CONFIG)) --out build/rtl

BOARD ?= ice40
# Placement seeds to try (from 1): all of them, the best kept and the fmax spread reported; a
# build whose best placement misses the clock exits 3 (ALLOW_TIMING_FAIL=1 keeps it).
SEEDS ?= 8
ALLOW_TIMING_FAIL ?=
synth:
	$(PY) -m pezo synth --board $(BOARD) $(if $(CONFIG),--config $(CONFIG)) $(if $(DESIGN),--design $(DESIGN)) $(if $(SEEDS),--seeds $(SEEDS) --all-seeds) $(if $(ALLOW_TIMING_FAIL),--allow-timing-fail)

program:
	$(PY) -m pezo program --board $(BOARD)

report:
	$(PY) -m pezo report build --out build/report

# Local Dask worker processes for compare and sweep (each runs one single-threaded nextpnr).
WORKERS ?= 2
compare:
	$(PY) -m pezo compare --paper --out docs --workers $(WORKERS)

# A small default grid (3 engines on the iCEBreaker: 1, 2, 4 lanes); SWEEP="--set k=v1,v2 ..."
# and SWEEP_BOARDS=ice40,ulx3s-85f choose another. Results are cached in build/sweep-cache.
SWEEP ?= --set lanes=1,2,4
SWEEP_BOARDS ?= ice40
sweep:
	$(PY) -m pezo sweep $(SWEEP) --boards $(SWEEP_BOARDS) --workers $(WORKERS) --out build/sweep

calibrate:
	$(PY) -m pezo calibrate --out docs

QUICK ?=
parity:
	$(PY) -m pezo parity $(if $(QUICK),--quick,--seeds 200 --no-pool) --out docs

algorithms:
	$(PY) -m pezo algorithms $(if $(QUICK),--quick) --out docs

# dieharder -a (hours per mode) runs only when asked: make quality DIEHARDER=1, where Debian's
# dieharder is installed; docs/streams.md has the subset table of every mode.
DIEHARDER ?=
quality:
	$(PY) -m pezo quality --modes --out docs $(if $(DIEHARDER),--dieharder)

clean:
	rm -rf build .pytest_cache
