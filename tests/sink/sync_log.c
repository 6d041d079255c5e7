/* Preloaded into the sink by tests/sink/commit.rs: every fsync or fdatasync
 * of a regular file is held for $SYNC_DELAY_MS, runs for real, and once it
 * has returned is logged to $SYNC_LOG as "<inode> <size>", the size the file
 * had before the sync began (what the sync is sure to have made durable).
 * An answer sent before the sync that covers its batch is then seen as a
 * batch end beyond every logged size. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef int (*sync_fn)(int);

static int logged(int fd, const char *name) {
    sync_fn real = (sync_fn)dlsym(RTLD_NEXT, name);
    if (!real) return -1;
    struct stat st;
    int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    const char *delay = getenv("SYNC_DELAY_MS");
    if (regular && delay) {
        long ms = atol(delay);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    int rc = real(fd);
    const char *path = getenv("SYNC_LOG");
    if (rc == 0 && regular && path) {
        char line[64];
        int n = snprintf(line, sizeof line, "%llu %lld\n",
                         (unsigned long long)st.st_ino, (long long)st.st_size);
        int log = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (log >= 0) {
            if (write(log, line, (size_t)n) != n) rc = -1;
            close(log);
        }
    }
    return rc;
}

int fsync(int fd) { return logged(fd, "fsync"); }
int fdatasync(int fd) { return logged(fd, "fdatasync"); }
