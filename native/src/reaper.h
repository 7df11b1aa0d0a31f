/*
 * Reaping of orphaned zombies for a process that is PID 1 of its PID
 * namespace or a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER).
 *
 * Orphans are re-parented to such a process; their exit status must be
 * collected or they stay zombies. Node (libuv) waits only for the children it
 * spawned, by pid, so this never calls waitpid(-1): it reaps, by pid, only
 * zombies the caller says are not its own.
 */
#ifndef SRVLINK_REAPER_H
#define SRVLINK_REAPER_H

#include <stddef.h>
#include <sys/types.h>

/* Ask the kernel to re-parent orphaned descendants to this process. 0 or an errno value. */
int reaper_set_subreaper(void);

/* 1 when this process is a child subreaper, 0 when not, -errno on failure. */
int reaper_is_subreaper(void);

/*
 * Reap every zombie child of this process whose pid is not in exclude[0..n).
 * Writes up to cap reaped pids to reaped[] and returns how many were reaped
 * (may exceed cap: only the first cap are written), or -errno when /proc
 * cannot be read.
 */
long reaper_reap(const pid_t *exclude, size_t n, pid_t *reaped, size_t cap);

#endif
