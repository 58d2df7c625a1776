/* _pycni_linux.c - `_pycni_linux`: the Linux system calls pycni needs that
 * Python 3.11's os module lacks. One source for both builds:
 *
 *  - `pip install .` builds it as the extension module pycni._pycni_linux
 *    (setup.py: optional, skipped with a warning where no C compiler or
 *    Python headers are found);
 *  - the portable bundle's static CPython has it built in as the top-level
 *    module _pycni_linux (scripts/portable/build-python.sh), and the
 *    bundle's launcher installs its setns as posix.setns before pycni is
 *    imported (scripts/portable/launcher.c).
 *
 * setns(fd, nstype=0) has 3.12's os.setns semantics (OSError with errno on
 * failure, the GIL released). pycni.netns prefers os.setns (3.12+, the
 * bundle), then this module, then libc's setns through _ctypes, which
 * costs ~1-2 ms per process to load (dlopen of _ctypes and libffi, its
 * type objects; issue #12).
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <sched.h>

static PyObject *
pycni_setns(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"fd", "nstype", NULL};
    int fd, nstype = 0, res;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "i|i:setns", keywords, &fd, &nstype))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    res = setns(fd, nstype);
    Py_END_ALLOW_THREADS
    if (res != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setns", (PyCFunction)(void (*)(void))pycni_setns, METH_VARARGS | METH_KEYWORDS,
     "setns(fd, nstype=0)\n--\n\nMove the calling thread into the namespace of fd (setns(2))."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pycni_linux",
    "Linux system calls pycni needs that Python 3.11's os lacks (setns).", -1, methods,
};

PyMODINIT_FUNC
PyInit__pycni_linux(void)
{
    return PyModule_Create(&module);
}
