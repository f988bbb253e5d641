/*
 * faultfs: a fault-injecting layer under the gateway's store, for the power-loss and
 * I/O-error tests (tests/crash/). Loaded with LD_PRELOAD into one `igo-gateway serve`
 * process; never part of the gateway itself.
 *
 * It watches the files directly in one directory (FAULTFS_ROOT, the data directory):
 *
 * - Power loss (undo logging). Before every write, pwrite or ftruncate of a watched file
 *   it appends the bytes about to be overwritten (offset, old bytes, old size) to that
 *   file's undo log in FAULTFS_STATE/undo/. fsync or fdatasync of the file discards its
 *   undo log: what was written before is durable. A file created (O_CREAT) or unlinked in
 *   the directory is noted in FAULTFS_STATE/dir.log (an unlinked file is kept, hard-linked
 *   into FAULTFS_STATE/grave/ with its undo log); fsync of the directory itself discards
 *   dir.log. After SIGKILL, tests/crash/faultfs/__init__.py applies the logs in reverse:
 *   every file is as it was at its last fsync, every directory entry as at the last fsync
 *   of the directory. Each record is written completely before the data write it
 *   describes, so a record cut short by the kill is one whose write never happened.
 *   rename(2), writev/pwritev, fallocate and shared writable mmap of a watched file are
 *   not modelled: each is noted in FAULTFS_STATE/unmodelled (and passed on) and the tests
 *   fail if there is any. SQLite's -shm, which SQLite maps, is the one exception.
 *
 * - Injected errors, controlled by files in FAULTFS_CONTROL:
 *     enospc        while it exists, every write/pwrite/ftruncate of a watched file fails
 *                   with ENOSPC (a full volume that takes nothing at all);
 *     eio           while it exists, the same with EIO;
 *     eio-nth       holding a number N: the N-th write from now fails once with EIO (the
 *                   file is consumed when read).
 *   Every injected error is appended to FAULTFS_STATE/injected.log.
 *
 * - A slow disk: FAULTFS_FSYNC_DELAY_MS makes every fsync/fdatasync of a watched file
 *   wait that long first, so that a power cut often finds written but unsynced data.
 *
 * Not modelled: writes through mmap (SQLite's -shm wal-index, which is not durable and is
 * rebuilt by SQLite on open; the tests delete it at the power cut), reordering of writes
 * within one fsync interval (everything since the last fsync is lost, never a part), torn
 * sectors, fsync itself failing, and the data directory's own entry in its parent.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536
#define UNDO_MAGIC 0x46465544u /* "DUFF" */

struct undo_header {
    uint32_t magic;
    uint32_t kind; /* 1: write, 2: truncate */
    uint64_t offset;
    uint64_t length;   /* old bytes that follow */
    uint64_t old_size; /* the file's size before the operation */
} __attribute__((packed));

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_posix_fallocate)(int, off_t, off_t);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);

static char root[PATH_MAX];
static char state[PATH_MAX];
static char control[PATH_MAX];
static int enabled;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *fd_path[MAX_FDS]; /* watched file (or the root itself) per fd */
static long eio_countdown = -1;
static unsigned long graves;
static long fsync_delay_ms;

__attribute__((constructor)) static void faultfs_init(void) {
    real_open = dlsym(RTLD_NEXT, "open");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_close = dlsym(RTLD_NEXT, "close");
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_unlink = dlsym(RTLD_NEXT, "unlink");
    real_unlinkat = dlsym(RTLD_NEXT, "unlinkat");
    real_rename = dlsym(RTLD_NEXT, "rename");
    real_renameat = dlsym(RTLD_NEXT, "renameat");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_pwritev = dlsym(RTLD_NEXT, "pwritev");
    real_fallocate = dlsym(RTLD_NEXT, "fallocate");
    real_posix_fallocate = dlsym(RTLD_NEXT, "posix_fallocate");
    real_mmap = dlsym(RTLD_NEXT, "mmap");
    const char *r = getenv("FAULTFS_ROOT");
    const char *s = getenv("FAULTFS_STATE");
    const char *c = getenv("FAULTFS_CONTROL");
    if (r == NULL || s == NULL || c == NULL || realpath(r, root) == NULL) {
        return;
    }
    if (strlen(root) > 1024 || strlen(s) > 1024 || strlen(c) > 1024) {
        abort(); /* every path built from these must fit in PATH_MAX */
    }
    const char *delay = getenv("FAULTFS_FSYNC_DELAY_MS");
    fsync_delay_ms = delay ? strtol(delay, NULL, 10) : 0;
    snprintf(state, sizeof state, "%s", s);
    snprintf(control, sizeof control, "%s", c);
    enabled = 1;
}

/* Exported so that the gateway can tell the shim is loaded (see the test-only
 * IGO_TEST_ONLY_SQLITE_SYNCHRONOUS_OFF in adapters/storage/database.py). */
int igo_faultfs_active(void) { return enabled; }

/* --- small helpers (all with the real calls) ------------------------------------------ */

static void append(const char *path, const void *data, size_t size) {
    int fd = real_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        abort(); /* the model cannot be kept: better no result than a wrong one */
    }
    const char *p = data;
    while (size > 0) {
        ssize_t n = real_write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            abort();
        }
        p += n;
        size -= (size_t)n;
    }
    real_close(fd);
}

static void note(const char *name, const char *line) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", state, name);
    append(path, line, strlen(line));
}

static void undo_path(const char *watched, char *out, size_t size) {
    const char *base = strrchr(watched, '/');
    snprintf(out, size, "%s/undo/%s", state, base ? base + 1 : watched);
}

/* The absolute path of `path` if it names a file directly in the root, else NULL. */
static char *watched_path(int dirfd, const char *path) {
    if (!enabled || path == NULL) return NULL;
    char joined[PATH_MAX], dir[PATH_MAX], resolved[PATH_MAX];
    if (path[0] == '/') {
        snprintf(joined, sizeof joined, "%s", path);
    } else if (dirfd == AT_FDCWD) {
        if (getcwd(dir, sizeof dir) == NULL) return NULL;
        snprintf(joined, sizeof joined, "%s/%s", dir, path);
    } else {
        return NULL; /* relative to another directory: not used by the store */
    }
    if (realpath(joined, resolved) != NULL) {
        if (strcmp(resolved, root) == 0) return strdup(resolved);
    }
    char *slash = strrchr(joined, '/');
    if (slash == NULL) return NULL;
    *slash = '\0';
    const char *base = slash + 1;
    if (realpath(joined[0] ? joined : "/", dir) == NULL || strcmp(dir, root) != 0) return NULL;
    if (base[0] == '\0') return NULL;
    char *out = malloc(PATH_MAX);
    snprintf(out, PATH_MAX, "%s/%s", root, base);
    return out;
}

static int is_root(const char *path) { return strcmp(path, root) == 0; }

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* An error to inject for the next write to a watched file, or 0. */
static int injected_error(const char *path, const char *call) {
    char flag[PATH_MAX], line[PATH_MAX + 64];
    int error = 0;
    snprintf(flag, sizeof flag, "%s/enospc", control);
    if (exists(flag)) error = ENOSPC;
    snprintf(flag, sizeof flag, "%s/eio", control);
    if (!error && exists(flag)) error = EIO;
    snprintf(flag, sizeof flag, "%s/eio-nth", control);
    if (eio_countdown < 0 && exists(flag)) {
        char number[32] = {0};
        int fd = real_open(flag, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, number, sizeof number - 1);
            real_close(fd);
            if (n > 0) eio_countdown = strtol(number, NULL, 10);
        }
        real_unlink(flag);
    }
    if (eio_countdown > 0 && call[0] != 'f') {
        if (--eio_countdown == 0) {
            eio_countdown = -1;
            if (!error) error = EIO;
        }
    }
    if (error) {
        snprintf(line, sizeof line, "%s %s %s\n", error == EIO ? "EIO" : "ENOSPC", call, path);
        note("injected.log", line);
    }
    return error;
}

/* Append the pre-image of [offset, offset+length) and the size to the file's undo log. */
static void save_preimage(int fd, const char *path, uint32_t kind, uint64_t offset,
                          uint64_t length) {
    struct stat st;
    if (fstat(fd, &st) != 0) abort();
    uint64_t size = (uint64_t)st.st_size;
    uint64_t old = 0;
    if (offset < size) old = (size - offset < length) ? size - offset : length;
    char *bytes = old ? malloc(old) : NULL;
    if (old) {
        /* The file may be open write-only: read the bytes through a fresh descriptor. */
        int rfd = real_open(path, O_RDONLY | O_CLOEXEC);
        if (rfd < 0) abort();
        uint64_t done = 0;
        while (done < old) {
            ssize_t n = pread(rfd, bytes + done, old - done, (off_t)(offset + done));
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                abort();
            }
            done += (uint64_t)n;
        }
        real_close(rfd);
    }
    struct undo_header header = {UNDO_MAGIC, kind, offset, old, size};
    char log[PATH_MAX];
    undo_path(path, log, sizeof log);
    char *record = malloc(sizeof header + old);
    memcpy(record, &header, sizeof header);
    if (old) memcpy(record + sizeof header, bytes, old);
    append(log, record, sizeof header + old); /* one write: cut short only by the kill */
    free(record);
    free(bytes);
}

static void forget_undo(const char *path) {
    char log[PATH_MAX];
    undo_path(path, log, sizeof log);
    real_unlink(log);
}

static void track(int fd, char *path) {
    if (fd < 0 || fd >= MAX_FDS) {
        free(path);
        return;
    }
    free(fd_path[fd]);
    fd_path[fd] = path;
}

static int opened(int dirfd, const char *path, int flags, mode_t mode, int at) {
    char *watched = watched_path(dirfd, path);
    if (watched == NULL) {
        return at ? real_openat(dirfd, path, flags, mode) : real_open(path, flags, mode);
    }
    pthread_mutex_lock(&lock);
    int existed = exists(watched);
    if (existed && (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && !is_root(watched)) {
        int rfd = real_open(watched, O_RDONLY | O_CLOEXEC);
        if (rfd >= 0) {
            struct stat st;
            if (fstat(rfd, &st) == 0) save_preimage(rfd, watched, 2, 0, (uint64_t)st.st_size);
            real_close(rfd);
        }
    }
    int fd = at ? real_openat(dirfd, path, flags, mode) : real_open(path, flags, mode);
    if (fd >= 0) {
        if (!existed && !is_root(watched)) {
            char line[PATH_MAX + 4];
            forget_undo(watched); /* a new file: nothing of an older one applies */
            snprintf(line, sizeof line, "C %s\n", watched);
            note("dir.log", line);
        }
        track(fd, watched);
    } else {
        free(watched);
    }
    pthread_mutex_unlock(&lock);
    return fd;
}

static mode_t mode_of(int flags, va_list args) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(args, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_of(flags, args);
    va_end(args);
    return opened(AT_FDCWD, path, flags, mode, 0);
}

int open64(const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_of(flags, args);
    va_end(args);
    return opened(AT_FDCWD, path, flags, mode, 0);
}

int openat(int dirfd, const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_of(flags, args);
    va_end(args);
    return opened(dirfd, path, flags, mode, 1);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_of(flags, args);
    va_end(args);
    return opened(dirfd, path, flags, mode, 1);
}

int __open_2(const char *path, int flags) { return opened(AT_FDCWD, path, flags, 0, 0); }
int __open64_2(const char *path, int flags) { return opened(AT_FDCWD, path, flags, 0, 0); }

int close(int fd) {
    if (enabled && fd >= 0 && fd < MAX_FDS && fd_path[fd] != NULL) {
        pthread_mutex_lock(&lock);
        free(fd_path[fd]);
        fd_path[fd] = NULL;
        int result = real_close(fd);
        pthread_mutex_unlock(&lock);
        return result;
    }
    return real_close(fd);
}

static const char *watched_fd(int fd) {
    if (!enabled || fd < 0 || fd >= MAX_FDS || fd_path[fd] == NULL) return NULL;
    return is_root(fd_path[fd]) ? NULL : fd_path[fd];
}

static ssize_t written(int fd, const void *data, size_t size, off_t offset, int positioned) {
    const char *path = watched_fd(fd);
    if (path == NULL) {
        return positioned ? real_pwrite(fd, data, size, offset) : real_write(fd, data, size);
    }
    pthread_mutex_lock(&lock);
    int error = injected_error(path, positioned ? "pwrite" : "write");
    if (error) {
        pthread_mutex_unlock(&lock);
        errno = error;
        return -1;
    }
    off_t at = offset;
    if (!positioned) {
        int flags = fcntl(fd, F_GETFL);
        at = (flags >= 0 && (flags & O_APPEND)) ? lseek(fd, 0, SEEK_END) : lseek(fd, 0, SEEK_CUR);
    }
    if (size > 0 && at >= 0) save_preimage(fd, path, 1, (uint64_t)at, size);
    ssize_t result = positioned ? real_pwrite(fd, data, size, offset) : real_write(fd, data, size);
    pthread_mutex_unlock(&lock);
    return result;
}

ssize_t write(int fd, const void *data, size_t size) { return written(fd, data, size, 0, 0); }
ssize_t pwrite(int fd, const void *data, size_t size, off_t offset) {
    return written(fd, data, size, offset, 1);
}
ssize_t pwrite64(int fd, const void *data, size_t size, off_t offset) {
    return written(fd, data, size, offset, 1);
}

static int truncated(int fd, off_t length) {
    const char *path = watched_fd(fd);
    if (path == NULL) return real_ftruncate(fd, length);
    pthread_mutex_lock(&lock);
    int error = injected_error(path, "ftruncate");
    if (error) {
        pthread_mutex_unlock(&lock);
        errno = error;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == 0) {
        uint64_t from = (uint64_t)length;
        uint64_t size = (uint64_t)st.st_size;
        save_preimage(fd, path, 2, from, size > from ? size - from : 0);
    }
    int result = real_ftruncate(fd, length);
    pthread_mutex_unlock(&lock);
    return result;
}

int ftruncate(int fd, off_t length) { return truncated(fd, length); }
int ftruncate64(int fd, off_t length) { return truncated(fd, length); }

static int synced(int fd, int data_only) {
    if (fsync_delay_ms > 0 && watched_fd(fd) != NULL) {
        struct timespec pause = {fsync_delay_ms / 1000, (fsync_delay_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
    int result = data_only ? real_fdatasync(fd) : real_fsync(fd);
    if (result != 0 || !enabled || fd < 0 || fd >= MAX_FDS || fd_path[fd] == NULL) return result;
    pthread_mutex_lock(&lock);
    if (fd_path[fd] != NULL) {
        if (is_root(fd_path[fd])) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/dir.log", state);
            real_unlink(path); /* the directory's entries are durable now */
        } else {
            forget_undo(fd_path[fd]);
        }
    }
    pthread_mutex_unlock(&lock);
    return result;
}

int fsync(int fd) { return synced(fd, 0); }
int fdatasync(int fd) { return synced(fd, 1); }

static int removed(int dirfd, const char *path, int flags, int at) {
    char *watched = (flags & AT_REMOVEDIR) ? NULL : watched_path(dirfd, path);
    if (watched == NULL || is_root(watched) || !exists(watched)) {
        free(watched);
        return at ? real_unlinkat(dirfd, path, flags) : real_unlink(path);
    }
    pthread_mutex_lock(&lock);
    /* Keep the file (and its undo log) in the grave until the directory is synced. */
    char grave[PATH_MAX], log[PATH_MAX], grave_log[PATH_MAX], line[3 * PATH_MAX];
    snprintf(grave, sizeof grave, "%s/grave/%lu-%d", state, ++graves, (int)getpid());
    if (link(watched, grave) != 0) abort();
    undo_path(watched, log, sizeof log);
    snprintf(grave_log, sizeof grave_log, "%s.undo", grave);
    if (exists(log) && real_rename(log, grave_log) != 0) abort();
    snprintf(line, sizeof line, "U %s\t%s\n", watched, grave);
    note("dir.log", line);
    int result = at ? real_unlinkat(dirfd, path, flags) : real_unlink(path);
    pthread_mutex_unlock(&lock);
    free(watched);
    return result;
}

int unlink(const char *path) { return removed(AT_FDCWD, path, 0, 0); }
int unlinkat(int dirfd, const char *path, int flags) { return removed(dirfd, path, flags, 1); }

static void unmodelled(const char *call) {
    char line[64];
    snprintf(line, sizeof line, "%s\n", call);
    note("unmodelled", line);
}

int rename(const char *from, const char *to) {
    char *a = watched_path(AT_FDCWD, from), *b = watched_path(AT_FDCWD, to);
    if (a || b) unmodelled("rename");
    free(a);
    free(b);
    return real_rename(from, to);
}

int renameat(int fromfd, const char *from, int tofd, const char *to) {
    char *a = watched_path(fromfd, from), *b = watched_path(tofd, to);
    if (a || b) unmodelled("renameat");
    free(a);
    free(b);
    return real_renameat(fromfd, from, tofd, to);
}

static int ends_with(const char *text, const char *end) {
    size_t a = strlen(text), b = strlen(end);
    return a >= b && strcmp(text + a - b, end) == 0;
}

ssize_t writev(int fd, const struct iovec *iov, int count) {
    if (watched_fd(fd) != NULL) unmodelled("writev");
    return real_writev(fd, iov, count);
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t offset) {
    if (watched_fd(fd) != NULL) unmodelled("pwritev");
    return real_pwritev(fd, iov, count, offset);
}

int fallocate(int fd, int mode, off_t offset, off_t length) {
    if (watched_fd(fd) != NULL) unmodelled("fallocate");
    return real_fallocate(fd, mode, offset, length);
}

int posix_fallocate(int fd, off_t offset, off_t length) {
    if (watched_fd(fd) != NULL) unmodelled("posix_fallocate");
    return real_posix_fallocate(fd, offset, length);
}

void *mmap(void *address, size_t length, int protection, int flags, int fd, off_t offset) {
    const char *path = watched_fd(fd);
    if (path != NULL && (protection & PROT_WRITE) && (flags & MAP_SHARED) &&
        !ends_with(path, "-shm")) {
        unmodelled("mmap");
    }
    return real_mmap(address, length, protection, flags, fd, offset);
}
