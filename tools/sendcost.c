/*
 * sendcost: server CPU per reply of the three ways a get's reply can leave, on loopback TCP
 * (issue 18). Not part of the build; the figures behind PROTO_INLINE_VALUE_MAX
 * (protocol/internal.h) and the arena's huge pages (storage/slab.c arena_reserve):
 *
 *   cc -O2 -o /tmp/sendcost tools/sendcost.c -lpthread
 *   taskset -c 0 /tmp/sendcost VALUE_BYTES ITEMS HUGE    (e.g. 1024 100000 0)
 *
 * ITEMS values of VALUE_BYTES lie in one mmap'd "arena" (HUGE=1: MADV_HUGEPAGE), like items;
 * each reply picks one at random and is sent on a TCP loopback socket that a second thread
 * drains:
 *   copy+send      header, value and "\r\nEND\r\n" copied into one buffer, send()
 *   3iov sendmsg   header | value in its item | trailer as three iovecs, sendmsg()
 *   copy+sendmsg1  as copy+send, through sendmsg() with one iovec
 * Prints the sending thread's CPU time per reply (CLOCK_THREAD_CPUTIME_ID, so other load on
 * the machine matters less than for wall-clock figures), the three interleaved in rounds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 60
#define WARM_ROUNDS 5
#define PER_ROUND 2000

static int rfd;

static void *drain(void *arg)
{
    static char b[65536];
    (void)arg;
    while (read(rfd, b, sizeof b) > 0)
        ;
    return NULL;
}

static double cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    size_t vlen = argc > 1 ? (size_t)atol(argv[1]) : 1024;
    size_t nitems = argc > 2 ? (size_t)atol(argv[2]) : 100000;
    int huge = argc > 3 ? atoi(argv[3]) : 0;
    if (vlen == 0 || vlen > 16000 || nitems == 0) {
        fprintf(stderr, "usage: sendcost VALUE_BYTES(1..16000) ITEMS HUGE(0|1)\n");
        return 2;
    }
    size_t stride = (vlen + 64 + 63) & ~(size_t)63;
    size_t bytes = nitems * stride;
    char *arena = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arena == MAP_FAILED)
        return 1;
    if (huge)
        madvise(arena, bytes, MADV_HUGEPAGE);
    memset(arena, 'x', bytes);

    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) < 0)
        return 1;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0)
        return 1;
    rfd = accept(l, NULL, NULL);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t th;
    pthread_create(&th, NULL, drain, NULL);

    static const char trailer[] = "\r\nEND\r\n";
    char hdr[64];
    size_t hl = (size_t)snprintf(hdr, sizeof hdr, "VALUE key:0000000000001 0 %zu\r\n", vlen);
    static char out[16384 + 128];
    double tot[3] = {0};
    long cnt[3] = {0};
    uint64_t x = 88172645463325252ull; /* xorshift64 */
    for (int round = 0; round < ROUNDS; round++) {
        for (int mode = 0; mode < 3; mode++) {
            double t0 = cpu_ns();
            for (int i = 0; i < PER_ROUND; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                const char *it = arena + (x % nitems) * stride;
                memcpy(out, hdr, hl);
                if (mode == 1) {
                    struct iovec iov[3] = {{out, hl}, {(void *)it, vlen}, {(void *)trailer, 7}};
                    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};
                    sendmsg(s, &m, MSG_NOSIGNAL);
                    continue;
                }
                memcpy(out + hl, it, vlen);
                memcpy(out + hl + vlen, trailer, 7);
                if (mode == 0) {
                    send(s, out, hl + vlen + 7, MSG_NOSIGNAL);
                } else {
                    struct iovec iov[1] = {{out, hl + vlen + 7}};
                    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 1};
                    sendmsg(s, &m, MSG_NOSIGNAL);
                }
            }
            if (round >= WARM_ROUNDS) {
                tot[mode] += cpu_ns() - t0;
                cnt[mode] += PER_ROUND;
            }
        }
    }
    printf("value %zu B, %zu items, huge pages %d: copy+send %.0f ns, 3iov sendmsg %.0f ns, "
           "copy+sendmsg1 %.0f ns per reply\n",
           vlen, nitems, huge, tot[0] / cnt[0], tot[1] / cnt[1], tot[2] / cnt[2]);
    return 0;
}
