/* The floor msgbus's fan-out is compared with: what it costs a process just to hand one small
 * message to each of N loopback TCP subscribers, with one writev per subscriber (holding K
 * messages, each framed as an HTTP/1.1 chunk) and nothing else: no parsing, no queue, no poll.
 *
 * The writer (this process) listens, a forked reader connects N sockets and drains them with
 * epoll, checking that every byte arrives. Then M rounds: in each, every socket gets one writev.
 * Printed: the writer's CPU (user + system, getrusage) per delivery and its wall time per round,
 * which is the floor for "time to the last of N subscribers" of one message: the mean, and the
 * median and 99th percentile of the rounds (the first rounds pay for the sockets' first
 * buffers, as a server's first messages do).
 *
 *   cc -O2 -o /tmp/msgbus-floor loadtest/floor.c
 *   /tmp/msgbus-floor -n 1000 -m 1000 -s 128 -k 1
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of `count` sorted values (nearest rank). */
static double percentile(const double *sorted, int count, double q) {
    int rank = (int)(q * count + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > count) rank = count;
    return sorted[rank - 1];
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

/* The reader: N connections to `addr`, drained until each has `expect` bytes. Exit 0 if so. */
static int read_all(struct sockaddr_in addr, int n, long long expect) {
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    long long *got = calloc(n, sizeof *got);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((unsigned long long)i << 32) | (unsigned)fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    }
    int done = 0;
    static char buf[1 << 16];
    struct epoll_event events[256];
    while (done < n) {
        int k = epoll_wait(ep, events, 256, 30000);
        if (k <= 0) return 1; /* nothing for 30 s: the writer is gone */
        for (int e = 0; e < k; e++) {
            int i = (int)(events[e].data.u64 >> 32), fd = (int)(events[e].data.u64 & 0xffffffff);
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) return 1;
            got[i] += r;
            if (got[i] == expect) done++;
            if (got[i] > expect) return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    int n = 1000, m = 1000, size = 128, k = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "-n")) n = v;
        else if (!strcmp(argv[i], "-m")) m = v;
        else if (!strcmp(argv[i], "-s")) size = v;
        else if (!strcmp(argv[i], "-k")) k = v;
        else {
            fprintf(stderr, "usage: %s [-n subscribers] [-m messages] [-s bytes] [-k per writev]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || m < 1 || size < 1 || k < 1 || k > 300 || m % k) {
        fprintf(stderr, "need n, m, s >= 1, 1 <= k <= 300 and k dividing m\n");
        return 2;
    }

    /* One message as the server would frame it: chunk size line, body, CRLF. */
    char head[32];
    int head_len = snprintf(head, sizeof head, "%x\r\n", size);
    char *body = malloc(size);
    memset(body, 'x', size);
    long long per_message = head_len + size + 2;

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &len) < 0)
        die("listen");

    pid_t reader = fork();
    if (reader < 0) die("fork");
    if (reader == 0) _exit(read_all(addr, n, per_message * m));

    int *fds = malloc(n * sizeof *fds);
    for (int i = 0; i < n; i++) {
        fds[i] = accept(lfd, NULL, NULL);
        if (fds[i] < 0) die("accept");
        int one = 1;
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }

    struct iovec iov[3 * 300];
    for (int j = 0; j < k; j++) {
        iov[3 * j] = (struct iovec){head, head_len};
        iov[3 * j + 1] = (struct iovec){body, size};
        iov[3 * j + 2] = (struct iovec){"\r\n", 2};
    }
    long long calls = 0;
    double *round_ms = malloc((m / k) * sizeof *round_ms);
    double cpu0 = cpu_seconds(), wall0 = wall_seconds();
    for (int round = 0; round < m / k; round++) {
        double round0 = wall_seconds();
        for (int i = 0; i < n; i++) {
            long long want = per_message * k, sent = 0;
            struct iovec *v = iov;
            int count = 3 * k;
            static struct iovec rest[3 * 300], tmp[3 * 300];
            while (sent < want) {
                ssize_t w = writev(fds[i], v, count);
                calls++;
                if (w < 0) {
                    if (errno == EINTR) continue;
                    die("writev");
                }
                sent += w;
                if (sent == want) break;
                /* A short write (the reader is behind): go on from where it stopped. */
                size_t skip = (size_t)w;
                int c = 0;
                for (int j = 0; j < count; j++) {
                    if (skip >= v[j].iov_len) { skip -= v[j].iov_len; continue; }
                    tmp[c].iov_base = (char *)v[j].iov_base + skip;
                    tmp[c].iov_len = v[j].iov_len - skip;
                    skip = 0;
                    c++;
                }
                memcpy(rest, tmp, c * sizeof *tmp);
                v = rest;
                count = c;
            }
        }
        round_ms[round] = (wall_seconds() - round0) * 1e3 / k;
    }
    double cpu = cpu_seconds() - cpu0, wall = wall_seconds() - wall0;
    qsort(round_ms, m / k, sizeof *round_ms, by_value);
    int status = 0;
    waitpid(reader, &status, 0);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    double deliveries = (double)n * m;
    printf("n=%d m=%d size=%d k=%d calls=%lld writer_cpu=%.3fs wall=%.3fs "
           "cpu_us_per_delivery=%.3f wall_ms_per_message=%.3f wall_ms_p50=%.3f wall_ms_p99=%.3f "
           "reader_ok=%d\n",
           n, m, size, k, calls, cpu, wall, cpu * 1e6 / deliveries, wall * 1e3 / (m / k) / k,
           percentile(round_ms, m / k, 0.50), percentile(round_ms, m / k, 0.99), ok);
    return ok ? 0 : 1;
}
