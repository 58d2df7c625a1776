/* launcher.c - the executable of one pycni plugin in the portable bundle.
 *
 * build.sh compiles this once per plugin (-DPLUGIN_NAME="\"bridge\""),
 * statically against musl: the file runtimes exec from CNI_PATH. It finds
 * the directory it lies in (/proc/self/exe: symlinks resolved, so a link
 * to it elsewhere still finds its bundle; argv[0] when /proc is not
 * mounted) and replaces itself with the bundle's static interpreter,
 * DIR/.pycni/python, isolated (-I: no PYTHON* variable, no user site, no
 * working directory on sys.path), without site (-S) and without writing
 * bytecode (-B). The environment, stdin, stdout and stderr are passed on
 * untouched: delegated plugins and the tools a plugin runs see exactly
 * what the runtime gave; so are the arguments (`dhcp daemon ...`). The
 * plugin's name is compiled in, so a renamed executable still runs its
 * plugin.
 *
 * pycni's modules come from .pycni/pycni.bundle (pycni.bundle, built
 * sealed by build.sh: one pread per module instead of a path search and a
 * .pyc open; the .pyc files beside it serve when it cannot be used).
 *
 * sys.frozen and sys.executable are set as a frozen application's are
 * (pycni.invoke serves a delegate in-process when it is a plugin of this
 * very bundle: same directory as sys.executable).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PLUGIN_NAME
#error "compile with -DPLUGIN_NAME='\"name\"'"
#endif

extern char **environ;

/* posix.setns: Python 3.11 has none, pycni.netns uses it when it is there
 * (else _ctypes, which a static interpreter has not): _pycni_linux's. */
static const char CODE[] =
    "import sys, posix\n"
    "if not hasattr(posix, 'setns'):\n"
    "    from _pycni_linux import setns as _setns\n"
    "    posix.setns = _setns\n"
    "sys.frozen = True\n"
    "sys.executable = sys.argv[1]\n"
    "del sys.argv[0]\n"              /* argv: this executable, then its own arguments */
    "from pycni.entry import serve\n"
    "serve(" "'" PLUGIN_NAME "', sys.executable.rpartition('/')[0] + '/.pycni/pycni.bundle')\n";

/* A spec error object on stdout (what a runtime reads) and a line on
 * stderr; exit code 1. Only ever reached when the bundle is broken. */
static int fail(const char *what, const char *path, int err)
{
    char msg[PATH_MAX + 128];
    size_t i, n;
    snprintf(msg, sizeof msg, "pycni " PLUGIN_NAME ": %s %s: %s", what, path, strerror(err));
    printf("{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"");
    for (i = 0, n = strlen(msg); i < n; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    printf("\"}\n");
    fflush(stdout);
    fprintf(stderr, "%s\n", msg);
    return 1;
}

int main(int argc, char **argv)
{
    static char self[PATH_MAX], python[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    char *slash;

    if (n > 0) {
        self[n] = '\0';
    } else if (argv[0] && strchr(argv[0], '/') && realpath(argv[0], self)) {
        /* no /proc: how the runtime named us */
    } else {
        return fail("cannot find its own executable", argv[0] ? argv[0] : "", errno ? errno : ENOENT);
    }
    slash = strrchr(self, '/');
    if (!slash)
        return fail("cannot find its own directory", self, ENOENT);
    if ((size_t)snprintf(python, sizeof python, "%.*s/.pycni/python",
                         (int)(slash - self), self) >= sizeof python)
        return fail("path too long", self, ENAMETOOLONG);

    char **args = calloc((size_t)(argc > 0 ? argc : 1) + 7, sizeof *args);
    int i, k = 0;
    if (!args)
        return fail("cannot run", python, ENOMEM);
    args[k++] = python;
    args[k++] = "-I";
    args[k++] = "-S";
    args[k++] = "-B";
    args[k++] = "-c";
    args[k++] = (char *)CODE;
    args[k++] = self;
    for (i = 1; i < argc; i++)
        args[k++] = argv[i];
    args[k] = NULL;
    execve(python, args, environ);
    return fail("cannot run", python, errno);
}
