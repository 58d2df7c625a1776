/* pycni_linux.c - `_pycni_linux`, built into the portable bundle's static
 * CPython (scripts/portable/build-python.sh).
 *
 * Python 3.11 has no os.setns (3.12 added it); pycni.netns falls back to
 * libc's setns(2) through _ctypes, which a static, dlopen-less interpreter
 * cannot offer. This module provides setns(fd, nstype=0) with 3.12's
 * os.setns semantics (OSError with errno on failure, the GIL released),
 * and the bundle's launcher installs it as posix.setns before pycni is
 * imported, so that pycni.netns takes its os.setns path.
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
    "Linux system calls the portable pycni bundle's interpreter adds.", -1, methods,
};

PyMODINIT_FUNC
PyInit__pycni_linux(void)
{
    return PyModule_Create(&module);
}
