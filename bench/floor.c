// The kernel's floor per delivery on loopback: the least a one-thread epoll relay can spend.
//
// A generator thread (pinned to CPU 1) holds MEMBERS client connections and sends RATE lines
// per second in all, round robin over the first SENDERS members; a relay thread (pinned to
// CPU 0) reads each line and sends it to every member, one send() each, as an IRC server does
// for a room message. The relay's own CPU time (CLOCK_THREAD_CPUTIME_ID, user and kernel) is
// divided by the deliveries: on loopback it includes the receiver's TCP processing and
// wake-ups, which the sender pays for.
//
// MODE adds what a durable server does per message on top of the bare relay:
//   bare     epoll_wait, recv, one send per member (the floor)
//   handoff  and a round trip to a second thread on the same CPU before sending (eventfd
//            there, eventfd back into the epoll set): what handing a commit to a store
//            thread costs without the store
//   fsync    and a 4 KiB pwrite + fdatasync of a file in the current directory per message,
//            on the relay thread (what a commit costs the CPU, without SQLite)
//   pairs    bare, but each line goes to its sender's partner only (member i ^ 1), as a
//            private message does (run it with SENDERS = MEMBERS)
//
// Build: cc -O2 -pthread -o floor bench/floor.c
// Usage: floor MEMBERS SENDERS RATE SECONDS [bare|handoff|fsync|pairs]
// Not part of CI: a measuring tool for docs/benchmarks.md ("At everyday load").
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int members, senders, rate, seconds;
static const char *mode = "bare";
static struct sockaddr_in addr;
static volatile int done;
static long long delivered_bytes;

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int to_store, from_store;

static void *store(void *arg) {
    (void)arg;
    pin(0);
    uint64_t n;
    while (read(to_store, &n, 8) == 8) {
        if (write(from_store, &n, 8) != 8) die("eventfd write");
    }
    return NULL;
}

static void *generator(void *arg) {
    int *fds = arg;
    pin(1);
    int ep = epoll_create1(0);
    for (int i = 0; i < members; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    int timer = timerfd_create(CLOCK_MONOTONIC, 0);
    long interval_ns = 1000000000L / rate;
    struct itimerspec its = {.it_interval = {interval_ns / 1000000000L, interval_ns % 1000000000L},
                             .it_value = {0, 1000000}};
    timerfd_settime(timer, 0, &its, NULL);
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = (uint32_t)-1};
    epoll_ctl(ep, EPOLL_CTL_ADD, timer, &tev);
    long long to_send = (long long)rate * seconds, sent = 0;
    char line[128];
    char buf[65536];
    struct epoll_event evs[256];
    while (!done) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u32 == (uint32_t)-1) {
                uint64_t ticks;
                if (read(timer, &ticks, 8) != 8) continue;
                for (uint64_t t = 0; t < ticks && sent < to_send; t++, sent++) {
                    int len = snprintf(line, sizeof line,
                                       "PRIVMSG #bench :%lld padding padding padding padding padding padding pad\r\n", sent);
                    if (send(fds[sent % senders], line, len, 0) != len) die("generator send");
                }
                if (sent >= to_send) {
                    struct itimerspec off = {0};
                    timerfd_settime(timer, 0, &off, NULL);
                }
            } else {
                ssize_t got = recv(fds[evs[i].data.u32], buf, sizeof buf, 0);
                if (got > 0) __atomic_add_fetch(&delivered_bytes, got, __ATOMIC_RELAXED);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: floor MEMBERS SENDERS RATE SECONDS [bare|handoff|fsync|pairs]\n");
        return 2;
    }
    members = atoi(argv[1]);
    senders = atoi(argv[2]);
    rate = atoi(argv[3]);
    seconds = atoi(argv[4]);
    if (argc > 5) mode = argv[5];
    pin(0);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&addr, sizeof addr) || listen(l, 4096)) die("listen");
    socklen_t alen = sizeof addr;
    getsockname(l, (struct sockaddr *)&addr, &alen);
    int *client = calloc(members, sizeof(int)), *server = calloc(members, sizeof(int));
    int one = 1;
    for (int i = 0; i < members; i++) {
        client[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(client[i], (struct sockaddr *)&addr, sizeof addr)) die("connect");
        server[i] = accept(l, NULL, NULL);
        setsockopt(server[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(client[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(server[i], F_SETFL, O_NONBLOCK);
    }
    int ep = epoll_create1(0);
    for (int i = 0; i < members; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, server[i], &ev);
    }
    int handoff = !strcmp(mode, "handoff"), durable = !strcmp(mode, "fsync"), pairs = !strcmp(mode, "pairs");
    pthread_t st;
    if (handoff) {
        to_store = eventfd(0, 0);
        from_store = eventfd(0, EFD_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)-1};
        epoll_ctl(ep, EPOLL_CTL_ADD, from_store, &ev);
        pthread_create(&st, NULL, store, NULL);
    }
    int file = -1;
    static char page[4096];
    if (durable) {
        file = open("floor.journal", O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (file < 0) die("open floor.journal");
    }
    pthread_t gen;
    pthread_create(&gen, NULL, generator, client);
    struct rusage r0, r1;
    getrusage(RUSAGE_THREAD, &r0);
    double cpu0 = thread_cpu();
    long long deliveries = 0, messages = 0, waits = 0;
    char buf[16384];
    char held[16384];
    int held_len = 0;
    struct epoll_event evs[256];
    long long expected = (long long)rate * seconds;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (messages < expected) {
        int n = epoll_wait(ep, evs, 256, 1000);
        waits++;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > seconds + 10) break;
        for (int i = 0; i < n; i++) {
            uint32_t who = evs[i].data.u32;
            if (who == (uint32_t)-1) {
                uint64_t v;
                if (read(from_store, &v, 8) != 8) continue;
                for (int m = 0; m < members; m++) send(server[m], held, held_len, 0);
                deliveries += members;
                continue;
            }
            ssize_t got = recv(server[who], buf, sizeof buf, 0);
            if (got <= 0) continue;
            messages++;
            if (durable) {
                if (pwrite(file, page, sizeof page, (messages % 256) * 4096) != sizeof page) die("pwrite");
                if (fdatasync(file)) die("fdatasync");
            }
            if (handoff) {
                memcpy(held, buf, got);
                held_len = got;
                uint64_t one64 = 1;
                if (write(to_store, &one64, 8) != 8) die("eventfd");
                continue;
            }
            if (pairs) {
                send(server[who ^ 1], buf, got, 0);
                deliveries++;
                continue;
            }
            for (int m = 0; m < members; m++) send(server[m], buf, got, 0);
            deliveries += members;
        }
    }
    double cpu = thread_cpu() - cpu0;
    getrusage(RUSAGE_THREAD, &r1);
    done = 1;
    pthread_join(gen, NULL);
    long vcs = r1.ru_nvcsw - r0.ru_nvcsw, ivcs = r1.ru_nivcsw - r0.ru_nivcsw;
    double ut = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6;
    double kt = (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    printf("mode=%s members=%d rate=%d messages=%lld deliveries=%lld epoll_waits=%lld\n", mode, members, rate,
           messages, deliveries, waits);
    printf("relay thread CPU %.3f s (user %.3f, sys %.3f): %.2f us per delivery, %.1f us per message, "
           "%.0f k deliveries per CPU-s; voluntary switches %ld, involuntary %ld\n",
           cpu, ut, kt, cpu / deliveries * 1e6, cpu / messages * 1e6, deliveries / cpu / 1e3, vcs, ivcs);
    if (durable) unlink("floor.journal");
    return 0;
}
