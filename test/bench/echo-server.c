/*
 * The backend of the connection benchmarks: an epoll echo server on
 * loopback, one thread, every byte read written back, closed after the
 * peer's FIN. `echo-server [PORTS]` listens on PORTS free ports of
 * 127.0.0.1 (1 by default) and prints them on one line ("ports P1 P2 ...")
 * once all listen. Stops on SIGTERM or when its parent dies (the bench
 * starts it under setpriv --pdeathsig).
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
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LISTENERS 20000
#define BUF 65536

static int listeners[MAX_LISTENERS];
static int nlisteners;

static int is_listener(int fd) {
  /* Listeners are opened first, so their descriptors are the lowest ones. */
  return fd <= listeners[nlisteners - 1] && fd >= listeners[0];
}

int main(int argc, char **argv) {
  int count = argc > 1 ? atoi(argv[1]) : 1;
  if (count < 1 || count > MAX_LISTENERS) {
    fprintf(stderr, "echo-server: PORTS must be 1..%d, not %s\n", MAX_LISTENERS, argv[1]);
    return 2;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  printf("ports");
  for (int i = 0; i < count; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 4096) != 0) {
      fprintf(stderr, "echo-server: cannot listen: %s\n", strerror(errno));
      return 1;
    }
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    printf(" %d", ntohs(addr.sin_port));
    listeners[nlisteners++] = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  printf("\n");
  fflush(stdout);

  static char buf[BUF];
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 1;
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (is_listener(fd)) {
        for (;;) {
          int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
        }
        continue;
      }
      for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
          /* Blocking-style write back: the benchmarks send little, and a
             full socket only means the client reads slowly. */
          ssize_t off = 0;
          while (off < r) {
            ssize_t w = write(fd, buf + off, (size_t)(r - off));
            if (w > 0) off += w;
            else if (w < 0 && errno == EAGAIN) usleep(50);
            else break;
          }
          if (off < r) { close(fd); break; }
          continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) close(fd);
        break;
      }
    }
  }
}
