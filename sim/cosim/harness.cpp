// Compiled Verilator harness for the PeZO perturbation generator (pezo.sim.harness).
//
// Resets the design, loads a master seed, then streams `beats` transfers from o with o.ready
// driven by a xorshift64 generator (`ready_pct` percent high), writing every transferred payload
// (Verilator spells the Amaranth port o__ready as o___05Fready) to a binary file (little-endian 32-bit words per beat). Python compares the file with the golden
// model in bulk. Prints "cycles=<n> seconds=<t>" on stdout.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <vector>
#include "verilated.h"
#include "Vpezo_generator.h"

#ifndef PAYLOAD_WORDS
#error "PAYLOAD_WORDS (32-bit words per payload) must be defined"
#endif

static void tick(Vpezo_generator* top) {
    top->clk = 0; top->eval();
    top->clk = 1; top->eval();
}

template <typename T> static void put(std::vector<uint32_t>& buf, const T& v);
// Payload up to 64 bits is a scalar in Verilator's interface, wider ones are VlWide arrays.
#if PAYLOAD_WORDS <= 2
template <typename T> static void put(std::vector<uint32_t>& buf, const T& v) {
    uint64_t x = (uint64_t)v;
    buf.push_back((uint32_t)x);
    if (PAYLOAD_WORDS == 2) buf.push_back((uint32_t)(x >> 32));
}
#else
template <typename T> static void put(std::vector<uint32_t>& buf, const T& v) {
    for (int i = 0; i < PAYLOAD_WORDS; i++) buf.push_back(v[i]);
}
#endif

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s OUT BEATS SEED READY_PCT RNG_SEED\n", argv[0]);
        return 2;
    }
    const char* out_path = argv[1];
    uint64_t beats = std::strtoull(argv[2], nullptr, 0);
    uint64_t seed = std::strtoull(argv[3], nullptr, 0);
    unsigned ready_pct = (unsigned)std::strtoul(argv[4], nullptr, 0);
    uint64_t x = std::strtoull(argv[5], nullptr, 0) | 1;

    FILE* out = std::fopen(out_path, "wb");
    if (!out) { std::perror(out_path); return 1; }
    VerilatedContext ctx;
    Vpezo_generator* top = new Vpezo_generator{&ctx};
    top->rst = 1; top->o___05Fready = 0; top->seed_load = 0;
    tick(top); tick(top);
    top->rst = 0;
    top->seed = seed; top->seed_load = 1;
    tick(top);
    top->seed_load = 0;

    std::vector<uint32_t> buf;
    buf.reserve(PAYLOAD_WORDS * 65536);
    uint64_t got = 0, cycles = 0;
    auto t0 = std::chrono::steady_clock::now();
    while (got < beats) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        top->o___05Fready = (x % 100) < ready_pct;
        top->clk = 0; top->eval();
        if (top->o___05Fvalid && top->o___05Fready) {
            put(buf, top->o___05Fpayload);
            got++;
            if (buf.size() >= PAYLOAD_WORDS * 65536u) {
                std::fwrite(buf.data(), 4, buf.size(), out);
                buf.clear();
            }
        }
        top->clk = 1; top->eval();
        cycles++;
    }
    std::fwrite(buf.data(), 4, buf.size(), out);
    std::fclose(out);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("cycles=%llu seconds=%.6f\n", (unsigned long long)cycles, secs);
    top->final();
    delete top;
    return 0;
}
