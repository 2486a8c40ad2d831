"""The seccomp allow-list: what an app may ask of the kernel. Anything else is denied.

Grouped by what it is for; the kernel's own name for each call. Not on the list,
so denied: mounting and namespaces (mount, umount2, pivot_root, chroot, unshare,
setns, the new mount API), tracing other processes (ptrace, process_vm_*),
kernel modules and kexec, bpf, perf_event_open, keyrings (keyctl, add_key,
request_key), clocks and host names, swap, reboot, quotas, accounting,
open_by_handle_at, userfaultfd, personality, iopl/ioperm. ``socket`` and ``clone``
are allowed by their arguments (:mod:`seccomp`): TCP, UDP and unix sockets only;
threads and processes but no new namespaces.
"""

from __future__ import annotations

FILES = """read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 open openat
openat2 creat close close_range lseek stat fstat lstat newfstatat statx statfs fstatfs access
faccessat faccessat2 readlink readlinkat getdents getdents64 getcwd chdir fchdir rename
renameat renameat2 mkdir mkdirat rmdir link linkat unlink unlinkat symlink symlinkat chmod
fchmod fchmodat chown fchown lchown fchownat umask truncate ftruncate fallocate fadvise64
readahead fsync fdatasync sync syncfs sync_file_range flock fcntl dup dup2 dup3 pipe pipe2
sendfile splice tee vmsplice copy_file_range utime utimes utimensat futimesat getxattr
lgetxattr fgetxattr listxattr llistxattr flistxattr ioctl memfd_create inotify_init
inotify_init1 inotify_add_watch inotify_rm_watch"""
MEMORY = """brk mmap munmap mremap mprotect msync mincore madvise mlock munlock mlock2 membarrier
rseq"""
PROCESSES = """fork vfork execve execveat exit exit_group wait4 waitid kill tkill
tgkill getpid getppid gettid getpgrp getpgid setpgid getsid setsid getuid geteuid getgid
getegid getresuid getresgid getgroups capget prctl arch_prctl set_tid_address
set_robust_list get_robust_list futex futex_waitv sched_yield sched_getaffinity
sched_setaffinity sched_getparam sched_getscheduler sched_get_priority_max
sched_get_priority_min getpriority setpriority getrlimit setrlimit prlimit64 getrusage uname
sysinfo times pidfd_open pidfd_send_signal restart_syscall"""
SIGNALS_AND_TIME = """rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend rt_sigpending
rt_sigtimedwait rt_sigqueueinfo sigaltstack pause alarm nanosleep clock_nanosleep getitimer
setitimer timer_create timer_settime timer_gettime timer_getoverrun timer_delete
clock_gettime clock_getres gettimeofday time signalfd signalfd4 timerfd_create
timerfd_settime timerfd_gettime eventfd eventfd2"""
WAITING = """poll ppoll select pselect6 epoll_create epoll_create1 epoll_ctl epoll_wait
epoll_pwait epoll_pwait2 getrandom"""
NETWORK = """connect accept accept4 bind listen shutdown getsockname getpeername socketpair
setsockopt getsockopt sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg"""

ALLOWED: tuple[str, ...] = tuple(sorted(set(
    " ".join((FILES, MEMORY, PROCESSES, SIGNALS_AND_TIME, WAITING, NETWORK)).split())))
# Checked by the tests: never on the list.
FORBIDDEN = ("mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "ptrace",
             "process_vm_readv", "process_vm_writev", "init_module", "finit_module",
             "delete_module", "kexec_load", "kexec_file_load", "bpf", "perf_event_open",
             "keyctl", "add_key", "request_key", "settimeofday", "clock_settime",
             "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "swapon", "swapoff",
             "reboot", "quotactl", "acct", "open_by_handle_at", "name_to_handle_at",
             "userfaultfd", "personality", "iopl", "ioperm", "fsopen", "fsmount",
             "move_mount", "open_tree", "fspick", "mknod", "mknodat", "clone3")
