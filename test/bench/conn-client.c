/*
 * The client of the connection benchmarks, in C so that the client is not
 * what is measured. One thread, epoll, non-blocking sockets.
 *
 *   conn-client rate HOST PORTS CONC SECONDS [DNS_HOST DNS_PORT NAME]
 *     CONC connections at a time, each: connect, write one byte, read the
 *     echoed byte, close; then the next. PORTS is a comma-separated list
 *     used in turn. With DNS_*, each connection first resolves NAME there
 *     (A and AAAA over UDP, as getaddrinfo does) and connects to the A
 *     answer. Prints one JSON line: connections, errors, seconds, rate and
 *     the latency from the first packet (query or SYN) to the echoed byte,
 *     p50/p90/p99/max in microseconds.
 *
 *   conn-client hold HOST PORT COUNT
 *     Opens COUNT connections (256 dialling at a time), each echoing one
 *     byte, prints "held N errors E" and keeps them open until stdin is
 *     closed or a signal ends it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A connection not done by then is counted as an error; holding thousands through a loaded proxy takes longer. */
#define TIMEOUT_US 3000000
#define HOLD_TIMEOUT_US 60000000

enum state { IDLE, RESOLVING, CONNECTING, ECHOING, HELD };

struct slot {
  enum state state;
  int fd;
  int udp;
  uint64_t started;
  int answers_needed;
  uint16_t ids[2];
  struct in_addr resolved;
  int port;
};

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int ep;
static struct slot *slots;
static struct in_addr host;
static int *ports;
static int nports;
static int next_port;
static int resolve;
static struct sockaddr_in dns_addr;
static unsigned char query_a[512], query_aaaa[512];
static size_t query_len;
static uint16_t next_id = 1;
static uint32_t *samples;
static size_t nsamples, capsamples;
static long errors;

static void record(uint64_t us) {
  if (nsamples == capsamples) {
    capsamples = capsamples ? capsamples * 2 : 65536;
    samples = realloc(samples, capsamples * sizeof *samples);
  }
  samples[nsamples++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static size_t encode_query(unsigned char *out, const char *name, uint16_t type) {
  size_t n = 12;
  memset(out, 0, 12);
  out[2] = 0x01; /* RD */
  out[5] = 1;    /* QDCOUNT */
  const char *p = name;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    out[n++] = (unsigned char)len;
    memcpy(out + n, p, len);
    n += len;
    p += len;
    if (*p == '.') p++;
  }
  out[n++] = 0;
  out[n++] = 0;
  out[n++] = (unsigned char)type;
  out[n++] = 0;
  out[n++] = 1; /* IN */
  return n;
}

/* Skip a name at off; returns the offset after it or 0 when malformed. */
static size_t skip_name(const unsigned char *m, size_t len, size_t off) {
  while (off < len) {
    unsigned char l = m[off];
    if (l == 0) return off + 1;
    if ((l & 0xC0) == 0xC0) return off + 2 <= len ? off + 2 : 0;
    off += 1 + l;
  }
  return 0;
}

/* The first A record of the answer section, if any. */
static int first_a(const unsigned char *m, size_t len, struct in_addr *out) {
  if (len < 12) return 0;
  int qd = m[4] << 8 | m[5], an = m[6] << 8 | m[7];
  size_t off = 12;
  for (int i = 0; i < qd; i++) {
    off = skip_name(m, len, off);
    if (!off || off + 4 > len) return 0;
    off += 4;
  }
  for (int i = 0; i < an; i++) {
    off = skip_name(m, len, off);
    if (!off || off + 10 > len) return 0;
    int type = m[off] << 8 | m[off + 1];
    int rdlen = m[off + 8] << 8 | m[off + 9];
    off += 10;
    if (off + (size_t)rdlen > len) return 0;
    if (type == 1 && rdlen == 4) {
      memcpy(out, m + off, 4);
      return 1;
    }
    off += (size_t)rdlen;
  }
  return 0;
}

static void drop(struct slot *s) {
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  s->state = IDLE;
}

static void dial(int i, struct in_addr addr) {
  struct slot *s = &slots[i];
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0) {
    errors++;
    s->state = IDLE;
    return;
  }
  int one = 1;
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port), .sin_addr = addr};
  if (connect(s->fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS) {
    errors++;
    drop(s);
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)i << 1};
  epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
  s->state = CONNECTING;
}

static void begin(int i) {
  struct slot *s = &slots[i];
  s->started = now_us();
  s->port = ports[next_port++ % nports];
  if (!resolve) {
    dial(i, host);
    return;
  }
  for (int q = 0; q < 2; q++) {
    unsigned char *msg = q ? query_aaaa : query_a;
    s->ids[q] = next_id++;
    msg[0] = (unsigned char)(s->ids[q] >> 8);
    msg[1] = (unsigned char)s->ids[q];
    if (send(s->udp, msg, query_len, 0) < 0) {
      errors++;
      s->state = IDLE;
      return;
    }
  }
  s->answers_needed = 2;
  s->resolved.s_addr = 0;
  s->state = RESOLVING;
}

static void on_udp(int i) {
  struct slot *s = &slots[i];
  unsigned char m[4096];
  for (;;) {
    ssize_t n = recv(s->udp, m, sizeof m, 0);
    if (n < 12) return;
    if (s->state != RESOLVING) continue;
    uint16_t id = (uint16_t)(m[0] << 8 | m[1]);
    if (id != s->ids[0] && id != s->ids[1]) continue;
    struct in_addr a;
    if (first_a(m, (size_t)n, &a)) s->resolved = a;
    if (--s->answers_needed == 0) {
      if (s->resolved.s_addr == 0) {
        errors++;
        s->state = IDLE;
      } else dial(i, s->resolved);
    }
  }
}

static void on_tcp(int i, uint32_t events, int hold) {
  struct slot *s = &slots[i];
  if (s->state == CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err || (events & (EPOLLERR | EPOLLHUP))) {
      errors++;
      drop(s);
      return;
    }
    if (write(s->fd, "x", 1) != 1) {
      errors++;
      drop(s);
      return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i << 1};
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
    s->state = ECHOING;
    return;
  }
  if (s->state == ECHOING) {
    char c;
    ssize_t n = read(s->fd, &c, 1);
    if (n == 1) {
      record(now_us() - s->started);
      if (hold) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
        s->state = HELD;
        return;
      }
      drop(s);
      s->state = IDLE;
      return;
    }
    if (n < 0 && errno == EAGAIN) return;
    errors++;
    drop(s);
  }
}

static int parse_ports(const char *list) {
  nports = 1;
  for (const char *p = list; *p; p++) nports += *p == ',';
  ports = calloc((size_t)nports, sizeof *ports);
  int k = 0;
  for (char *p = (char *)list; *p;) {
    ports[k++] = (int)strtol(p, &p, 10);
    if (*p == ',') p++;
  }
  return k == nports;
}

static int percentile(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static uint32_t at(double q) {
  if (!nsamples) return 0;
  size_t k = (size_t)(q * (double)(nsamples - 1) + 0.5);
  return samples[k];
}

static int usage(void) {
  fprintf(stderr,
          "usage: conn-client rate HOST PORTS CONC SECONDS [DNS_HOST DNS_PORT NAME]\n"
          "       conn-client hold HOST PORT COUNT\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 5) return usage();
  int hold = strcmp(argv[1], "hold") == 0;
  if (!hold && strcmp(argv[1], "rate") != 0) return usage();
  if (inet_pton(AF_INET, argv[2], &host) != 1 || !parse_ports(argv[3])) return usage();
  int conc = atoi(argv[4]);
  double seconds = hold ? 0 : (argc > 5 ? atof(argv[5]) : 0);
  if (conc < 1 || (!hold && seconds <= 0)) return usage();
  if (!hold && argc == 9) {
    resolve = 1;
    dns_addr.sin_family = AF_INET;
    dns_addr.sin_port = htons((uint16_t)atoi(argv[7]));
    if (inet_pton(AF_INET, argv[6], &dns_addr.sin_addr) != 1) return usage();
    query_len = encode_query(query_a, argv[8], 1);
    encode_query(query_aaaa, argv[8], 28);
  } else if (!hold && argc != 6) return usage();

  ep = epoll_create1(EPOLL_CLOEXEC);
  int total = conc;       /* hold: every connection has a slot */
  int inflight = hold ? 256 : conc;
  slots = calloc((size_t)total, sizeof *slots);
  for (int i = 0; i < total; i++) {
    slots[i].fd = -1;
    slots[i].udp = -1;
    if (resolve) {
      slots[i].udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      connect(slots[i].udp, (struct sockaddr *)&dns_addr, sizeof dns_addr);
      struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i << 1 | 1};
      epoll_ctl(ep, EPOLL_CTL_ADD, slots[i].udp, &ev);
    }
  }

  uint64_t t0 = now_us();
  uint64_t end = t0 + (uint64_t)(seconds * 1e6);
  int started = 0, active = 0;
  struct epoll_event events[512];
  for (;;) {
    uint64_t now = now_us();
    int running = hold ? 1 : now < end;
    active = 0;
    for (int i = 0; i < total; i++) {
      struct slot *s = &slots[i];
      if (s->state != RESOLVING && s->state != CONNECTING && s->state != ECHOING) continue;
      if (now - s->started > (hold ? HOLD_TIMEOUT_US : TIMEOUT_US)) {
        errors++;
        drop(s);
      } else active++;
    }
    if (hold) {
      /* Each connection once, in order; a failed one is counted, not retried. */
      while (started < total && active < inflight) {
        begin(started++);
        if (slots[started - 1].state != IDLE) active++;
      }
      if (started >= total && active == 0) break;
    } else if (running) {
      for (int i = 0; i < total; i++)
        if (slots[i].state == IDLE) {
          begin(i);
          if (slots[i].state != IDLE) active++;
        }
    } else if (active == 0) break;
    int n = epoll_wait(ep, events, 512, 10);
    for (int k = 0; k < n; k++) {
      int i = (int)(events[k].data.u64 >> 1);
      if (events[k].data.u64 & 1) on_udp(i);
      else on_tcp(i, events[k].events, hold);
    }
  }
  double elapsed = (double)(now_us() - t0) / 1e6;

  if (hold) {
    long held = 0;
    for (int i = 0; i < total; i++) held += slots[i].state == HELD;
    printf("held %ld errors %ld\n", held, errors);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
  }
  qsort(samples, nsamples, sizeof *samples, percentile);
  printf("{\"connections\":%zu,\"errors\":%ld,\"seconds\":%.3f,\"rate\":%.1f,\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"max_us\":%u}\n",
         nsamples, errors, elapsed, (double)nsamples / elapsed, at(0.5), at(0.9), at(0.99),
         nsamples ? samples[nsamples - 1] : 0);
  return 0;
}
