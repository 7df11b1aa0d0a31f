/*
 * dns-latency PORT QUERYFILE QPS SECONDS: UDP queries to 127.0.0.1:PORT at a
 * steady QPS for SECONDS, each query sent at its own time on a fixed
 * schedule (not in bursts), the names and types of QUERYFILE ("name TYPE"
 * a line) in turn; every reply's latency is the time from its query's
 * sendto() to its recv(), matched by ID. One thread, one socket, no work
 * between a reply and its timestamp: the client adds little of its own.
 * Prints "sent N received N p50_us X p90_us X p99_us X max_us X".
 * A query unanswered 1 s after it was sent counts as lost.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUERIES 4096

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int type_code(const char *type) {
  if (strcasecmp(type, "A") == 0) return 1;
  if (strcasecmp(type, "AAAA") == 0) return 28;
  if (strcasecmp(type, "SRV") == 0) return 33;
  if (strcasecmp(type, "TXT") == 0) return 16;
  if (strcasecmp(type, "MX") == 0) return 15;
  return -1;
}

/* The query's bytes after the ID (RD set, no EDNS, as dnsperf sends by default); its length. */
static int encode(const char *name, int type, unsigned char *out, size_t size) {
  size_t at = 0;
  if (size < 12 + 255 + 4) return -1;
  memset(out, 0, 12);
  out[2] = 0x01;
  out[5] = 1;
  at = 12;
  const char *label = name;
  while (*label) {
    const char *dot = strchr(label, '.');
    size_t len = dot ? (size_t)(dot - label) : strlen(label);
    if (len == 0 || len > 63 || at + len + 1 > 12 + 255) return -1;
    out[at++] = (unsigned char)len;
    memcpy(out + at, label, len);
    at += len;
    label += len + (dot ? 1 : 0);
  }
  out[at++] = 0;
  out[at++] = (unsigned char)(type >> 8);
  out[at++] = (unsigned char)type;
  out[at++] = 0;
  out[at++] = 1;
  return (int)at;
}

static int compare(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: dns-latency PORT QUERYFILE QPS SECONDS\n");
    return 2;
  }
  int port = atoi(argv[1]);
  double qps = atof(argv[3]);
  double seconds = atof(argv[4]);
  if (port <= 0 || port > 65535 || qps <= 0 || seconds <= 0) {
    fprintf(stderr, "dns-latency: bad arguments\n");
    return 2;
  }
  FILE *file = fopen(argv[2], "r");
  if (!file) {
    perror("dns-latency: query file");
    return 2;
  }
  static unsigned char queries[MAX_QUERIES][12 + 255 + 4];
  static int lengths[MAX_QUERIES];
  int count = 0;
  char name[512], type[32];
  while (count < MAX_QUERIES && fscanf(file, "%511s %31s", name, type) == 2) {
    int code = type_code(type);
    int length = code < 0 ? -1 : encode(name, code, queries[count], sizeof queries[count]);
    if (length < 0) {
      fprintf(stderr, "dns-latency: cannot encode %s %s\n", name, type);
      return 2;
    }
    lengths[count++] = length;
  }
  fclose(file);
  if (count == 0) {
    fprintf(stderr, "dns-latency: no queries\n");
    return 2;
  }

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
  if (fd < 0 || connect(fd, (struct sockaddr *)&server, sizeof server) != 0) {
    perror("dns-latency: socket");
    return 2;
  }

  uint64_t total = (uint64_t)(qps * seconds);
  uint64_t interval = (uint64_t)(1e9 / qps);
  uint64_t *latencies = calloc(total + 1, sizeof *latencies);
  /* When the query of each ID was sent (0: none outstanding), and its number. */
  static uint64_t sent_at[65536];
  uint64_t sent = 0, received = 0;
  unsigned char reply[4096];
  uint64_t start = now_ns() + 1000000;
  uint64_t end = start + total * interval + 1000000000u;
  for (;;) {
    uint64_t now = now_ns();
    if (sent < total && now >= start + sent * interval) {
      int q = (int)(sent % (uint64_t)count);
      uint16_t id = (uint16_t)sent;
      queries[q][0] = (unsigned char)(id >> 8);
      queries[q][1] = (unsigned char)id;
      uint64_t at = now_ns();
      if (send(fd, queries[q], (size_t)lengths[q], 0) == lengths[q]) sent_at[id] = at;
      sent++;
      continue;
    }
    if (sent >= total && (received == sent || now >= end)) break;
    uint64_t next = sent < total ? start + sent * interval : end;
    /* Sleep until the next send or a reply (ppoll: a timeout in ns, not a busy loop that would take a CPU from the server). */
    uint64_t wait = next > now ? next - now : 0;
    struct timespec timeout = {.tv_sec = (time_t)(wait / 1000000000u), .tv_nsec = (long)(wait % 1000000000u)};
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (ppoll(&p, 1, &timeout, NULL) <= 0) continue;
    for (;;) {
      ssize_t n = recv(fd, reply, sizeof reply, 0);
      uint64_t at = now_ns();
      if (n < 0) break;
      if (n < 12) continue;
      uint16_t id = (uint16_t)((reply[0] << 8) | reply[1]);
      if (sent_at[id] == 0 || at - sent_at[id] > 1000000000u) continue;
      latencies[received++] = at - sent_at[id];
      sent_at[id] = 0;
    }
  }
  qsort(latencies, received, sizeof *latencies, compare);
#define AT(q) (received ? latencies[(size_t)((q) * (double)(received - 1) + 0.5)] / 1000.0 : 0.0)
  printf("sent %llu received %llu p50_us %.1f p90_us %.1f p99_us %.1f max_us %.1f\n", (unsigned long long)sent, (unsigned long long)received, AT(0.5), AT(0.9),
         AT(0.99), received ? latencies[received - 1] / 1000.0 : 0.0);
  return 0;
}
