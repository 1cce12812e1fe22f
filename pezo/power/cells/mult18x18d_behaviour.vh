	// --- pezo.power: behavioural model (yosys ships MULT18X18D as a black box) -------------
	// Covers what yosys's ECP5 DSP mapping emits: a combinational 18x18 multiplier (no input,
	// pipeline or output registers), SIGNEDA/SIGNEDB per operand, SOURCEA/SOURCEB = 0.
	wire signed [18:0] pz_a = {SIGNEDA & A17, A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
	wire signed [18:0] pz_b = {SIGNEDB & B17, B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
	wire signed [37:0] pz_p = pz_a * pz_b;
	assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = pz_p[35:0];
	initial
		if (REG_INPUTA_CLK != "NONE" || REG_INPUTB_CLK != "NONE" || REG_PIPELINE_CLK != "NONE"
		    || REG_OUTPUT_CLK != "NONE" || MULT_BYPASS != "DISABLED")
			$fatal(1, "pezo.power MULT18X18D model: unsupported configuration");
