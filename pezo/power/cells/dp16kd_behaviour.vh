	// --- pezo.power: behavioural model (yosys ships DP16KD as a black box) -----------------
	// Covers what yosys's ECP5 memory mapping emits: NOREG outputs, CSDECODE 0b000, port widths
	// 1/2/4/9/18 (true dual port) or 36 (port A writes, port B reads), byte enables on the low
	// address bits (ADx1:0 at 18 bits, ADA3:0 at 36), WRITEMODE NORMAL / WRITETHROUGH /
	// READBEFOREWRITE, SYNC or ASYNC output reset. Layout (yosys's INITVAL layout): 1,024 words
	// of 18 bits (two 9-bit bytes); widths below 9 use the data bits in order and skip the
	// parity bits 8 and 17; a 36-bit word at address a is the 18-bit words 2a (bits 17:0) and
	// 2a+1. pz_reads_a/b and pz_writes_a/b toggle once per read and per write of a port
	// (pezo.power counts them): a write is a clock-enabled cycle with WE and a byte enabled; a
	// read is a clock-enabled cycle of a port whose output is enabled (OCE) and updated (not a
	// NORMAL-mode write, which keeps the output): a read-before-write cycle is both.
	wire [17:0] pz_dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
	wire [17:0] pz_dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
	wire [13:0] pz_ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
	wire [13:0] pz_adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
	reg [17:0] pz_mem [0:1023];
	reg [17:0] pz_doa = 18'd0, pz_dob = 18'd0;
	reg [35:0] pz_do36 = 36'd0;
	reg pz_reads_a = 1'b0, pz_writes_a = 1'b0, pz_reads_b = 1'b0, pz_writes_b = 1'b0;
	assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = DATA_WIDTH_B == 36 ? pz_do36[17:0] : pz_doa;
	assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = DATA_WIDTH_B == 36 ? pz_do36[35:18] : pz_dob;

	task pz_load(input [319:0] v, input integer base);
		integer j;
		for (j = 0; j < 16; j = j + 1) pz_mem[base * 16 + j] = v[j * 20 +: 18];
	endtask
	initial begin
		if (REGMODE_A != "NOREG" || REGMODE_B != "NOREG" || CSDECODE_A != "0b000"
		    || CSDECODE_B != "0b000" || DATA_WIDTH_B == 36 && DATA_WIDTH_A != 36)
			$fatal(1, "pezo.power DP16KD model: unsupported configuration");
		pz_load(INITVAL_00, 0);
		pz_load(INITVAL_01, 1);
		pz_load(INITVAL_02, 2);
		pz_load(INITVAL_03, 3);
		pz_load(INITVAL_04, 4);
		pz_load(INITVAL_05, 5);
		pz_load(INITVAL_06, 6);
		pz_load(INITVAL_07, 7);
		pz_load(INITVAL_08, 8);
		pz_load(INITVAL_09, 9);
		pz_load(INITVAL_0A, 10);
		pz_load(INITVAL_0B, 11);
		pz_load(INITVAL_0C, 12);
		pz_load(INITVAL_0D, 13);
		pz_load(INITVAL_0E, 14);
		pz_load(INITVAL_0F, 15);
		pz_load(INITVAL_10, 16);
		pz_load(INITVAL_11, 17);
		pz_load(INITVAL_12, 18);
		pz_load(INITVAL_13, 19);
		pz_load(INITVAL_14, 20);
		pz_load(INITVAL_15, 21);
		pz_load(INITVAL_16, 22);
		pz_load(INITVAL_17, 23);
		pz_load(INITVAL_18, 24);
		pz_load(INITVAL_19, 25);
		pz_load(INITVAL_1A, 26);
		pz_load(INITVAL_1B, 27);
		pz_load(INITVAL_1C, 28);
		pz_load(INITVAL_1D, 29);
		pz_load(INITVAL_1E, 30);
		pz_load(INITVAL_1F, 31);
		pz_load(INITVAL_20, 32);
		pz_load(INITVAL_21, 33);
		pz_load(INITVAL_22, 34);
		pz_load(INITVAL_23, 35);
		pz_load(INITVAL_24, 36);
		pz_load(INITVAL_25, 37);
		pz_load(INITVAL_26, 38);
		pz_load(INITVAL_27, 39);
		pz_load(INITVAL_28, 40);
		pz_load(INITVAL_29, 41);
		pz_load(INITVAL_2A, 42);
		pz_load(INITVAL_2B, 43);
		pz_load(INITVAL_2C, 44);
		pz_load(INITVAL_2D, 45);
		pz_load(INITVAL_2E, 46);
		pz_load(INITVAL_2F, 47);
		pz_load(INITVAL_30, 48);
		pz_load(INITVAL_31, 49);
		pz_load(INITVAL_32, 50);
		pz_load(INITVAL_33, 51);
		pz_load(INITVAL_34, 52);
		pz_load(INITVAL_35, 53);
		pz_load(INITVAL_36, 54);
		pz_load(INITVAL_37, 55);
		pz_load(INITVAL_38, 56);
		pz_load(INITVAL_39, 57);
		pz_load(INITVAL_3A, 58);
		pz_load(INITVAL_3B, 59);
		pz_load(INITVAL_3C, 60);
		pz_load(INITVAL_3D, 61);
		pz_load(INITVAL_3E, 62);
		pz_load(INITVAL_3F, 63);
	end

	// Lowest bit of a narrow word inside its 18-bit word (sub: the address bits 3:0).
	function integer pz_pos(input integer width, input [3:0] sub);
		case (width)
			9: pz_pos = sub[3] ? 9 : 0;
			4: pz_pos = 4 * sub[3:2] + (sub[3] ? 1 : 0);
			2: pz_pos = 2 * sub[3:1] + (sub[3] ? 1 : 0);
			1: pz_pos = sub[3:0] + (sub[3] ? 1 : 0);
			default: pz_pos = 0;
		endcase
	endfunction
	function [17:0] pz_merge(input [17:0] old, input integer width, input [3:0] sub,
	                         input [17:0] d);
		reg [17:0] m;
		begin
			if (width >= 18)
				pz_merge = {sub[1] ? d[17:9] : old[17:9], sub[0] ? d[8:0] : old[8:0]};
			else begin
				m = ((18'd1 << width) - 18'd1) << pz_pos(width, sub);
				pz_merge = (old & ~m) | ((d << pz_pos(width, sub)) & m);
			end
		end
	endfunction
	function [17:0] pz_pick(input [17:0] word, input integer width, input [3:0] sub);
		pz_pick = width >= 18 ? word : (word >> pz_pos(width, sub)) & ((18'd1 << width) - 18'd1);
	endfunction

	wire pz_clka = CLKAMUX == "INV" ? ~CLKA : CLKA;
	wire pz_clkb = CLKBMUX == "INV" ? ~CLKB : CLKB;
	wire pz_arst_a = RESETMODE == "ASYNC" && RSTA;
	wire pz_arst_b = RESETMODE == "ASYNC" && RSTB;
	wire [9:0] pz_wa = pz_ada[13:4];
	wire [9:0] pz_wb = pz_adb[13:4];
	wire [9:0] pz_wa0 = {pz_ada[13:5], 1'b0};
	wire [9:0] pz_wa1 = {pz_ada[13:5], 1'b1};
	wire [9:0] pz_wb0 = {pz_adb[13:5], 1'b0};
	wire [9:0] pz_wb1 = {pz_adb[13:5], 1'b1};
	wire pz_wr_a = CEA && WEA && (DATA_WIDTH_A == 36 ? |pz_ada[3:0]
	                              : DATA_WIDTH_A == 18 ? |pz_ada[1:0] : 1'b1);
	wire pz_wr_b = CEB && WEB && (DATA_WIDTH_B == 18 ? |pz_adb[1:0] : 1'b1);

	always @(posedge pz_clka or posedge pz_arst_a) begin
		if (pz_arst_a)
			pz_doa <= 18'd0;
		else begin
			if (pz_wr_a) begin
				if (DATA_WIDTH_A == 36) begin
					pz_mem[pz_wa0] <= pz_merge(pz_mem[pz_wa0], 18, {2'b00, pz_ada[1:0]}, pz_dia);
					pz_mem[pz_wa1] <= pz_merge(pz_mem[pz_wa1], 18, {2'b00, pz_ada[3:2]}, pz_dib);
				end else
					pz_mem[pz_wa] <= pz_merge(pz_mem[pz_wa], DATA_WIDTH_A, pz_ada[3:0], pz_dia);
			end
			if (pz_wr_a)
				pz_writes_a <= ~pz_writes_a;
			if (CEA && OCEA && DATA_WIDTH_A != 36 && (!pz_wr_a || WRITEMODE_A != "NORMAL"))
				pz_reads_a <= ~pz_reads_a;
			if (DATA_WIDTH_A != 36) begin
				if (RESETMODE == "SYNC" && RSTA)
					pz_doa <= 18'd0;
				else if (CEA && (!pz_wr_a || WRITEMODE_A == "READBEFOREWRITE"))
					pz_doa <= pz_pick(pz_mem[pz_wa], DATA_WIDTH_A, pz_ada[3:0]);
				else if (CEA && WRITEMODE_A == "WRITETHROUGH")
					pz_doa <= pz_pick(pz_merge(pz_mem[pz_wa], DATA_WIDTH_A, pz_ada[3:0], pz_dia),
					                  DATA_WIDTH_A, pz_ada[3:0]);
			end
		end
	end

	always @(posedge pz_clkb or posedge pz_arst_b) begin
		if (pz_arst_b) begin
			pz_dob <= 18'd0;
			pz_do36 <= 36'd0;
		end else begin
			if (pz_wr_b && DATA_WIDTH_B != 36)
				pz_mem[pz_wb] <= pz_merge(pz_mem[pz_wb], DATA_WIDTH_B, pz_adb[3:0], pz_dib);
			if (pz_wr_b && DATA_WIDTH_B != 36)
				pz_writes_b <= ~pz_writes_b;
			if (CEB && OCEB && (!pz_wr_b || WRITEMODE_B != "NORMAL"))
				pz_reads_b <= ~pz_reads_b;
			if (DATA_WIDTH_B == 36) begin
				if (RESETMODE == "SYNC" && RSTB)
					pz_do36 <= 36'd0;
				else if (CEB)
					pz_do36 <= {pz_mem[pz_wb1], pz_mem[pz_wb0]};
			end else if (RESETMODE == "SYNC" && RSTB)
				pz_dob <= 18'd0;
			else if (CEB && (!pz_wr_b || WRITEMODE_B == "READBEFOREWRITE"))
				pz_dob <= pz_pick(pz_mem[pz_wb], DATA_WIDTH_B, pz_adb[3:0]);
			else if (CEB && WRITEMODE_B == "WRITETHROUGH")
				pz_dob <= pz_pick(pz_merge(pz_mem[pz_wb], DATA_WIDTH_B, pz_adb[3:0], pz_dib),
				                  DATA_WIDTH_B, pz_adb[3:0]);
		end
	end
