/*
 * The floor for bench/manager.ts: what the kernel and libc need for each measured step, with no
 * manager in between. Compiled at run time (cc -O2); one binary, several modes:
 *
 *   floor stamp FILE [MS]     sleep MS milliseconds (default 0), append
 *                             "PID REALTIME_NS MONOTONIC_NS\n" to FILE, then exit 1: the crashing
 *                             service of the crash-loop and exit-detection benchmarks (holdfast
 *                             and PM2 run this same program)
 *   floor spawn N             N times: posix_spawn /bin/sleep 600 (timed: glibc's posix_spawn
 *                             returns once the child has exec'd), then SIGKILL and reap it
 *                             (untimed); prints one duration in ns per line
 *   floor loop N FILE         posix_spawn "floor stamp FILE", waitpid, spawn again, N times:
 *                             a restart loop with no policy and no delay
 *   floor exit N FILE MS      as loop with "stamp FILE MS", and after each waitpid prints
 *                             "PID MONOTONIC_NS": when the parent learned of the exit (matched to
 *                             the stamp by PID)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int stamp(const char *file, long delay_ms) {
  if (delay_ms > 0) {
    struct timespec d = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) < 0 && errno == EINTR) {
    }
  }
  long long rt = now_ns(CLOCK_REALTIME);
  long long mono = now_ns(CLOCK_MONOTONIC);
  char line[96];
  int len = snprintf(line, sizeof line, "%d %lld %lld\n", (int)getpid(), rt, mono);
  int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return 2;
  /* One write to an O_APPEND file: a line is never torn or interleaved. */
  if (write(fd, line, (size_t)len) != len) return 2;
  close(fd);
  return 1;
}

static pid_t spawn(char *const argv[]) {
  pid_t pid;
  int err = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
  if (err != 0) {
    fprintf(stderr, "floor: posix_spawn %s: %s\n", argv[0], strerror(err));
    exit(3);
  }
  return pid;
}

static void reap(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

int main(int argc, char **argv) {
  if ((argc == 3 || argc == 4) && strcmp(argv[1], "stamp") == 0) return stamp(argv[2], argc == 4 ? strtol(argv[3], NULL, 10) : 0);
  if (argc < 3) {
    fprintf(stderr, "usage: floor stamp FILE [MS] | spawn N | loop N FILE | exit N FILE MS\n");
    return 2;
  }
  long n = strtol(argv[2], NULL, 10);
  if (strcmp(argv[1], "spawn") == 0) {
    char *sleep_argv[] = {"/bin/sleep", "600", NULL};
    for (long i = 0; i < n; i++) {
      long long t0 = now_ns(CLOCK_MONOTONIC);
      pid_t pid = spawn(sleep_argv);
      long long t1 = now_ns(CLOCK_MONOTONIC);
      kill(pid, SIGKILL);
      reap(pid);
      printf("%lld\n", t1 - t0);
    }
    return 0;
  }
  int report = strcmp(argv[1], "exit") == 0;
  if ((argc == 4 && strcmp(argv[1], "loop") == 0) || (argc == 5 && report)) {
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len < 0) {
      perror("floor: readlink /proc/self/exe");
      return 3;
    }
    self[len] = '\0';
    char *stamp_argv[] = {self, "stamp", argv[3], report ? argv[4] : NULL, NULL};
    for (long i = 0; i < n; i++) {
      pid_t pid = spawn(stamp_argv);
      reap(pid);
      if (report) printf("%d %lld\n", (int)pid, now_ns(CLOCK_MONOTONIC));
    }
    return 0;
  }
  fprintf(stderr, "floor: unknown mode %s\n", argv[1]);
  return 2;
}
