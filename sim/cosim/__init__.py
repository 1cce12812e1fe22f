"""Co-simulation: the compiled Verilator harness of the generator and the cocotb testbenches and
runner that hold the generated Verilog to the golden models (layer: boards / host /
co-simulation, above the hardware)."""
