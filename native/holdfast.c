/*
 * holdfast's native core: the Linux syscalls Node.js does not expose, and nothing else.
 *
 * Rules kept here: no policy, no state beyond the handles JS owns. Every failed syscall becomes
 * a JS Error whose `code` is the errno name and whose `syscall` names the call. Constants that
 * older kernel headers lack are defined locally, because the build machine's headers may be older
 * than the kernel the addon runs on; support is found by probing at run time, never by version.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif
#define PID_FS_MAGIC 0x50494446
#define PIDFD_INFO_PID (1ULL << 0)
#define PIDFD_INFO_CREDS (1ULL << 1)
#define PIDFD_INFO_CGROUPID (1ULL << 2)
#define PIDFD_INFO_EXIT (1ULL << 3)
/* _IOWR(0xFF, 11, struct of 64 bytes): the size is part of the request number. */
#define PIDFD_GET_INFO_64 0xC040FF0BUL

struct pidfd_info_v0 {
  uint64_t mask;
  uint64_t cgroupid;
  uint32_t pid, tgid, ppid;
  uint32_t ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  int32_t exit_code;
};

struct clone_args_v2 {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
      set_tid_size, cgroup;
};

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                      */

static const char *errno_name(int err) {
  switch (err) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF) E(ECHILD)
    E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR)
    E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY) E(EFBIG) E(ENOSPC) E(ESPIPE)
    E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS) E(ENOTEMPTY) E(ELOOP)
    E(ENODATA) E(EOVERFLOW) E(ENOTSOCK) E(EDESTADDRREQ) E(EMSGSIZE) E(EPROTOTYPE) E(ENOPROTOOPT)
    E(EPROTONOSUPPORT) E(EOPNOTSUPP) E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN)
    E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS) E(EISCONN) E(ENOTCONN) E(ETIMEDOUT)
    E(ECONNREFUSED) E(EALREADY) E(EINPROGRESS) E(ESTALE) E(EDQUOT) E(ECANCELED) E(EOWNERDEAD)
    E(EREMOTE) E(ENOMEDIUM) E(EBADMSG)
#undef E
    default: return "EUNKNOWN";
  }
}

/* Throws `Error(message)` with `.code` = errno name, `.errno`, `.syscall`; returns NULL for the caller. */
static napi_value throw_errno(napi_env env, int err, const char *call) {
  char message[256];
  snprintf(message, sizeof message, "%s failed: %s", call, strerror(err));
  napi_value msg, code, error, num, sys;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, -err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, call, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Argument helpers                                                                            */

#define ARGS(n)                                                                                \
  size_t argc = n;                                                                             \
  napi_value argv[n];                                                                          \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL)

static bool get_int(napi_env env, napi_value v, int32_t *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_number) return false;
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static bool opt_int(napi_env env, napi_value v, int32_t *out, int32_t fallback) {
  napi_valuetype t;
  if (v == NULL) { *out = fallback; return true; }
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) { *out = fallback; return true; }
  if (t == napi_boolean) {
    bool b;
    napi_get_value_bool(env, v, &b);
    *out = b ? 1 : 0;
    return true;
  }
  return get_int(env, v, out);
}

static napi_value make_int(napi_env env, int64_t value) {
  napi_value v;
  napi_create_int64(env, value, &v);
  return v;
}

static napi_value make_u64(napi_env env, uint64_t value) {
  napi_value v;
  napi_create_bigint_uint64(env, value, &v);
  return v;
}

static napi_value make_bool(napi_env env, bool value) {
  napi_value v;
  napi_get_boolean(env, value, &v);
  return v;
}

static napi_value undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

static napi_value null_value(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

static void set_prop(napi_env env, napi_value obj, const char *name, napi_value v) {
  napi_set_named_property(env, obj, name, v);
}

static napi_value get_prop(napi_env env, napi_value obj, const char *name) {
  bool has = false;
  napi_value v = NULL;
  napi_has_named_property(env, obj, name, &has);
  if (!has) return NULL;
  napi_get_named_property(env, obj, name, &v);
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) return NULL;
  return v;
}

/* Copies a JS string into a malloc'd C string; NULL if it is not a string. */
static char *dup_string(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

/* ------------------------------------------------------------------------------------------ */
/* pidfd basics                                                                                */

static int sys_pidfd_open(pid_t pid, unsigned flags) {
  return (int)syscall(SYS_pidfd_open, pid, flags);
}

/* pidfdOpen(pid, nonblock?) -> fd */
static napi_value PidfdOpen(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t pid, nonblock;
  if (!get_int(env, argv[0], &pid)) return throw_type(env, "pid must be an integer");
  if (!opt_int(env, argc > 1 ? argv[1] : NULL, &nonblock, 0)) return throw_type(env, "flags");
  int fd = sys_pidfd_open(pid, nonblock ? O_NONBLOCK : 0);
  if (fd < 0) return throw_errno(env, errno, "pidfd_open");
  return make_int(env, fd);
}

/* pidfdSendSignal(fd, signal, flags) */
static napi_value PidfdSendSignal(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t fd, sig, flags;
  if (!get_int(env, argv[0], &fd) || !get_int(env, argv[1], &sig))
    return throw_type(env, "fd and signal must be integers");
  if (!opt_int(env, argc > 2 ? argv[2] : NULL, &flags, 0)) return throw_type(env, "flags");
  if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, (unsigned)flags) < 0)
    return throw_errno(env, errno, "pidfd_send_signal");
  return undefined(env);
}

/*
 * The pidfs inode id of a pidfd, as systemd computes it: pidfs check, then the 8-byte file
 * handle, else st_ino when ino_t is 64-bit. Returns 0 on success, -EOPNOTSUPP when this kernel
 * gives no id, or another -errno. Async-signal-safe: the spawn path calls it in the child.
 */
static int pidfd_inode_id(int fd, uint64_t *out) {
  struct statfs sfs;
  if (syscall(SYS_fstatfs, fd, &sfs) < 0) return -errno;
  if ((uint64_t)sfs.f_type != PID_FS_MAGIC) return -EOPNOTSUPP;
  union {
    struct file_handle fh;
    uint8_t space[sizeof(struct file_handle) + sizeof(uint64_t)];
  } h;
  memset(&h, 0, sizeof h);
  h.fh.handle_bytes = sizeof(uint64_t);
  int mnt_id;
  if (syscall(SYS_name_to_handle_at, fd, "", &h.fh, &mnt_id, AT_EMPTY_PATH) == 0 &&
      h.fh.handle_bytes >= sizeof(uint64_t)) {
    uint64_t id;
    memcpy(&id, h.fh.f_handle, sizeof id);
    *out = id;
    return 0;
  }
  int err = errno;
  if (err != EOPNOTSUPP && err != ENOTTY && err != EPERM && err != EACCES && err != EOVERFLOW &&
      err != EINVAL && err != ENOSYS)
    return -err;
  if (sizeof(ino_t) != 8) return -EOPNOTSUPP;
  struct stat st;
  if (syscall(SYS_fstat, fd, &st) < 0) return -errno;
  *out = (uint64_t)st.st_ino;
  return 0;
}

/* pidfdId(fd) -> bigint | undefined (no ids on this kernel) */
static napi_value PidfdId(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  uint64_t id;
  int r = pidfd_inode_id(fd, &id);
  if (r == -EOPNOTSUPP) return undefined(env);
  if (r < 0) return throw_errno(env, -r, "pidfd id (fstatfs/name_to_handle_at/fstat)");
  return make_u64(env, id);
}

static void decode_wait_status(napi_env env, napi_value obj, int status) {
  if (WIFEXITED(status)) {
    set_prop(env, obj, "code", make_int(env, WEXITSTATUS(status)));
    set_prop(env, obj, "signal", null_value(env));
    set_prop(env, obj, "coreDumped", make_bool(env, false));
  } else if (WIFSIGNALED(status)) {
    set_prop(env, obj, "code", null_value(env));
    set_prop(env, obj, "signal", make_int(env, WTERMSIG(status)));
    set_prop(env, obj, "coreDumped", make_bool(env, WCOREDUMP(status) != 0));
  } else {
    set_prop(env, obj, "code", null_value(env));
    set_prop(env, obj, "signal", null_value(env));
    set_prop(env, obj, "coreDumped", make_bool(env, false));
  }
}

/* pidfdGetInfo(fd, wantExit) -> { mask, pid, tgid, ppid, ruid, ..., cgroupId?, exit? } */
static napi_value PidfdGetInfo(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd, want_exit;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (!opt_int(env, argc > 1 ? argv[1] : NULL, &want_exit, 0)) return throw_type(env, "wantExit");
  struct pidfd_info_v0 pi;
  memset(&pi, 0, sizeof pi);
  pi.mask = PIDFD_INFO_PID | PIDFD_INFO_CREDS | PIDFD_INFO_CGROUPID | (want_exit ? PIDFD_INFO_EXIT : 0);
  if (ioctl(fd, PIDFD_GET_INFO_64, &pi) < 0) return throw_errno(env, errno, "ioctl(PIDFD_GET_INFO)");
  napi_value obj;
  napi_create_object(env, &obj);
  set_prop(env, obj, "mask", make_int(env, (int64_t)pi.mask));
  if (pi.mask & PIDFD_INFO_PID) {
    set_prop(env, obj, "pid", make_int(env, pi.pid));
    set_prop(env, obj, "tgid", make_int(env, pi.tgid));
    set_prop(env, obj, "ppid", make_int(env, pi.ppid));
  }
  if (pi.mask & PIDFD_INFO_CREDS) {
    set_prop(env, obj, "ruid", make_int(env, pi.ruid));
    set_prop(env, obj, "rgid", make_int(env, pi.rgid));
    set_prop(env, obj, "euid", make_int(env, pi.euid));
    set_prop(env, obj, "egid", make_int(env, pi.egid));
    set_prop(env, obj, "suid", make_int(env, pi.suid));
    set_prop(env, obj, "sgid", make_int(env, pi.sgid));
    set_prop(env, obj, "fsuid", make_int(env, pi.fsuid));
    set_prop(env, obj, "fsgid", make_int(env, pi.fsgid));
  }
  if (pi.mask & PIDFD_INFO_CGROUPID) set_prop(env, obj, "cgroupId", make_u64(env, pi.cgroupid));
  if (pi.mask & PIDFD_INFO_EXIT) {
    napi_value exit;
    napi_create_object(env, &exit);
    decode_wait_status(env, exit, pi.exit_code);
    set_prop(env, exit, "status", make_int(env, pi.exit_code));
    set_prop(env, obj, "exit", exit);
  }
  return obj;
}

static napi_value siginfo_to_js(napi_env env, const siginfo_t *si) {
  napi_value obj;
  napi_create_object(env, &obj);
  set_prop(env, obj, "pid", make_int(env, si->si_pid));
  set_prop(env, obj, "uid", make_int(env, si->si_uid));
  int status = 0;
  switch (si->si_code) {
    case CLD_EXITED: status = (si->si_status & 0xff) << 8; break;
    case CLD_KILLED: status = si->si_status & 0x7f; break;
    case CLD_DUMPED: status = (si->si_status & 0x7f) | 0x80; break;
    default: status = -1;
  }
  if (status >= 0) {
    decode_wait_status(env, obj, status);
    set_prop(env, obj, "status", make_int(env, status));
  } else {
    set_prop(env, obj, "code", null_value(env));
    set_prop(env, obj, "signal", null_value(env));
    set_prop(env, obj, "coreDumped", make_bool(env, false));
  }
  return obj;
}

/*
 * waitPidfd(fd, options) -> exit object, or null when WNOHANG found nothing.
 * options: 1 = WNOHANG, 2 = WNOWAIT (look without reaping).
 */
static napi_value WaitPidfd(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd, opts;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (!opt_int(env, argc > 1 ? argv[1] : NULL, &opts, 0)) return throw_type(env, "options");
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int flags = WEXITED | ((opts & 1) ? WNOHANG : 0) | ((opts & 2) ? WNOWAIT : 0);
  int r;
  do r = waitid((idtype_t)P_PIDFD, (id_t)fd, &si, flags);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN && (opts & 1)) return null_value(env);
    return throw_errno(env, errno, "waitid(P_PIDFD)");
  }
  if (si.si_pid == 0) return null_value(env);
  return siginfo_to_js(env, &si);
}

/*
 * reapAny(peek) -> exit object with pid, or null: one waitid(P_ALL, WNOHANG) for a subreaper's
 * stray children. With peek, WNOWAIT: the zombie stays, so the caller can open a pidfd to it.
 */
static napi_value ReapAny(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t peek;
  if (!opt_int(env, argc > 0 ? argv[0] : NULL, &peek, 0)) return throw_type(env, "peek");
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int r;
  do r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | (peek ? WNOWAIT : 0));
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == ECHILD) return null_value(env);
    return throw_errno(env, errno, "waitid(P_ALL)");
  }
  if (si.si_pid == 0) return null_value(env);
  return siginfo_to_js(env, &si);
}

/* setChildSubreaper(on) ; getChildSubreaper() -> bool */
static napi_value SetChildSubreaper(napi_env env, napi_callback_info info) {
  ARGS(1);
  bool on = true;
  if (argc > 0) napi_get_value_bool(env, argv[0], &on);
  if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0) < 0)
    return throw_errno(env, errno, "prctl(PR_SET_CHILD_SUBREAPER)");
  return undefined(env);
}

static napi_value GetChildSubreaper(napi_env env, napi_callback_info info) {
  int value = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &value, 0, 0, 0) < 0)
    return throw_errno(env, errno, "prctl(PR_GET_CHILD_SUBREAPER)");
  return make_bool(env, value != 0);
}

static napi_value PidfdGetfd(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t pidfd, target;
  if (!get_int(env, argv[0], &pidfd) || !get_int(env, argv[1], &target))
    return throw_type(env, "pidfd and target fd must be integers");
  int fd = (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
  if (fd < 0) return throw_errno(env, errno, "pidfd_getfd");
  return make_int(env, fd);
}

/* ------------------------------------------------------------------------------------------ */
/* Plain fd helpers                                                                            */

static napi_value Close(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, errno, "close");
  return undefined(env);
}

static napi_value Dup(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd, cloexec;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (!opt_int(env, argc > 1 ? argv[1] : NULL, &cloexec, 1)) return throw_type(env, "cloexec");
  int r = fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 3);
  if (r < 0) return throw_errno(env, errno, "fcntl(F_DUPFD)");
  return make_int(env, r);
}

/* setCloexec(fd, on): a daemon re-exec keeps chosen fds by clearing FD_CLOEXEC on them. */
static napi_value SetCloexec(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  bool on = true;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (argc > 1) napi_get_value_bool(env, argv[1], &on);
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return throw_errno(env, errno, "fcntl(F_GETFD)");
  if (fcntl(fd, F_SETFD, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC)) < 0)
    return throw_errno(env, errno, "fcntl(F_SETFD)");
  return undefined(env);
}

/* pipe(nonblockRead?) -> [readFd, writeFd], both close-on-exec */
static napi_value Pipe(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t nonblock;
  if (!opt_int(env, argc > 0 ? argv[0] : NULL, &nonblock, 0)) return throw_type(env, "nonblock");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return throw_errno(env, errno, "pipe2");
  if (nonblock) fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, make_int(env, fds[0]));
  napi_set_element(env, arr, 1, make_int(env, fds[1]));
  return arr;
}

/*
 * spliceToFile(pipeFd, fileFd, fileOffset, maxBytes) -> bytes moved (0 at EOF), or null when the
 * pipe is empty. The kernel moves the bytes from the pipe into the file in one step, so no byte is
 * ever only in this process's memory.
 */
static napi_value SpliceToFile(napi_env env, napi_callback_info info) {
  ARGS(4);
  int32_t in, out, max;
  double offset;
  if (!get_int(env, argv[0], &in) || !get_int(env, argv[1], &out) || !get_int(env, argv[3], &max) || max <= 0)
    return throw_type(env, "pipeFd, fileFd and maxBytes must be integers (maxBytes > 0)");
  if (napi_get_value_double(env, argv[2], &offset) != napi_ok || offset < 0 || offset > 9007199254740991.0)
    return throw_type(env, "fileOffset must be a non-negative integer");
  loff_t off = (loff_t)offset;
  ssize_t moved;
  do moved = splice(in, NULL, out, &off, (size_t)max, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  while (moved < 0 && errno == EINTR);
  if (moved < 0) {
    if (errno == EAGAIN) return null_value(env);
    return throw_errno(env, errno, "splice");
  }
  return make_int(env, moved);
}

/* pollFd(fd, events, timeoutMs) -> revents: a bounded synchronous wait, used by CLI helpers. */
static napi_value PollFd(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t fd, events, timeout;
  if (!get_int(env, argv[0], &fd) || !get_int(env, argv[1], &events) || !get_int(env, argv[2], &timeout))
    return throw_type(env, "fd, events and timeout must be integers");
  struct pollfd p = {.fd = fd, .events = (short)events};
  int r;
  do r = poll(&p, 1, timeout);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, errno, "poll");
  return make_int(env, r == 0 ? 0 : p.revents);
}

/* ------------------------------------------------------------------------------------------ */
/* Unix sockets: datagrams with credentials and fds (sd_notify), peer identity (Varlink)       */

static bool fill_sockaddr(napi_env env, napi_value v, struct sockaddr_un *sa, socklen_t *len) {
  void *data;
  size_t n;
  bool is_buffer = false;
  napi_is_buffer(env, v, &is_buffer);
  if (!is_buffer) return false;
  napi_get_buffer_info(env, v, &data, &n);
  if (n == 0 || n > sizeof sa->sun_path) return false;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, data, n);
  /* A path address counts its NUL; an abstract one (leading NUL) counts exactly its bytes. */
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (((char *)data)[0] != 0 ? 1 : 0));
  return true;
}

/* socket(type) -> fd; type: 'dgram' | 'stream' | 'seqpacket'. Non-blocking, close-on-exec. */
static napi_value Socket(napi_env env, napi_callback_info info) {
  ARGS(1);
  char type[16] = {0};
  size_t n;
  napi_get_value_string_utf8(env, argv[0], type, sizeof type, &n);
  int t = strcmp(type, "stream") == 0 ? SOCK_STREAM : strcmp(type, "seqpacket") == 0 ? SOCK_SEQPACKET : SOCK_DGRAM;
  int fd = socket(AF_UNIX, t | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, errno, "socket(AF_UNIX)");
  return make_int(env, fd);
}

/* socketpair(type) -> [fd, fd] */
static napi_value SocketPair(napi_env env, napi_callback_info info) {
  ARGS(1);
  char type[16] = {0};
  size_t n;
  napi_get_value_string_utf8(env, argv[0], type, sizeof type, &n);
  int t = strcmp(type, "stream") == 0 ? SOCK_STREAM : strcmp(type, "seqpacket") == 0 ? SOCK_SEQPACKET : SOCK_DGRAM;
  int fds[2];
  if (socketpair(AF_UNIX, t | SOCK_CLOEXEC, 0, fds) < 0) return throw_errno(env, errno, "socketpair");
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, make_int(env, fds[0]));
  napi_set_element(env, arr, 1, make_int(env, fds[1]));
  return arr;
}

static napi_value Bind(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  struct sockaddr_un sa;
  socklen_t len;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (!fill_sockaddr(env, argv[1], &sa, &len)) return throw_type(env, "address must be a Buffer of 1..108 bytes");
  if (bind(fd, (struct sockaddr *)&sa, len) < 0) return throw_errno(env, errno, "bind");
  return undefined(env);
}

static napi_value Connect(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  struct sockaddr_un sa;
  socklen_t len;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (!fill_sockaddr(env, argv[1], &sa, &len)) return throw_type(env, "address must be a Buffer of 1..108 bytes");
  int r;
  do r = connect(fd, (struct sockaddr *)&sa, len);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, errno, "connect");
  return undefined(env);
}

/* setSockOptInt(fd, name, value): SOL_SOCKET options by name, so JS never carries raw numbers. */
static napi_value SetSockOpt(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t fd, value;
  char name[32] = {0};
  size_t n;
  if (!get_int(env, argv[0], &fd) || !get_int(env, argv[2], &value)) return throw_type(env, "fd/value");
  napi_get_value_string_utf8(env, argv[1], name, sizeof name, &n);
  int opt;
  if (strcmp(name, "SO_PASSCRED") == 0) opt = SO_PASSCRED;
  else if (strcmp(name, "SO_PASSPIDFD") == 0) opt = SO_PASSPIDFD;
  else if (strcmp(name, "SO_RCVBUF") == 0) opt = SO_RCVBUF;
  else if (strcmp(name, "SO_SNDBUF") == 0) opt = SO_SNDBUF;
  else if (strcmp(name, "SO_RCVBUFFORCE") == 0) opt = SO_RCVBUFFORCE;
  else return throw_type(env, "unknown socket option");
  if (setsockopt(fd, SOL_SOCKET, opt, &value, sizeof value) < 0) {
    char call[64];
    snprintf(call, sizeof call, "setsockopt(%s)", name);
    return throw_errno(env, errno, call);
  }
  return undefined(env);
}

/* peerCredentials(fd) -> {pid, uid, gid} (SO_PEERCRED) */
static napi_value PeerCredentials(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  struct ucred uc;
  socklen_t len = sizeof uc;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) return throw_errno(env, errno, "getsockopt(SO_PEERCRED)");
  napi_value obj;
  napi_create_object(env, &obj);
  set_prop(env, obj, "pid", make_int(env, uc.pid));
  set_prop(env, obj, "uid", make_int(env, uc.uid));
  set_prop(env, obj, "gid", make_int(env, uc.gid));
  return obj;
}

/* peerPidfd(fd) -> pidfd of the peer as of connect() (SO_PEERPIDFD, 6.5+) */
static napi_value PeerPidfd(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) return throw_errno(env, errno, "getsockopt(SO_PEERPIDFD)");
  return make_int(env, pidfd);
}

/*
 * sendMessage(fd, data: Buffer, fds: number[] | null, creds: {pid,uid,gid} | null,
 *             address: Buffer | null) -> bytes sent.
 * Credentials are attached only when the caller asks: the kernel fills in the sender's own ones
 * on a receiver with SO_PASSCRED, which is how libsystemd leaves it in the common case.
 */
static napi_value SendMessage(napi_env env, napi_callback_info info) {
  ARGS(5);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  void *data;
  size_t data_len;
  bool is_buffer = false;
  napi_is_buffer(env, argv[1], &is_buffer);
  if (!is_buffer) return throw_type(env, "data must be a Buffer");
  napi_get_buffer_info(env, argv[1], &data, &data_len);

  uint32_t nfds = 0;
  int fds[768];
  napi_valuetype t = napi_undefined;
  if (argc > 2) napi_typeof(env, argv[2], &t);
  if (t == napi_object) {
    napi_get_array_length(env, argv[2], &nfds);
    if (nfds > 768) return throw_type(env, "at most 768 fds");
    for (uint32_t i = 0; i < nfds; i++) {
      napi_value e;
      napi_get_element(env, argv[2], i, &e);
      if (!get_int(env, e, &fds[i])) return throw_type(env, "fds must be integers");
    }
  }
  bool with_creds = false;
  struct ucred uc = {0};
  t = napi_undefined;
  if (argc > 3) napi_typeof(env, argv[3], &t);
  if (t == napi_object) {
    int32_t v;
    napi_value p;
    with_creds = true;
    p = get_prop(env, argv[3], "pid");
    uc.pid = (p && get_int(env, p, &v)) ? v : getpid();
    p = get_prop(env, argv[3], "uid");
    uc.uid = (p && get_int(env, p, &v)) ? (uid_t)v : getuid();
    p = get_prop(env, argv[3], "gid");
    uc.gid = (p && get_int(env, p, &v)) ? (gid_t)v : getgid();
  }
  struct sockaddr_un sa;
  socklen_t sa_len = 0;
  t = napi_undefined;
  if (argc > 4) napi_typeof(env, argv[4], &t);
  if (t == napi_object && !fill_sockaddr(env, argv[4], &sa, &sa_len))
    return throw_type(env, "address must be a Buffer of 1..108 bytes");

  size_t control_len = (with_creds ? CMSG_SPACE(sizeof uc) : 0) + (nfds ? CMSG_SPACE(sizeof(int) * nfds) : 0);
  char *control = control_len ? calloc(1, control_len) : NULL;
  struct iovec iov = {.iov_base = data, .iov_len = data_len};
  struct msghdr mh = {
      .msg_name = sa_len ? &sa : NULL,
      .msg_namelen = sa_len,
      .msg_iov = &iov,
      .msg_iovlen = 1,
      .msg_control = control,
      .msg_controllen = control_len,
  };
  if (control_len) {
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (with_creds) {
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_CREDENTIALS;
      c->cmsg_len = CMSG_LEN(sizeof uc);
      memcpy(CMSG_DATA(c), &uc, sizeof uc);
      c = CMSG_NXTHDR(&mh, c);
    }
    if (nfds) {
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
  }
  ssize_t r;
  do r = sendmsg(fd, &mh, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  int err = errno;
  free(control);
  if (r < 0) return throw_errno(env, err, "sendmsg");
  return make_int(env, r);
}

/*
 * receiveMessage(fd, maxBytes) -> null when nothing is queued, else
 * { data: Buffer, truncated, controlTruncated, fds: number[], creds: {pid,uid,gid} | null, pidfd: number | -1 }.
 * Every received fd is close-on-exec and owned by the caller from here on.
 */
static napi_value ReceiveMessage(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd, max;
  if (!get_int(env, argv[0], &fd) || !get_int(env, argv[1], &max) || max <= 0)
    return throw_type(env, "fd and maxBytes must be integers");
  char *buf = malloc((size_t)max);
  if (buf == NULL) return throw_errno(env, ENOMEM, "malloc");
  size_t control_len = CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(int) * 768);
  char *control = calloc(1, control_len);
  struct iovec iov = {.iov_base = buf, .iov_len = (size_t)max};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = control_len};
  ssize_t r;
  do r = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    free(buf);
    free(control);
    if (err == EAGAIN || err == EWOULDBLOCK) return null_value(env);
    return throw_errno(env, err, "recvmsg");
  }
  napi_value obj, fds_arr, data;
  napi_create_object(env, &obj);
  napi_create_array(env, &fds_arr);
  uint32_t nfds = 0;
  int pidfd = -1;
  bool have_creds = false;
  struct ucred uc;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_RIGHTS) {
      size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int *p = (int *)CMSG_DATA(c);
      for (size_t i = 0; i < n; i++) napi_set_element(env, fds_arr, nfds++, make_int(env, p[i]));
    } else if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof uc)) {
      memcpy(&uc, CMSG_DATA(c), sizeof uc);
      have_creds = true;
    } else if (c->cmsg_type == SCM_PIDFD && c->cmsg_len == CMSG_LEN(sizeof(int))) {
      memcpy(&pidfd, CMSG_DATA(c), sizeof(int));
    }
  }
  size_t got = (size_t)r < (size_t)max ? (size_t)r : (size_t)max;
  napi_create_buffer_copy(env, got, buf, NULL, &data);
  set_prop(env, obj, "data", data);
  set_prop(env, obj, "truncated", make_bool(env, (mh.msg_flags & MSG_TRUNC) != 0));
  set_prop(env, obj, "controlTruncated", make_bool(env, (mh.msg_flags & MSG_CTRUNC) != 0));
  set_prop(env, obj, "fds", fds_arr);
  set_prop(env, obj, "pidfd", make_int(env, pidfd));
  if (have_creds) {
    napi_value creds;
    napi_create_object(env, &creds);
    set_prop(env, creds, "pid", make_int(env, uc.pid));
    set_prop(env, creds, "uid", make_int(env, uc.uid));
    set_prop(env, creds, "gid", make_int(env, uc.gid));
    set_prop(env, obj, "creds", creds);
  } else {
    set_prop(env, obj, "creds", null_value(env));
  }
  free(buf);
  free(control);
  return obj;
}

/* ------------------------------------------------------------------------------------------ */
/* Watcher: calls back when an fd becomes readable or hangs up, on the Node event loop          */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_ref self;
  bool closing;
  bool started;
  bool referenced;
} Watcher;

static void watcher_closed(uv_handle_t *handle) {
  Watcher *w = (Watcher *)handle->data;
  free(w);
}

static void watcher_event(uv_poll_t *handle, int status, int events) {
  Watcher *w = (Watcher *)handle->data;
  if (w->closing) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, global, args[3];
  napi_get_reference_value(env, w->callback, &cb);
  napi_get_global(env, &global);
  args[0] = make_bool(env, (events & UV_READABLE) != 0);
  args[1] = make_bool(env, (events & UV_DISCONNECT) != 0);
  args[2] = make_int(env, status);
  napi_value result;
  /* make_callback runs microtasks afterwards, as a libuv callback into JS must. */
  napi_async_context ctx = NULL;
  napi_value resource_name;
  napi_create_string_utf8(env, "holdfast.Watcher", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &ctx);
  napi_status st = napi_make_callback(env, ctx, global, cb, 3, args, &result);
  napi_async_destroy(env, ctx);
  if (st == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

static void watcher_stop(Watcher *w) {
  if (w->closing) return;
  w->closing = true;
  if (w->started) uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->callback);
  uv_close((uv_handle_t *)&w->poll, watcher_closed);
}

static void watcher_finalize(napi_env env, void *data, void *hint) {
  Watcher *w = (Watcher *)data;
  if (!w->closing) {
    w->closing = true;
    if (w->started) uv_poll_stop(&w->poll);
    napi_delete_reference(env, w->callback);
    uv_close((uv_handle_t *)&w->poll, watcher_closed);
  }
}

static napi_value WatcherClose(napi_env env, napi_callback_info info) {
  napi_value self;
  napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
  Watcher *w;
  if (napi_unwrap(env, self, (void **)&w) != napi_ok || w == NULL) return undefined(env);
  if (!w->closing) {
    watcher_stop(w);
    napi_remove_wrap(env, self, NULL);
  }
  return undefined(env);
}

static napi_value WatcherRef(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  napi_get_cb_info(env, info, &argc, argv, &self, NULL);
  bool on = true;
  if (argc > 0) napi_get_value_bool(env, argv[0], &on);
  Watcher *w;
  if (napi_unwrap(env, self, (void **)&w) != napi_ok || w == NULL || w->closing) return undefined(env);
  if (on) uv_ref((uv_handle_t *)&w->poll);
  else uv_unref((uv_handle_t *)&w->poll);
  w->referenced = on;
  return undefined(env);
}

/*
 * watch(fd, callback(readable, hangup, status), wantHangup) -> { close(), ref(on) }.
 * The watcher starts referenced; ref(false) lets the process exit while it waits.
 */
static napi_value Watch(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) return throw_type(env, "callback must be a function");
  bool want_hangup = false;
  if (argc > 2) napi_get_value_bool(env, argv[2], &want_hangup);
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_errno(env, EINVAL, "napi_get_uv_event_loop");
  Watcher *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, ENOMEM, "calloc");
  w->env = env;
  w->poll.data = w;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    free(w);
    return throw_errno(env, -r, "uv_poll_init");
  }
  r = uv_poll_start(&w->poll, UV_READABLE | (want_hangup ? UV_DISCONNECT : 0), watcher_event);
  if (r < 0) {
    uv_close((uv_handle_t *)&w->poll, watcher_closed);
    return throw_errno(env, -r, "uv_poll_start");
  }
  w->started = true;
  w->referenced = true;
  napi_create_reference(env, argv[1], 1, &w->callback);
  napi_value obj, fn;
  napi_create_object(env, &obj);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, WatcherClose, NULL, &fn);
  set_prop(env, obj, "close", fn);
  napi_create_function(env, "ref", NAPI_AUTO_LENGTH, WatcherRef, NULL, &fn);
  set_prop(env, obj, "ref", fn);
  napi_wrap(env, obj, w, watcher_finalize, NULL, NULL);
  return obj;
}

/* ------------------------------------------------------------------------------------------ */
/* Spawning with clone3(CLONE_PIDFD)                                                           */

/*
 * Everything the child does between clone and execve is a raw syscall on memory prepared by the
 * parent: the child is a copy of a multi-threaded process, so malloc, stdio and glibc's set*id
 * wrappers (which signal threads that do not exist in the child) are off limits.
 */
typedef struct {
  char *file;
  char **argv;
  char **envp;   /* with two spare slots at the end for LISTEN_PID / LISTEN_PIDFDID and one for WATCHDOG_PID */
  size_t envc;
  char *cwd;
  bool cwd_optional;
  int *fds;      /* child fd i <- fds[i]; -1 leaves i closed */
  int nfds;
  bool set_uid, set_gid, set_groups;
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  int ngroups;
  int umask_value; /* -1: inherit */
  int session;     /* 0 none, 1 setsid, 2 setpgid(0,0) */
  struct { int resource; struct rlimit limit; } rlimits[16];
  int nrlimits;
  bool listen_env, watchdog_env;
  int cgroup_fd;
  /* The child joins cgroup_fd itself (writes to cgroup.procs) when the spawn could not use CLONE_INTO_CGROUP. */
  bool cgroup_by_write;
  char listen_pid[32], listen_pidfdid[48], watchdog_pid[40];
} SpawnSpec;

typedef struct {
  int32_t err;
  int32_t step;
} ChildFailure;

enum { STEP_SIGNALS = 1, STEP_FDS, STEP_SESSION, STEP_RLIMIT, STEP_GROUPS, STEP_GID, STEP_UID, STEP_UMASK, STEP_CHDIR, STEP_ENV, STEP_EXEC, STEP_CGROUP };

static const char *step_name(int step) {
  switch (step) {
    case STEP_SIGNALS: return "sigprocmask";
    case STEP_FDS: return "dup2";
    case STEP_SESSION: return "setsid";
    case STEP_RLIMIT: return "setrlimit";
    case STEP_GROUPS: return "setgroups";
    case STEP_GID: return "setresgid";
    case STEP_UID: return "setresuid";
    case STEP_UMASK: return "umask";
    case STEP_CHDIR: return "chdir";
    case STEP_ENV: return "pidfd_open(self)";
    case STEP_EXEC: return "execve";
    case STEP_CGROUP: return "cgroup.procs";
    default: return "spawn";
  }
}

static size_t format_u64(char *out, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = 0;
  return n;
}

static void child_fail(int pipe_fd, int step, int err) {
  ChildFailure f = {.err = err, .step = step};
  ssize_t r;
  do r = syscall(SYS_write, pipe_fd, &f, sizeof f);
  while (r < 0 && errno == EINTR);
  syscall(SYS_exit_group, 127);
}

static void child_run(SpawnSpec *s, int pipe_fd) {
  /* Dispositions: Node ignores SIGPIPE and installs handlers; a handler's address is meaningless
   * after exec, but an ignored signal would stay ignored, so every signal goes back to default. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < 65; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    syscall(SYS_rt_sigaction, sig, &sa, NULL, 8);
  }
  sigset_t empty;
  sigemptyset(&empty);
  if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &empty, NULL, 8) < 0) child_fail(pipe_fd, STEP_SIGNALS, errno);

  /* Into the unit's cgroup before anything of the service runs ("0" is the writing process). */
  if (s->cgroup_by_write && s->cgroup_fd >= 0) {
    int procs = (int)syscall(SYS_openat, s->cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (procs < 0 || syscall(SYS_write, procs, "0", 1) != 1) child_fail(pipe_fd, STEP_CGROUP, errno);
    syscall(SYS_close, procs);
  }

  /* The fd table: move every source above the target range first, so dup2 into place cannot
   * clobber a source that is still needed, then close everything else. */
  int n = s->nfds;
  int floor = n > 3 ? n : 3;
  if (pipe_fd < floor) {
    int moved = (int)syscall(SYS_fcntl, pipe_fd, F_DUPFD_CLOEXEC, floor);
    if (moved < 0) child_fail(pipe_fd, STEP_FDS, errno);
    pipe_fd = moved;
  }
  if (pipe_fd >= floor) floor = pipe_fd + 1;
  for (int i = 0; i < n; i++) {
    if (s->fds[i] < 0) continue;
    int moved = (int)syscall(SYS_fcntl, s->fds[i], F_DUPFD, floor);
    if (moved < 0) child_fail(pipe_fd, STEP_FDS, errno);
    s->fds[i] = moved;
    floor = moved + 1;
  }
  for (int i = 0; i < n; i++) {
    if (s->fds[i] < 0) continue;
    if (syscall(SYS_dup3, s->fds[i], i, 0) < 0) child_fail(pipe_fd, STEP_FDS, errno);
  }
  /* Everything at or above n except the error pipe goes: nothing of the daemon leaks into a service. */
  if (pipe_fd > n) {
    if (syscall(SYS_close_range, n, pipe_fd - 1, 0) < 0) {
      for (int fd = n; fd < pipe_fd; fd++) syscall(SYS_close, fd);
    }
  }
  if (syscall(SYS_close_range, pipe_fd + 1, ~0U, 0) < 0) {
    for (int fd = pipe_fd + 1; fd < 65536; fd++) syscall(SYS_close, fd);
  }
  for (int i = 0; i < n; i++)
    if (s->fds[i] < 0) syscall(SYS_close, i);

  if (s->session == 1 && syscall(SYS_setsid) < 0) child_fail(pipe_fd, STEP_SESSION, errno);
  if (s->session == 2 && syscall(SYS_setpgid, 0, 0) < 0) child_fail(pipe_fd, STEP_SESSION, errno);
  for (int i = 0; i < s->nrlimits; i++)
    if (syscall(SYS_prlimit64, 0, s->rlimits[i].resource, &s->rlimits[i].limit, NULL) < 0)
      child_fail(pipe_fd, STEP_RLIMIT, errno);
  if (s->set_groups && syscall(SYS_setgroups, s->ngroups, s->groups) < 0) child_fail(pipe_fd, STEP_GROUPS, errno);
  if (s->set_gid && syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0) child_fail(pipe_fd, STEP_GID, errno);
  if (s->set_uid && syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0) child_fail(pipe_fd, STEP_UID, errno);
  if (s->umask_value >= 0) syscall(SYS_umask, s->umask_value);
  if (s->cwd != NULL && syscall(SYS_chdir, s->cwd) < 0 && !s->cwd_optional) child_fail(pipe_fd, STEP_CHDIR, errno);

  if (s->listen_env || s->watchdog_env) {
    pid_t self = (pid_t)syscall(SYS_getpid);
    size_t k = s->envc;
    if (s->listen_env) {
      memcpy(s->listen_pid, "LISTEN_PID=", 11);
      format_u64(s->listen_pid + 11, (uint64_t)self);
      s->envp[k++] = s->listen_pid;
      int own = sys_pidfd_open(self, 0);
      uint64_t id;
      if (own >= 0 && pidfd_inode_id(own, &id) == 0) {
        memcpy(s->listen_pidfdid, "LISTEN_PIDFDID=", 15);
        format_u64(s->listen_pidfdid + 15, id);
        s->envp[k++] = s->listen_pidfdid;
      }
      if (own >= 0) syscall(SYS_close, own);
    }
    if (s->watchdog_env) {
      memcpy(s->watchdog_pid, "WATCHDOG_PID=", 13);
      format_u64(s->watchdog_pid + 13, (uint64_t)self);
      s->envp[k++] = s->watchdog_pid;
    }
    s->envp[k] = NULL;
  }
  syscall(SYS_execve, s->file, s->argv, s->envp);
  child_fail(pipe_fd, STEP_EXEC, errno);
}

typedef struct {
  SpawnSpec *spec;
  int read_end;
  int write_end;
} ChildArgs;

/* The child of the vfork-style clone: runs on its own stack, in the parent's memory, until exec. */
static int child_entry(void *arg) {
  ChildArgs *a = (ChildArgs *)arg;
  syscall(SYS_close, a->read_end);
  child_run(a->spec, a->write_end);
  return 127;
}

#define CHILD_STACK_SIZE (256 * 1024)

static void free_spec(SpawnSpec *s) {
  if (s->argv) for (char **p = s->argv; *p; p++) free(*p);
  free(s->argv);
  if (s->envp) for (size_t i = 0; i < s->envc; i++) free(s->envp[i]);
  free(s->envp);
  free(s->file);
  free(s->cwd);
  free(s->fds);
  free(s->groups);
}

static char **string_array(napi_env env, napi_value arr, size_t extra, size_t *count) {
  uint32_t n = 0;
  bool is_array = false;
  napi_is_array(env, arr, &is_array);
  if (!is_array) return NULL;
  napi_get_array_length(env, arr, &n);
  char **out = calloc(n + extra + 1, sizeof(char *));
  if (out == NULL) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    napi_get_element(env, arr, i, &e);
    out[i] = dup_string(env, e);
    if (out[i] == NULL) {
      for (uint32_t j = 0; j < i; j++) free(out[j]);
      free(out);
      return NULL;
    }
  }
  *count = n;
  return out;
}

static bool get_u64_like(napi_env env, napi_value v, uint64_t *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_bigint) {
    bool lossless;
    return napi_get_value_bigint_uint64(env, v, out, &lossless) == napi_ok;
  }
  if (t == napi_number) {
    double d;
    napi_get_value_double(env, v, &d);
    if (d < 0 || d != d) return false;
    *out = d >= 1.8446744073709552e19 ? RLIM_INFINITY : (uint64_t)d;
    return true;
  }
  return false;
}

/*
 * spawn({ file, argv, env, cwd?, cwdOptional?, fds?, uid?, gid?, groups?, umask?, session?,
 *         rlimits?: [[resource, soft, hard]], listenEnv?, watchdogEnv?, cgroupFd? })
 *   -> { pid, pidfd }.
 * Blocks until the child has exec'd or failed, as libuv's uv_spawn does; a failure throws with
 * `code` = errno name and `syscall` = the step that failed, after reaping the child.
 */
static napi_value Spawn(napi_env env, napi_callback_info info) {
  ARGS(1);
  napi_valuetype t;
  napi_typeof(env, argv[0], &t);
  if (t != napi_object) return throw_type(env, "spawn takes an options object");
  napi_value opts = argv[0];
  SpawnSpec s;
  memset(&s, 0, sizeof s);
  s.umask_value = -1;
  s.cgroup_fd = -1;
  napi_value v;
  size_t count = 0;

  if ((v = get_prop(env, opts, "file")) == NULL || (s.file = dup_string(env, v)) == NULL)
    return throw_type(env, "file must be a string");
  if ((v = get_prop(env, opts, "argv")) == NULL || (s.argv = string_array(env, v, 0, &count)) == NULL) {
    free_spec(&s);
    return throw_type(env, "argv must be an array of strings");
  }
  if ((v = get_prop(env, opts, "env")) == NULL || (s.envp = string_array(env, v, 3, &s.envc)) == NULL) {
    free_spec(&s);
    return throw_type(env, "env must be an array of strings");
  }
  if ((v = get_prop(env, opts, "cwd")) != NULL && (s.cwd = dup_string(env, v)) == NULL) {
    free_spec(&s);
    return throw_type(env, "cwd must be a string");
  }
  if ((v = get_prop(env, opts, "cwdOptional")) != NULL) napi_get_value_bool(env, v, &s.cwd_optional);
  if ((v = get_prop(env, opts, "fds")) != NULL) {
    uint32_t n;
    napi_get_array_length(env, v, &n);
    s.fds = calloc(n + 1, sizeof(int));
    s.nfds = (int)n;
    for (uint32_t i = 0; i < n; i++) {
      napi_value e;
      napi_get_element(env, v, i, &e);
      if (!opt_int(env, e, &s.fds[i], -1)) {
        free_spec(&s);
        return throw_type(env, "fds must be integers or null");
      }
    }
  }
  int32_t iv;
  if ((v = get_prop(env, opts, "uid")) != NULL) {
    if (!get_int(env, v, &iv)) { free_spec(&s); return throw_type(env, "uid"); }
    s.set_uid = true;
    s.uid = (uid_t)iv;
  }
  if ((v = get_prop(env, opts, "gid")) != NULL) {
    if (!get_int(env, v, &iv)) { free_spec(&s); return throw_type(env, "gid"); }
    s.set_gid = true;
    s.gid = (gid_t)iv;
  }
  if ((v = get_prop(env, opts, "groups")) != NULL) {
    uint32_t n;
    napi_get_array_length(env, v, &n);
    s.groups = calloc(n + 1, sizeof(gid_t));
    s.ngroups = (int)n;
    s.set_groups = true;
    for (uint32_t i = 0; i < n; i++) {
      napi_value e;
      napi_get_element(env, v, i, &e);
      if (!get_int(env, e, &iv)) { free_spec(&s); return throw_type(env, "groups"); }
      s.groups[i] = (gid_t)iv;
    }
  }
  if ((v = get_prop(env, opts, "umask")) != NULL && !get_int(env, v, &s.umask_value)) {
    free_spec(&s);
    return throw_type(env, "umask");
  }
  if ((v = get_prop(env, opts, "session")) != NULL) {
    char mode[16] = {0};
    size_t n;
    napi_get_value_string_utf8(env, v, mode, sizeof mode, &n);
    s.session = strcmp(mode, "setsid") == 0 ? 1 : strcmp(mode, "setpgid") == 0 ? 2 : 0;
  }
  if ((v = get_prop(env, opts, "rlimits")) != NULL) {
    uint32_t n;
    napi_get_array_length(env, v, &n);
    if (n > 16) { free_spec(&s); return throw_type(env, "at most 16 rlimits"); }
    for (uint32_t i = 0; i < n; i++) {
      napi_value e, r0, r1, r2;
      napi_get_element(env, v, i, &e);
      napi_get_element(env, e, 0, &r0);
      napi_get_element(env, e, 1, &r1);
      napi_get_element(env, e, 2, &r2);
      uint64_t soft, hard;
      if (!get_int(env, r0, &iv) || !get_u64_like(env, r1, &soft) || !get_u64_like(env, r2, &hard)) {
        free_spec(&s);
        return throw_type(env, "rlimits are [resource, soft, hard]");
      }
      s.rlimits[i].resource = iv;
      s.rlimits[i].limit.rlim_cur = soft;
      s.rlimits[i].limit.rlim_max = hard;
    }
    s.nrlimits = (int)n;
  }
  if ((v = get_prop(env, opts, "listenEnv")) != NULL) napi_get_value_bool(env, v, &s.listen_env);
  if ((v = get_prop(env, opts, "watchdogEnv")) != NULL) napi_get_value_bool(env, v, &s.watchdog_env);
  if ((v = get_prop(env, opts, "cgroupFd")) != NULL && !get_int(env, v, &s.cgroup_fd)) {
    free_spec(&s);
    return throw_type(env, "cgroupFd");
  }

  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) < 0) {
    int err = errno;
    free_spec(&s);
    return throw_errno(env, err, "pipe2");
  }
  /* Signals stay blocked from clone until the child has reset its handlers: a signal arriving in
   * between would run the parent's handler (libuv's) inside the child. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);

  /*
   * First choice: clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD), what posix_spawn does. The child
   * borrows this process's memory instead of copying it (a full fork of Node costs milliseconds),
   * runs on a stack of its own, and this thread waits until it has exec'd or failed.
   */
  int pidfd = -1;
  long pid = -1;
  const char *how = "clone";
  void *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack != MAP_FAILED) {
    ChildArgs args = {.spec = &s, .read_end = errpipe[0], .write_end = errpipe[1]};
    s.cgroup_by_write = true;
    pid = clone(child_entry, (char *)stack + CHILD_STACK_SIZE, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args, &pidfd);
    int err = errno;
    munmap(stack, CHILD_STACK_SIZE);
    errno = err;
  }
  if (pid < 0 && (stack == MAP_FAILED || errno == EINVAL || errno == ENOSYS)) {
    /* A full fork: clone3 (5.3+) gives the pidfd and can place the child in its cgroup at birth. */
    s.cgroup_by_write = false;
    struct clone_args_v2 ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_PIDFD | (s.cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
    ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
    ca.exit_signal = SIGCHLD;
    ca.cgroup = s.cgroup_fd >= 0 ? (uint64_t)s.cgroup_fd : 0;
    size_t ca_size = s.cgroup_fd >= 0 ? sizeof ca : 64;
    how = "clone3";
    pid = syscall(SYS_clone3, &ca, ca_size);
    if (pid < 0 && errno == ENOSYS && s.cgroup_fd < 0) {
      /* Kernels before 5.3: fork, then pidfd_open in the parent. Race-free because the child is
       * ours and nothing in this process reaps a child it did not spawn through libuv. */
      how = "fork";
      pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    }
    if (pid == 0) {
      close(errpipe[0]);
      child_run(&s, errpipe[1]);
    }
  }
  int clone_err = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(errpipe[1]);
  if (pid < 0) {
    close(errpipe[0]);
    free_spec(&s);
    return throw_errno(env, clone_err, how);
  }
  if (pidfd < 0) {
    pidfd = sys_pidfd_open((pid_t)pid, 0);
    if (pidfd < 0) {
      int err = errno;
      close(errpipe[0]);
      free_spec(&s);
      return throw_errno(env, err, "pidfd_open(child)");
    }
  }
  ChildFailure f;
  ssize_t got;
  do got = read(errpipe[0], &f, sizeof f);
  while (got < 0 && errno == EINTR);
  close(errpipe[0]);
  free_spec(&s);
  if (got == (ssize_t)sizeof f) {
    siginfo_t si;
    int r;
    do r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
    while (r < 0 && errno == EINTR);
    close(pidfd);
    return throw_errno(env, f.err, step_name(f.step));
  }
  napi_value result;
  napi_create_object(env, &result);
  set_prop(env, result, "pid", make_int(env, pid));
  set_prop(env, result, "pidfd", make_int(env, pidfd));
  return result;
}

/*
 * execve(file, argv, env): replaces this process image (daemon-reexec). Only returns by throwing.
 * Fds without FD_CLOEXEC, the PID, the children and the subreaper bit carry over.
 */
static napi_value Execve(napi_env env, napi_callback_info info) {
  ARGS(3);
  char *file = dup_string(env, argv[0]);
  size_t n = 0, m = 0;
  char **args = string_array(env, argv[1], 0, &n);
  char **envp = string_array(env, argv[2], 0, &m);
  if (file == NULL || args == NULL || envp == NULL) {
    free(file);
    return throw_type(env, "execve(file: string, argv: string[], env: string[])");
  }
  execve(file, args, envp);
  int err = errno;
  for (size_t i = 0; i < n; i++) free(args[i]);
  for (size_t i = 0; i < m; i++) free(envp[i]);
  free(args);
  free(envp);
  free(file);
  return throw_errno(env, err, "execve");
}

/* ------------------------------------------------------------------------------------------ */
/* Feature probes                                                                              */

static napi_value Probe(napi_env env, napi_callback_info info) {
  napi_value obj;
  napi_create_object(env, &obj);
  pid_t self = getpid();

  int fd = sys_pidfd_open(self, 0);
  set_prop(env, obj, "pidfdOpen", make_bool(env, fd >= 0));
  int nb = sys_pidfd_open(self, O_NONBLOCK);
  set_prop(env, obj, "pidfdNonblock", make_bool(env, nb >= 0));
  if (nb >= 0) close(nb);

  bool send_signal = false, waitid_pidfd = false, pidfs = false, handles = false, get_info = false,
       info_exit = false, getfd = false, process_group = false;
  if (fd >= 0) {
    send_signal = syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) == 0;
    /* 4 = PIDFD_SIGNAL_PROCESS_GROUP; EINVAL on kernels that do not know the flag. */
    process_group = syscall(SYS_pidfd_send_signal, fd, 0, NULL, 4) == 0 || errno == ESRCH || errno == EPERM;
    siginfo_t si;
    waitid_pidfd = waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0 && errno == ECHILD;
    struct statfs sfs;
    pidfs = fstatfs(fd, &sfs) == 0 && (uint64_t)sfs.f_type == PID_FS_MAGIC;
    if (pidfs) {
      union {
        struct file_handle fh;
        uint8_t space[sizeof(struct file_handle) + 8];
      } h;
      memset(&h, 0, sizeof h);
      h.fh.handle_bytes = 8;
      int mnt;
      handles = syscall(SYS_name_to_handle_at, fd, "", &h.fh, &mnt, AT_EMPTY_PATH) == 0;
    }
    struct pidfd_info_v0 pi;
    memset(&pi, 0, sizeof pi);
    pi.mask = PIDFD_INFO_PID;
    get_info = ioctl(fd, PIDFD_GET_INFO_64, &pi) == 0;
    int dupfd = (int)syscall(SYS_pidfd_getfd, fd, fd, 0);
    getfd = dupfd >= 0 || errno == EPERM;
    if (dupfd >= 0) close(dupfd);
  }
  set_prop(env, obj, "pidfdSendSignal", make_bool(env, send_signal));
  set_prop(env, obj, "signalProcessGroup", make_bool(env, process_group));
  set_prop(env, obj, "waitidPidfd", make_bool(env, waitid_pidfd));
  set_prop(env, obj, "pidfsIds", make_bool(env, pidfs && (handles || sizeof(ino_t) == 8)));
  set_prop(env, obj, "fileHandles", make_bool(env, handles));
  set_prop(env, obj, "getInfo", make_bool(env, get_info));
  set_prop(env, obj, "pidfdGetfd", make_bool(env, getfd));

  /* clone3 and PIDFD_INFO_EXIT together: a short-lived child, reaped, then asked how it ended. */
  {
    int cpidfd = -1;
    struct clone_args_v2 ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_PIDFD;
    ca.pidfd = (uint64_t)(uintptr_t)&cpidfd;
    ca.exit_signal = 0; /* no SIGCHLD: nothing else in the process hears of this child */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long pid = syscall(SYS_clone3, &ca, 64);
    if (pid == 0) syscall(SYS_exit_group, 7);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid > 0 && cpidfd >= 0) {
      siginfo_t si;
      int r;
      do r = waitid((idtype_t)P_PIDFD, (id_t)cpidfd, &si, WEXITED | __WALL);
      while (r < 0 && errno == EINTR);
      if (get_info) {
        struct pidfd_info_v0 pi;
        memset(&pi, 0, sizeof pi);
        pi.mask = PIDFD_INFO_EXIT;
        info_exit = ioctl(cpidfd, PIDFD_GET_INFO_64, &pi) == 0 && (pi.mask & PIDFD_INFO_EXIT) &&
                    WIFEXITED(pi.exit_code) && WEXITSTATUS(pi.exit_code) == 7;
      }
      close(cpidfd);
    }
    set_prop(env, obj, "clone3", make_bool(env, pid > 0));
  }
  set_prop(env, obj, "infoExit", make_bool(env, info_exit));

  int pair[2];
  bool peer_pidfd = false, pass_pidfd = false;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0) {
    int pfd = -1;
    socklen_t len = sizeof pfd;
    /* A socketpair has no peer process on some kernels (ENODATA) yet the option exists. */
    peer_pidfd = getsockopt(pair[0], SOL_SOCKET, SO_PEERPIDFD, &pfd, &len) == 0 || errno == ENODATA;
    if (pfd >= 0) close(pfd);
    int one = 1;
    pass_pidfd = setsockopt(pair[0], SOL_SOCKET, SO_PASSPIDFD, &one, sizeof one) == 0;
    close(pair[0]);
    close(pair[1]);
  }
  set_prop(env, obj, "peerPidfd", make_bool(env, peer_pidfd));
  set_prop(env, obj, "passPidfd", make_bool(env, pass_pidfd));
  if (fd >= 0) close(fd);
  return obj;
}

/* ------------------------------------------------------------------------------------------ */

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
#define F(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}
      F("pidfdOpen", PidfdOpen),
      F("pidfdSendSignal", PidfdSendSignal),
      F("pidfdId", PidfdId),
      F("pidfdGetInfo", PidfdGetInfo),
      F("pidfdGetfd", PidfdGetfd),
      F("waitPidfd", WaitPidfd),
      F("reapAny", ReapAny),
      F("setChildSubreaper", SetChildSubreaper),
      F("getChildSubreaper", GetChildSubreaper),
      F("close", Close),
      F("dup", Dup),
      F("setCloexec", SetCloexec),
      F("pipe", Pipe),
      F("pollFd", PollFd),
      F("spliceToFile", SpliceToFile),
      F("socket", Socket),
      F("socketPair", SocketPair),
      F("bind", Bind),
      F("connect", Connect),
      F("setSockOpt", SetSockOpt),
      F("peerCredentials", PeerCredentials),
      F("peerPidfd", PeerPidfd),
      F("sendMessage", SendMessage),
      F("receiveMessage", ReceiveMessage),
      F("watch", Watch),
      F("spawn", Spawn),
      F("execve", Execve),
      F("probe", Probe),
#undef F
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
