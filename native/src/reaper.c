/* See reaper.h. Linux only: /proc and prctl(2). */
#define _GNU_SOURCE
#include "reaper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int reaper_set_subreaper(void) {
  return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : errno;
}

int reaper_is_subreaper(void) {
  int on = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &on, 0, 0, 0) != 0) return -errno;
  return on ? 1 : 0;
}

static int excluded(pid_t pid, const pid_t *exclude, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (exclude[i] == pid) return 1;
  }
  return 0;
}

/*
 * State and parent of a process from /proc/PID/stat (proc(5)): "pid (comm)
 * state ppid ...". comm may hold spaces and parentheses, so parse from the
 * last ')'. Returns 0 on success.
 */
static int read_stat(const char *pid, char *state, pid_t *ppid) {
  char path[64];
  char buf[512];
  snprintf(path, sizeof path, "/proc/%s/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t len = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (len <= 0) return -1;
  buf[len] = '\0';
  char *end = strrchr(buf, ')');
  if (end == NULL) return -1;
  int parent = 0;
  if (sscanf(end + 1, " %c %d", state, &parent) != 2) return -1;
  *ppid = (pid_t)parent;
  return 0;
}

long reaper_reap(const pid_t *exclude, size_t n, pid_t *reaped, size_t cap) {
  pid_t self = getpid();
  DIR *proc = opendir("/proc");
  if (proc == NULL) return -errno;
  long count = 0;
  struct dirent *entry;
  while ((entry = readdir(proc)) != NULL) {
    const char *name = entry->d_name;
    if (name[0] < '0' || name[0] > '9') continue;
    char state = 0;
    pid_t ppid = 0;
    if (read_stat(name, &state, &ppid) != 0) continue; /* gone meanwhile */
    if (ppid != self || state != 'Z') continue;
    pid_t pid = (pid_t)strtol(name, NULL, 10);
    /* A child Node spawned: libuv waits for it by pid and must see its status. */
    if (excluded(pid, exclude, n)) continue;
    siginfo_t info;
    memset(&info, 0, sizeof info);
    /* By pid, never P_ALL: only this zombie's status is taken. */
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG) == 0 && info.si_pid == pid) {
      if ((size_t)count < cap) reaped[count] = pid;
      count++;
    }
  }
  closedir(proc);
  return count;
}
