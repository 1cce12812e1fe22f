// The Verilator-built board (pezo.sim.cosim.board): pezo.boards.top.UartBoard (engine + bridge +
// UART) compiled by Verilator, its serial lines bit-banged to a pseudo-terminal or a TCP socket.
//
// Host bytes are sent to the design's rx line as 8N1 characters (DIVISOR clocks per bit, back to
// back as a USB-serial adapter would send them); the design's tx line is sampled in the middle of
// each bit and every received character is written back to the host. A host therefore talks to
// it through pyserial exactly as to a board: the pty path, or socket://127.0.0.1:PORT.
//
// usage: board (--pty | --tcp PORT) --divisor D [--quiet CYCLES] [--parent PID]
// Prints "PORT <path or url>" on stdout once it is ready. While the line has been quiet for
// CYCLES clock cycles (default: long enough for the bridge's inter-byte timeout and its reply)
// it stops simulating and sleeps until the host sends something. On SIGTERM/SIGINT it prints
// "cycles=<n> bytes_in=<n> bytes_out=<n>" on stderr and exits.
// With --parent PID (the process that starts it) it does not outlive that process: on Linux the
// kernel kills it when the parent ends, however it ends (SIGKILL included), and it exits at once
// if the parent has already ended when it starts.
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <termios.h>
#include <unistd.h>
#include "verilated.h"
#include "Vpezo_board.h"

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int) { stop_flag = 1; }

struct Link {
    bool tcp = false;
    int listen_fd = -1, fd = -1, keep_slave = -1;
};

static void die(const char* what) { std::perror(what); std::exit(1); }

// An integer argument in lo..hi, or -1 (the caller prints the usage).
static long parse_long(const char* text, long lo, long hi) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) return -1;
    return v;
}

// Die with the parent: the kernel sends SIGKILL when the parent ends (the thread that forked
// us, in fact: pezo.sim.cosim.board starts the board from the thread that keeps it); then, as
// the parent may have ended before prctl() ran, check that it is still ours.
static void follow_parent(long parent) {
#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die("prctl");
#endif
    if ((long)getppid() != parent) {
        std::fprintf(stderr, "the parent process %ld has ended; not starting\n", parent);
        std::exit(1);
    }
}

static void open_pty(Link& l) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) || unlockpt(m)) die("pty");
    const char* name = ptsname(m);
    // Keep a slave descriptor open so the master never sees a hang-up between host sessions.
    int s = open(name, O_RDWR | O_NOCTTY);
    if (s < 0) die("pty slave");
    struct termios t;
    tcgetattr(s, &t);
    cfmakeraw(&t);
    tcsetattr(s, TCSANOW, &t);
    l.fd = m;
    l.keep_slave = s;
    std::printf("PORT %s\n", name);
    std::fflush(stdout);
}

static void open_tcp(Link& l, int port) {
    l.tcp = true;
    l.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l.listen_fd, (sockaddr*)&a, sizeof a) || listen(l.listen_fd, 1)) die("bind");
    socklen_t n = sizeof a;
    getsockname(l.listen_fd, (sockaddr*)&a, &n);
    std::printf("PORT socket://127.0.0.1:%d\n", ntohs(a.sin_port));
    std::fflush(stdout);
}

// The descriptor to exchange bytes on; for TCP, accepts a client when there is none (waiting at
// most timeout_ms); -1 if none yet.
static int host_fd(Link& l, int timeout_ms) {
    if (!l.tcp || l.fd >= 0) return l.fd;
    pollfd p{l.listen_fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return -1;
    l.fd = accept(l.listen_fd, nullptr, nullptr);
    if (l.fd >= 0) {
        int one = 1;
        setsockopt(l.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return l.fd;
}

static void drop_client(Link& l) {
    if (l.tcp && l.fd >= 0) { close(l.fd); l.fd = -1; }
}

int main(int argc, char** argv) {
    Link link;
    long divisor = 0, quiet_limit = -1, parent = 0;
    int mode = 0, port = 0;
    bool bad = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--pty") mode = 1;
        else if (a == "--tcp" && i + 1 < argc) {
            mode = 2;
            port = (int)parse_long(argv[++i], 0, 65535);
            bad |= port < 0;
        }
        else if (a == "--divisor" && i + 1 < argc) divisor = std::atol(argv[++i]);
        else if (a == "--quiet" && i + 1 < argc) quiet_limit = std::atol(argv[++i]);
        else if (a == "--parent" && i + 1 < argc) {
            parent = parse_long(argv[++i], 1, 0x7fffffffL);
            bad |= parent < 0;
        }
        else { std::fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
    }
    if (!mode || divisor < 4 || bad) {
        std::fprintf(stderr, "usage: %s (--pty | --tcp PORT (0..65535)) --divisor D (>= 4) "
                     "[--quiet N] [--parent PID]\n", argv[0]);
        return 2;
    }
    if (parent) follow_parent(parent);
    if (quiet_limit < 0) quiet_limit = 600L * 10 * divisor;   // > TIMEOUT_BYTES + a reply
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    std::signal(SIGPIPE, SIG_IGN);

    VerilatedContext ctx;
    Vpezo_board top{&ctx};
    top.rx = 1;
    top.rst = 1;
    for (int i = 0; i < 4; i++) { top.clk = 0; top.eval(); top.clk = 1; top.eval(); }
    top.rst = 0;
    if (mode == 1) open_pty(link); else open_tcp(link, port);

    std::deque<uint8_t> inq;
    std::string outbuf;
    uint64_t cycles = 0, bytes_in = 0, bytes_out = 0;
    long quiet = 0;
    int rx_bit = -1;          // host -> board: bit being sent (-1 idle, 0 start, 1-8 data, 9 stop)
    long rx_cnt = 0;
    uint8_t rx_byte = 0;
    int tx_bit = -1;          // board -> host: bit being sampled (-1 idle)
    long tx_cnt = 0;
    uint8_t tx_byte = 0;
    uint8_t buf[4096];

    while (!stop_flag) {
        bool idle = inq.empty() && rx_bit < 0 && tx_bit < 0 && quiet >= quiet_limit
                    && !top.active;
        int fd = host_fd(link, idle ? 200 : 0);
        if (fd >= 0) {
            pollfd p{fd, POLLIN, 0};
            if (poll(&p, 1, idle ? 200 : 0) > 0) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n > 0) {
                    inq.insert(inq.end(), buf, buf + n);
                    bytes_in += n;
                } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                    drop_client(link);
                }
            }
        }
        if (idle && inq.empty()) continue;
        for (int k = 0; k < 4096; k++) {
            // drive rx
            if (rx_bit < 0 && !inq.empty()) {
                rx_byte = inq.front();
                inq.pop_front();
                rx_bit = 0;
                rx_cnt = divisor;
            }
            if (rx_bit >= 0) {
                top.rx = rx_bit == 0 ? 0 : rx_bit <= 8 ? (rx_byte >> (rx_bit - 1)) & 1 : 1;
                if (--rx_cnt == 0) {
                    rx_cnt = divisor;
                    if (++rx_bit == 10) rx_bit = -1;
                }
            } else {
                top.rx = 1;
            }
            top.clk = 0; top.eval();
            top.clk = 1; top.eval();
            cycles++;
            // sample tx
            if (tx_bit < 0) {
                if (!top.tx) { tx_bit = 0; tx_cnt = divisor + divisor / 2; tx_byte = 0; }
            } else if (--tx_cnt == 0) {
                tx_cnt = divisor;
                if (tx_bit < 8) {
                    tx_byte |= (uint8_t)(top.tx << tx_bit);
                    tx_bit++;
                } else {
                    if (top.tx) { outbuf.push_back((char)tx_byte); bytes_out++; }
                    tx_bit = -1;
                }
            }
            // the design's own work (a training run) keeps the clock running too
            bool active = rx_bit >= 0 || tx_bit >= 0 || !inq.empty() || top.active;
            quiet = active ? 0 : quiet + 1;
            if (quiet >= quiet_limit) break;
            // a reply is complete when no new character starts within two character times:
            // hand it to the host now rather than at the end of the chunk
            if (!outbuf.empty() && quiet > 20 * divisor) break;
            // while the line is idle, look for host bytes every 256 cycles (not every 4096)
            if (k >= 256 && inq.empty() && rx_bit < 0 && tx_bit < 0) break;
        }
        if (!outbuf.empty()) {
            int ofd = link.fd;
            size_t off = 0;
            while (ofd >= 0 && off < outbuf.size()) {
                ssize_t n = write(ofd, outbuf.data() + off, outbuf.size() - off);
                if (n <= 0) { if (errno == EINTR || errno == EAGAIN) continue; drop_client(link); break; }
                off += n;
            }
            outbuf.clear();
        }
    }
    std::fprintf(stderr, "cycles=%llu bytes_in=%llu bytes_out=%llu\n",
                 (unsigned long long)cycles, (unsigned long long)bytes_in,
                 (unsigned long long)bytes_out);
    return 0;
}
