/*
 * The floor for benchmarks: the least a server of the twisted-chat protocol
 * can do for the load tool's scenarios, in C, with one epoll loop.  It
 * answers heartbeats and broadcasts messages (each frame built once, then
 * sent to every recipient), and nothing else: no names, no presence, no
 * timeouts, no limits, no checks.  It is not a server to use; it measures
 * what this machine's kernel costs a server that does the same sends, so
 * that a latency target can be judged against what any server reaches
 * here (docs/performance.rst).
 *
 *   cc -O2 -o floor_server benchmarks/floor_server.c
 *   ./floor_server PORT [--no-coalesce]
 *                              (127.0.0.1 only; prints "listening on N")
 *
 * Messages read in one pass of the loop go out together, as one send() per
 * recipient, as twisted-chat's room does; with --no-coalesce each message is
 * sent on its own, as a naive epoll server does.
 *
 * benchmarks/compare.py --floor builds and runs it itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_CLIENTS 65536
#define MAX_FRAME 65536

struct client {
    int fd;
    int id;
    char *in;          /* bytes read, not yet a whole frame */
    size_t in_len;
    char *out;         /* bytes the socket did not take */
    size_t out_len;
};

static struct client *clients[MAX_CLIENTS];
static int fds[MAX_CLIENTS], nfds;   /* connected sockets, for broadcasts */
static int epfd;
static long seq, guests;
/* Message frames read in this loop iteration, sent to everyone after it. */
static char *pending;
static size_t pending_len, pending_cap;
static int coalesce = 1;

static double now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}

static void drop(struct client *c)
{
    for (int i = 0; i < nfds; i++)
        if (fds[i] == c->fd) { fds[i] = fds[--nfds]; break; }
    close(c->fd);
    clients[c->fd] = NULL;
    free(c->in);
    free(c->out);
    free(c);
}

/* Send a whole frame; what the socket does not take waits for EPOLLOUT. */
static void send_bytes(struct client *c, const char *data, size_t len)
{
    if (c->out_len == 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0)
            n = (errno == EAGAIN) ? 0 : -1;
        if (n < 0) return;   /* the read side will see the error */
        data += n;
        len -= n;
        if (len == 0) return;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.fd = c->fd };
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
    c->out = realloc(c->out, c->out_len + len);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

/* A frame: 4-byte big-endian length, then the payload. */
static size_t make_frame(char *buf, const char *payload, size_t len)
{
    uint32_t n = htonl((uint32_t)len);
    memcpy(buf, &n, 4);
    memcpy(buf + 4, payload, len);
    return len + 4;
}

/* The raw JSON value after "key": in a payload (a number or a string). */
static int json_value(const char *p, size_t len, const char *key, const char **start, size_t *vlen)
{
    const char *k = memmem(p, len, key, strlen(key));
    if (!k) return 0;
    const char *s = k + strlen(key), *end = p + len;
    while (s < end && *s == ' ') s++;
    const char *e = s;
    if (e < end && *e == '"') {
        for (e++; e < end && *e != '"'; e++)
            if (*e == '\\') e++;
        e++;
    } else {
        while (e < end && *e != ',' && *e != '}' && *e != ' ') e++;
    }
    if (e > end) return 0;
    *start = s;
    *vlen = e - s;
    return 1;
}

/* Send everyone the pending frames, as one send() each. */
static void flush(void)
{
    for (int i = 0; i < nfds; i++)
        send_bytes(clients[fds[i]], pending, pending_len);
    pending_len = 0;
}

static void handle(struct client *c, const char *p, size_t len)
{
    static char payload[MAX_FRAME + 256], frame[MAX_FRAME + 260];
    const char *v;
    size_t vlen, n;
    if (memmem(p, len, "\"heartbeat\"", 11)) {
        if (json_value(p, len, "\"ts\":", &v, &vlen))
            n = snprintf(payload, sizeof payload, "{\"type\":\"heartbeat_ack\",\"ts\":%.*s,\"now\":%.6f}",
                         (int)vlen, v, now());
        else
            n = snprintf(payload, sizeof payload, "{\"type\":\"heartbeat_ack\",\"now\":%.6f}", now());
        send_bytes(c, frame, make_frame(frame, payload, n));
    } else if (memmem(p, len, "\"message\"", 9) && json_value(p, len, "\"text\":", &v, &vlen)
               && vlen < MAX_FRAME) {
        n = snprintf(payload, sizeof payload,
                     "{\"type\":\"message\",\"from\":\"guest-%d\",\"text\":%.*s,\"time\":%.6f,\"seq\":%ld}",
                     c->id, (int)vlen, v, now(), ++seq);
        size_t flen = make_frame(frame, payload, n);
        if (pending_len + flen > pending_cap) {
            pending_cap = (pending_len + flen) * 2;
            pending = realloc(pending, pending_cap);
        }
        memcpy(pending + pending_len, frame, flen);
        pending_len += flen;
        if (!coalesce)
            flush();
    }
}

static void readable(struct client *c)
{
    char buf[65536];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        drop(c);
        return;
    }
    c->in = realloc(c->in, c->in_len + n);
    memcpy(c->in + c->in_len, buf, n);
    c->in_len += n;
    size_t off = 0;
    while (c->in_len - off >= 4) {
        uint32_t len;
        memcpy(&len, c->in + off, 4);
        len = ntohl(len);
        if (len > MAX_FRAME) { drop(c); return; }
        if (c->in_len - off - 4 < len) break;
        handle(c, c->in + off + 4, len);
        off += 4 + len;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
}

static void writable(struct client *c)
{
    ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN) drop(c);
        return;
    }
    memmove(c->out, c->out + n, c->out_len - n);
    c->out_len -= n;
    if (c->out_len == 0) {
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = c->fd };
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void accepted(int fd)
{
    static char payload[512], frame[520];
    int one = 1;
    if (fd >= MAX_CLIENTS) { close(fd); return; }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct client *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->id = ++guests;
    clients[fd] = c;
    fds[nfds++] = fd;
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    size_t n = snprintf(payload, sizeof payload,
        "{\"type\":\"welcome\",\"protocol\":1,\"name\":\"guest-%d\",\"heartbeat_interval\":10.0,"
        "\"timeout\":30.0,\"max_frame\":65536,\"max_text\":4096,\"seq\":%ld,"
        "\"session\":\"s%d\",\"presence\":false}", c->id, seq, c->id);
    send_bytes(c, frame, make_frame(frame, payload, n));
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0, one = 1;
    if (argc > 2 && strcmp(argv[2], "--no-coalesce") == 0)
        coalesce = 0;
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 1024)
        || getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
        perror("floor_server");
        return 1;
    }
    printf("listening on %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    epfd = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, events[1024];
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(epfd, events, 1024, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
                    accepted(cfd);
                continue;
            }
            struct client *c = clients[fd];
            if (c && (events[i].events & EPOLLOUT)) writable(c);
            c = clients[fd];
            if (c && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readable(c);
        }
        if (pending_len)
            flush();
    }
}
