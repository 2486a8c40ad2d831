/*
 * edgeward-confine: the two small native steps around bubblewrap when an app starts.
 *
 *   edgeward-confine enter UID GID[,GID...] PROCS[,PROCS...] -- COMMAND...
 *       Run by the agent as root: join the app's cgroups (each cgroup.procs file),
 *       drop to the app's user and groups, and exec COMMAND (bubblewrap, which then
 *       builds the sandbox unprivileged).
 *
 *   edgeward-confine restrict [-r PATH] [-w PATH] [-d PATH] [-b PORT] [-B]
 *                             [-s FD] [-n] -- PROGRAM ARGS...
 *       Run by bubblewrap inside the finished sandbox, as the app's user: set
 *       no_new_privs, confine itself with Landlock (read/execute beneath each -r,
 *       read/write but not execute beneath each -w, open and ioctl each -d device, bind TCP only to
 *       each -b port unless -B; abstract unix sockets and signals scoped to the app),
 *       then load the seccomp filter read from FD with SECCOMP_FILTER_FLAG_LOG, and
 *       exec PROGRAM. Landlock logs the app's denials to the audit subsystem (it is
 *       asked to log across this exec), seccomp logs its refusals: the agent reads
 *       both from the audit netlink socket. -n skips Landlock (complain mode).
 *
 * Why C: it runs at every app start, where a Python interpreter would cost ~30 ms
 * against a budget of a few. It is our own code and uses only the kernel's ABI.
 * Exit status 126 when confinement cannot be set up (nothing of the app has run).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Landlock's ABI (linux/landlock.h of a 6.x kernel; Debian 12's headers stop at ABI 2). */
#define LL_CREATE_RULESET 444
#define LL_ADD_RULE 445
#define LL_RESTRICT_SELF 446
#define LL_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_RULE_NET_PORT 2
#define FS_EXECUTE (1ULL << 0)
#define FS_WRITE_FILE (1ULL << 1)
#define FS_READ_FILE (1ULL << 2)
#define FS_READ_DIR (1ULL << 3)
#define FS_REMOVE_DIR (1ULL << 4)
#define FS_REMOVE_FILE (1ULL << 5)
#define FS_MAKE_CHAR (1ULL << 6)
#define FS_MAKE_DIR (1ULL << 7)
#define FS_MAKE_REG (1ULL << 8)
#define FS_MAKE_SOCK (1ULL << 9)
#define FS_MAKE_FIFO (1ULL << 10)
#define FS_MAKE_BLOCK (1ULL << 11)
#define FS_MAKE_SYM (1ULL << 12)
#define FS_REFER (1ULL << 13)
#define FS_TRUNCATE (1ULL << 14)
#define FS_IOCTL_DEV (1ULL << 15)
#define NET_BIND_TCP (1ULL << 0)
#define SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define SCOPE_SIGNAL (1ULL << 1)
#define LOG_NEW_EXEC_ON (1U << 1)

#define FILE_RIGHTS (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV)
#define READ_RIGHTS (FS_EXECUTE | FS_READ_FILE | FS_READ_DIR)
/* what it may write it may not run: code comes from the signed image or the system */
#define WRITE_RIGHTS (FS_READ_FILE | FS_READ_DIR | FS_WRITE_FILE | FS_REMOVE_DIR | \
                      FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG | FS_MAKE_SOCK | \
                      FS_MAKE_FIFO | FS_MAKE_SYM | FS_REFER | FS_TRUNCATE)
#define DEVICE_RIGHTS (FS_READ_FILE | FS_WRITE_FILE | FS_IOCTL_DEV)
#define MAX_RULES 256
#define MAX_FILTER (4096 * 8) /* BPF_MAXINSNS instructions of 8 bytes */

struct ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

struct net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("edgeward-confine: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(126);
}

static long number(const char *text, long low, long high, const char *what) {
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < low || value > high)
        die("%s %s is not valid", what, text);
    return value;
}

/* The rights the running kernel knows, by Landlock ABI version. */
static uint64_t known_fs(int abi) {
    uint64_t rights = (FS_MAKE_SYM << 1) - 1;
    if (abi >= 2) rights |= FS_REFER;
    if (abi >= 3) rights |= FS_TRUNCATE;
    if (abi >= 5) rights |= FS_IOCTL_DEV;
    return rights;
}

static int enter(int argc, char **argv) {
    /* enter UID GID[,GID...] PROCS[,PROCS...] -- COMMAND... */
    if (argc < 6 || strcmp(argv[4], "--") != 0)
        die("usage: enter UID GID[,GID...] PROCS[,PROCS...] -- COMMAND...");
    uid_t uid = (uid_t)number(argv[1], 1, 0x7fffffff, "uid");
    gid_t groups[32];
    size_t ngroups = 0;
    char *save = NULL;
    for (char *g = strtok_r(argv[2], ",", &save); g; g = strtok_r(NULL, ",", &save)) {
        if (ngroups == 32) die("too many groups");
        groups[ngroups++] = (gid_t)number(g, 1, 0x7fffffff, "gid");
    }
    if (ngroups == 0) die("no gid given");
    save = NULL;
    for (char *p = strtok_r(argv[3], ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1) die("cannot join cgroup %s: %s", p, strerror(errno));
        close(fd);
    }
    if (setgroups(ngroups - 1, groups + 1) || setgid(groups[0]) || setuid(uid))
        die("cannot drop to uid %u: %s", (unsigned)uid, strerror(errno));
    uid_t r, e, s;
    if (getresuid(&r, &e, &s) || r != uid || e != uid || s != uid || getegid() != groups[0])
        die("still privileged after dropping to uid %u", (unsigned)uid);
    execvp(argv[5], argv + 5);
    die("cannot run %s: %s", argv[5], strerror(errno));
    return 126;
}

static void add_path(int ruleset, const char *path, uint64_t rights, uint64_t handled) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return; /* not on this system: nothing to allow */
        die("cannot open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st)) die("cannot stat %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) rights &= FILE_RIGHTS;
    struct path_beneath_attr rule = {rights & handled, fd};
    if (rule.allowed_access && syscall(LL_ADD_RULE, ruleset, LL_RULE_PATH_BENEATH, &rule, 0))
        die("cannot allow %s: %s", path, strerror(errno));
    close(fd);
}

static int restrict_self(int argc, char **argv) {
    const char *paths[MAX_RULES];
    uint64_t rights[MAX_RULES];
    long ports[64];
    int npaths = 0, nports = 0, filter_fd = -1, landlock = 1, bind_any = 0, opt;
    optind = 1;
    while ((opt = getopt(argc, argv, "+r:w:d:b:Bs:n")) != -1) {
        switch (opt) {
        case 'r': case 'w': case 'd':
            if (npaths == MAX_RULES) die("too many paths");
            paths[npaths] = optarg;
            rights[npaths++] = opt == 'r' ? READ_RIGHTS : opt == 'w' ? WRITE_RIGHTS
                                                                      : DEVICE_RIGHTS;
            break;
        case 'b':
            if (nports == 64) die("too many ports");
            ports[nports++] = number(optarg, 0, 65535, "port");
            break;
        case 'B': bind_any = 1; break;
        case 's': filter_fd = (int)number(optarg, 3, 1 << 20, "fd"); break;
        case 'n': landlock = 0; break;
        default: die("usage: restrict [-r|-w|-d PATH] [-b PORT] [-B] [-s FD] [-n] -- PROGRAM");
        }
    }
    if (optind >= argc) die("no program to run");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) die("no_new_privs: %s", strerror(errno));

    if (landlock) {
        int abi = (int)syscall(LL_CREATE_RULESET, NULL, 0, LL_VERSION);
        if (abi < 1) die("the kernel has no Landlock (%s): refusing to start unconfined",
                         strerror(errno));
        struct ruleset_attr attr = {known_fs(abi), 0, 0};
        size_t size = sizeof(attr);
        if (abi < 4) size = sizeof(uint64_t);
        else if (!bind_any) attr.handled_access_net = NET_BIND_TCP;
        if (abi < 6) { if (abi >= 4) size = 2 * sizeof(uint64_t); }
        else attr.scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL;
        int ruleset = (int)syscall(LL_CREATE_RULESET, &attr, size, 0);
        if (ruleset < 0) die("cannot create a Landlock ruleset: %s", strerror(errno));
        for (int i = 0; i < npaths; i++) add_path(ruleset, paths[i], rights[i], attr.handled_access_fs);
        for (int i = 0; i < nports && attr.handled_access_net; i++) {
            struct net_port_attr rule = {NET_BIND_TCP, (uint64_t)ports[i]};
            if (syscall(LL_ADD_RULE, ruleset, LL_RULE_NET_PORT, &rule, 0))
                die("cannot allow binding port %ld: %s", ports[i], strerror(errno));
        }
        if (syscall(LL_RESTRICT_SELF, ruleset, abi >= 7 ? LOG_NEW_EXEC_ON : 0))
            die("cannot enforce Landlock: %s", strerror(errno));
        close(ruleset);
    }

    if (filter_fd >= 0) {
        static unsigned char program[MAX_FILTER + 1];
        size_t have = 0;
        ssize_t got;
        while ((got = read(filter_fd, program + have, sizeof(program) - have)) > 0) have += (size_t)got;
        if (got < 0) die("cannot read the seccomp filter: %s", strerror(errno));
        if (have == 0 || have > MAX_FILTER || have % sizeof(struct sock_filter))
            die("the seccomp filter is malformed (%zu bytes)", have);
        close(filter_fd);
        struct sock_fprog prog = {(unsigned short)(have / sizeof(struct sock_filter)),
                                  (struct sock_filter *)program};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, &prog))
            die("cannot load the seccomp filter: %s", strerror(errno));
    }
    execvp(argv[optind], argv + optind);
    fprintf(stderr, "edgeward-confine: cannot run %s: %s\n", argv[optind], strerror(errno));
    return 127;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "enter") == 0) return enter(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "restrict") == 0) return restrict_self(argc - 1, argv + 1);
    die("usage: edgeward-confine enter|restrict ... (see the source's header)");
    return 126;
}
