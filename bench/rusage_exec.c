/* rusage_exec ARGV...: run ARGV (stdin/stdout/stderr inherited), wait for
 * it with wait4 and write "wall_ns utime_us stime_us maxrss_kb" to fd 3;
 * exit with its exit status. A tiny process (about 1 MiB resident) forks
 * the plugin, so the plugin's ru_maxrss does not start from the RSS of the
 * Python benchmark that runs it: the kernel carries the RSS of the address
 * space a process had before exec into ru_maxrss. Built by bench/scale.py. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec t0, t1;
    struct rusage ru;
    int status;
    if (argc < 2) return 127;
    fcntl(3, F_SETFD, FD_CLOEXEC);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = vfork();
    if (pid == 0) {
        execv(argv[1], argv + 1);
        _exit(127);
    }
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) return 127;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    dprintf(3, "%lld %ld %ld %ld\n",
            (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec),
            (long)(ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec),
            (long)(ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec), ru.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
