// The system calls the enforcer tests make, each the way a process trying to get past a
// rule would make it: execveat with and without a descriptor, openat2 with RESOLVE flags,
// re-opens through /proc/self/fd, io_uring opens, raw connects and sends. Built by the
// tests (test/enforcer/support.ts, tricksBinary()) with the system C compiler.
//
// Usage: tricks COMMAND ARGS...   Prints one JSON line: {"ok":true,...} or {"errno":N,...}.
// Exec commands print only when the exec fails (then exit 100): a successful exec runs the
// program, whose output is what the caller sees.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void json_string(const char *s, ssize_t n) {
  putchar('"');
  for (ssize_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c == '\n') printf("\\n");
    else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static int fail(const char *what) {
  printf("{\"errno\":%d,\"step\":\"%s\"}\n", errno, what);
  return 100;
}

/* Reads what fd holds (up to 4 KiB) and reports it. */
static int report_read(int fd, const char *extra) {
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0) return fail("read");
  printf("{\"ok\":true%s,\"data\":", extra);
  json_string(buf, n);
  printf("}\n");
  return 0;
}

static int do_exec_fail(const char *step) {
  fflush(stdout);
  return fail(step);
}

static unsigned long long resolve_flags(const char *list) {
  unsigned long long f = 0;
  char *copy = strdup(list), *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (!strcmp(t, "no-xdev")) f |= RESOLVE_NO_XDEV;
    else if (!strcmp(t, "no-magiclinks")) f |= RESOLVE_NO_MAGICLINKS;
    else if (!strcmp(t, "no-symlinks")) f |= RESOLVE_NO_SYMLINKS;
    else if (!strcmp(t, "beneath")) f |= RESOLVE_BENEATH;
    else if (!strcmp(t, "in-root")) f |= RESOLVE_IN_ROOT;
    else if (!strcmp(t, "none")) ;
    else { fprintf(stderr, "unknown resolve flag %s\n", t); exit(2); }
  }
  free(copy);
  return f;
}

/* One IORING_OP_OPENAT through a ring set up by hand (no liburing): no open syscall is made. */
static int iouring_open(const char *path) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  int ring = syscall(__NR_io_uring_setup, 4, &p);
  if (ring < 0) return fail("io_uring_setup");
  size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
  char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
  struct io_uring_sqe *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
  if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) return fail("mmap");
  unsigned *tail = (unsigned *)(sq + p.sq_off.tail), *mask = (unsigned *)(sq + p.sq_off.ring_mask);
  unsigned *array = (unsigned *)(sq + p.sq_off.array);
  unsigned idx = *tail & *mask;
  struct io_uring_sqe *sqe = &sqes[idx];
  memset(sqe, 0, sizeof *sqe);
  sqe->opcode = IORING_OP_OPENAT;
  sqe->fd = AT_FDCWD;
  sqe->addr = (uintptr_t)path;
  sqe->open_flags = O_RDONLY;
  array[idx] = idx;
  __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
  if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) return fail("io_uring_enter");
  unsigned *chead = (unsigned *)(cq + p.cq_off.head);
  struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  unsigned cmask = *(unsigned *)(cq + p.cq_off.ring_mask);
  int res = cqes[*chead & cmask].res;
  if (res < 0) {
    errno = -res;
    return fail("IORING_OP_OPENAT");
  }
  return report_read(res, "");
}

static int inet_addr_of(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *in = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    *len = sizeof *in;
    return AF_INET;
  }
  if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    *len = sizeof *in6;
    return AF_INET6;
  }
  fprintf(stderr, "not an address: %s\n", ip);
  exit(2);
}

/* thread-exec: a thread other than the main one execs (the kernel gives it the process's
 * pid on the way: the exec is reported under the pid it did not have at the call). */
struct thread_exec {
  const char *path;
  char **argv;
};

static void *thread_exec(void *arg) {
  struct thread_exec *t = arg;
  execve(t->path, t->argv, environ);
  exit(do_exec_fail("execve in a thread"));
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: tricks COMMAND ARGS...\n");
    return 2;
  }
  const char *cmd = argv[1], *path = argv[2];

  /* ---- exec ---- */
  if (!strcmp(cmd, "exec")) {  /* exec PATH ARGV0 ARGS... */
    execve(path, argv + 3, environ);
    return do_exec_fail("execve");
  }
  if (!strcmp(cmd, "thread-exec")) {  /* thread-exec PATH ARGV0 ARGS...: execve from a second thread */
    struct thread_exec t = {path, argv + 3};
    pthread_t thread;
    if (pthread_create(&thread, NULL, thread_exec, &t)) return do_exec_fail("pthread_create");
    pthread_join(thread, NULL);
    return 0;
  }
  if (!strcmp(cmd, "execveat")) {  /* execveat(AT_FDCWD, PATH) */
    syscall(__NR_execveat, AT_FDCWD, path, argv + 3, environ, 0);
    return do_exec_fail("execveat");
  }
  if (!strcmp(cmd, "execveat-fd")) {  /* execveat(open(PATH, O_PATH), "", AT_EMPTY_PATH) */
    int fd = open(path, O_PATH);
    if (fd < 0) return fail("open O_PATH");
    syscall(__NR_execveat, fd, "", argv + 3, environ, AT_EMPTY_PATH);
    return do_exec_fail("execveat AT_EMPTY_PATH");
  }
  if (!strcmp(cmd, "fexecve")) {  /* execveat(open(PATH, O_RDONLY), "", AT_EMPTY_PATH) */
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fail("open");
    fexecve(fd, argv + 3, environ);
    return do_exec_fail("fexecve");
  }
  if (!strcmp(cmd, "execveat-dir")) {  /* execveat-dir DIR NAME ARGV0...: execveat(open(DIR), NAME) */
    int dir = open(path, O_PATH | O_DIRECTORY);
    if (dir < 0) return fail("open dir");
    syscall(__NR_execveat, dir, argv[3], argv + 4, environ, 0);
    return do_exec_fail("execveat dirfd");
  }
  if (!strcmp(cmd, "exec-procfd")) {  /* execve("/proc/self/fd/N") of an O_PATH descriptor */
    int fd = open(path, O_PATH);
    if (fd < 0) return fail("open O_PATH");
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    execve(link, argv + 3, environ);
    return do_exec_fail("execve /proc/self/fd");
  }

  /* ---- open ---- */
  if (!strcmp(cmd, "open")) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fail("open");
    return report_read(fd, "");
  }
  if (!strcmp(cmd, "truncate")) {  /* O_WRONLY|O_TRUNC: the side effect a late kill cannot undo */
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0) return fail("open O_TRUNC");
    printf("{\"ok\":true}\n");
    return 0;
  }
  if (!strcmp(cmd, "openat2")) {  /* openat2 DIR NAME FLAGS: openat2(open(DIR), NAME, {O_RDONLY, FLAGS}) */
    if (argc < 5) return 2;
    int dir = open(path, O_PATH | O_DIRECTORY);
    if (dir < 0) return fail("open dir");
    struct open_how how = {.flags = O_RDONLY, .resolve = resolve_flags(argv[4])};
    int fd = syscall(__NR_openat2, dir, argv[3], &how, sizeof how);
    if (fd < 0) return fail("openat2");
    return report_read(fd, "");
  }
  if (!strcmp(cmd, "reopen")) {  /* open(PATH, O_PATH), then open("/proc/self/fd/N", O_RDONLY) */
    int fd = open(path, O_PATH);
    if (fd < 0) return fail("open O_PATH");
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int fd2 = open(link, O_RDONLY);
    if (fd2 < 0) return fail("reopen");
    return report_read(fd2, ",\"opath\":true");
  }
  if (!strcmp(cmd, "reopen-fd")) {  /* reopen-fd N: open("/proc/self/fd/N") of an inherited descriptor */
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%s", path);
    int fd = open(link, O_RDONLY);
    if (fd < 0) return fail("reopen");
    return report_read(fd, "");
  }
  if (!strcmp(cmd, "iouring-open")) return iouring_open(path);

  /* ---- net ---- */
  if (!strcmp(cmd, "connect") || !strcmp(cmd, "sendto") || !strcmp(cmd, "fastopen")) {  /* CMD IP PORT */
    if (argc < 4) return 2;
    struct sockaddr_storage ss;
    socklen_t len;
    int family = inet_addr_of(path, atoi(argv[3]), &ss, &len);
    int udp = !strcmp(cmd, "sendto");
    int s = socket(family, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (s < 0) return fail("socket");
    if (!strcmp(cmd, "connect")) {
      if (connect(s, (struct sockaddr *)&ss, len) < 0) return fail("connect");
      printf("{\"ok\":true}\n");
      return 0;
    }
    if (sendto(s, "x", 1, udp ? 0 : MSG_FASTOPEN, (struct sockaddr *)&ss, len) < 0) return fail("sendto");
    printf("{\"ok\":true}\n");
    return 0;
  }

  /* ---- cost ---- */
  if (!strcmp(cmd, "bench-open")) {  /* bench-open PATH N: ns per openat+close */
    if (argc < 4) return 2;
    long n = atol(argv[3]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) close(openat(AT_FDCWD, path, O_RDONLY));
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;
    printf("{\"ok\":true,\"nsPerOp\":%.1f}\n", ns);
    return 0;
  }
  fprintf(stderr, "unknown command %s\n", cmd);
  return 2;
}
