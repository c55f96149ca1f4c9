/* The compiled backend's message methods: a coroutine-function descriptor
 * and the awaitable its calls return. Included by _codec.pyx; public C API
 * only (PyType_FromSpec, vectorcall, am_send, PyIter_Send).
 *
 * CoroutineMethod: what the compiled class holds as receive_text, send_json,
 *   receive, send, ... It stands for a Python coroutine function of
 *   _codec_methods (its "function"): introspection sees that function (its
 *   __code__, __name__, defaults, annotations, and __wrapped__), so
 *   inspect.iscoroutinefunction, Starlette's is_async_callable, anyio and
 *   FastAPI all see a coroutine function, and inspect.signature is the pure
 *   twin's. A call with the usual positional arguments goes straight to a
 *   MethodAwaitable; any other call is the function's own (which awaits one).
 *
 * MethodAwaitable: the coroutine-like object of one call. It does nothing
 *   until first awaited: then it asks _codec.pyx (bws_start) what to await,
 *   the server's receive()/send() on the fast path or a Python coroutine in
 *   the rare cases, drives that, and hands the server's result back to
 *   _codec.pyx to unpack (bws_finish) or, for an OSError from a send, to turn
 *   into WebSocketDisconnect(1006) (bws_send_failed). A Python coroutine in
 *   between would cost a frame per call; this is the same protocol in C.
 *   It is registered as a collections.abc.Coroutine.
 *
 * Hostile callers (tests/test_hostile.py): neither type can be instantiated
 * from Python (Py_TPFLAGS_DISALLOW_INSTANTIATION); a MethodAwaitable refuses
 * re-entry as a running coroutine does (its `executing` flag: send, throw and
 * close while it runs are ValueError("coroutine already executing"), and it
 * holds itself and the driven iterator while they run); a second `await` of a
 * suspended one is RuntimeError("coroutine is being awaited already"); its
 * method and ws are never cleared before dealloc (tp_clear only drops what a
 * finished call no longer needs), so no field a getter reads is ever NULL.
 */

#include <Python.h>
#include <structmember.h>

/* What the result needs, set by bws_start. */
#define BWS_AS_IS 0      /* the awaited value is the result (a Python coroutine's) */
#define BWS_FINISH 1     /* the server's event, for bws_finish to unpack */
#define BWS_SEND 2       /* a server send: the result is None; an OSError is a lost connection */

/* MethodAwaitable states */
#define BWS_NEW 0
#define BWS_RUNNING 1
#define BWS_DONE 2

typedef struct {
    PyObject_HEAD
    PyObject *function;        /* the Python coroutine function */
    vectorcallfunc vectorcall;
    int kind;                  /* the call's kind, for bws_start */
    Py_ssize_t min_args;       /* positional arguments of the direct path, self included */
    Py_ssize_t max_args;
} BwsMethod;

typedef struct {
    PyObject_HEAD
    PyObject *method;          /* the BwsMethod called (its name, for messages) */
    PyObject *ws;
    PyObject *arg;             /* the call's arguments after self, or NULL */
    PyObject *arg2;
    PyObject *inner;           /* the iterator being driven, while running */
    int kind;
    int state;
    int result;                /* BWS_AS_IS, BWS_FINISH or BWS_SEND */
    int executing;             /* inside send/throw/close: re-entry is refused */
} BwsAwait;

/* Set by _codec.pyx before any call. All return a new reference, or NULL with an error set. */
typedef PyObject *(*bws_start_fn)(BwsAwait *aw);                    /* what to await; sets aw->result */
typedef PyObject *(*bws_finish_fn)(BwsAwait *aw, PyObject *event);  /* the result, from the server's event */
typedef PyObject *(*bws_failed_fn)(BwsAwait *aw, PyObject *exc);    /* the exception to raise instead */

static bws_start_fn bws_start = NULL;
static bws_finish_fn bws_finish = NULL;
static bws_failed_fn bws_send_failed = NULL;
static PyObject *bws_core_type = NULL;          /* calls on anything else take the function's path */
/* The last subclass that passed: one compare. A strong reference: a borrowed one would
 * let another type, allocated where a freed subclass was, take the fast path. */
static PyTypeObject *bws_last_core_type = NULL;
static PyTypeObject *BwsAwait_Type = NULL;

/* --------------------------------------------------------------- exceptions */

/* getattr(obj, name) when it exists: 1 (found), 0 (no such attribute) or -1 (error). */
static int bws_optional_attr(PyObject *obj, const char *name, PyObject **result) {
    *result = PyObject_GetAttrString(obj, name);
    if (*result != NULL) return 1;
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
    PyErr_Clear();
    return 0;
}

static PyObject *bws_fetch_exception(void) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

static void bws_raise_exception(PyObject *exc) { /* steals exc; no implicit context chaining */
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *type = (PyObject *)Py_TYPE(exc);
    Py_INCREF(type);
    PyErr_Restore(type, exc, PyException_GetTraceback(exc));
#endif
}

/* StopIteration(value) as the pending error; value is stolen. None sets nothing: an
 * iterator's NULL with no error is StopIteration(None) to every consumer. */
static void bws_set_stop(PyObject *value, int always) {
    if (value == Py_None && !always) {
        Py_DECREF(value);
        return;
    }
    if (PyTuple_Check(value) || PyExceptionInstance_Check(value)) {
        /* PyErr_SetObject would unpack a tuple into arguments or raise the exception */
        PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, value);
        Py_DECREF(value);
        if (stop != NULL) PyErr_SetObject(PyExc_StopIteration, stop);
        Py_XDECREF(stop);
        return;
    }
    PyErr_SetObject(PyExc_StopIteration, value);
    Py_DECREF(value);
}

/* As in a coroutine (PEP 479): a StopIteration raised inside a call (by a codec, a
 * throw()) is RuntimeError("coroutine raised StopIteration"), or it would read as the
 * call returning None. For a pending error only. */
static void bws_forbid_stop_iteration(void) {
    if (!PyErr_ExceptionMatches(PyExc_StopIteration)) return;
    PyObject *stop = bws_fetch_exception();
    PyErr_SetString(PyExc_RuntimeError, "coroutine raised StopIteration");
    PyObject *error = bws_fetch_exception();
    if (error == NULL || stop == NULL) {  /* nothing to chain (cannot happen: both were set) */
        Py_XDECREF(stop);
        if (error != NULL) bws_raise_exception(error);
        return;
    }
    Py_INCREF(stop);
    PyException_SetCause(error, stop);    /* steals */
    PyException_SetContext(error, stop);  /* steals */
    bws_raise_exception(error);
}

/* --------------------------------------------------------------- MethodAwaitable */

static void bws_await_release(BwsAwait *aw) {
    aw->state = BWS_DONE;
    Py_CLEAR(aw->inner);
    Py_CLEAR(aw->arg);
    Py_CLEAR(aw->arg2);
}

/* 1 if obj is a generator-based coroutine (@types.coroutine: CO_ITERABLE_COROUTINE),
 * which `await` takes as it is; 0 if not; -1 with an error set. Public API only: the
 * flag is read through gi_code.co_flags (a rare path: servers' sends are coroutines). */
static int bws_is_iterable_coroutine(PyObject *obj) {
    if (!PyGen_CheckExact(obj)) return 0;
    PyObject *code = PyObject_GetAttrString(obj, "gi_code");
    if (code == NULL) return -1;
    PyObject *flags = PyObject_GetAttrString(code, "co_flags");
    Py_DECREF(code);
    if (flags == NULL) return -1;
    long value = PyLong_AsLong(flags);
    Py_DECREF(flags);
    if (value == -1 && PyErr_Occurred()) return -1;
    return (value & CO_ITERABLE_COROUTINE) != 0;
}

/* What `await obj` drives: obj itself for a coroutine (native or iterable), else
 * obj.__await__(), checked as `await` checks it. Steals obj. */
static PyObject *bws_iterator_of(PyObject *obj) {
    if (PyCoro_CheckExact(obj)) return obj;
    int iterable_coroutine = bws_is_iterable_coroutine(obj);
    if (iterable_coroutine != 0) {
        if (iterable_coroutine > 0) return obj;
        Py_DECREF(obj);
        return NULL;
    }
    unaryfunc await_slot = (unaryfunc)PyType_GetSlot(Py_TYPE(obj), Py_am_await);
    if (await_slot == NULL) {
#if PY_VERSION_HEX >= 0x030E0000  /* the interpreter's own words, which 3.14 changed */
        PyErr_Format(PyExc_TypeError, "'%.100s' object can't be awaited", Py_TYPE(obj)->tp_name);
#else
        PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression", Py_TYPE(obj)->tp_name);
#endif
        Py_DECREF(obj);
        return NULL;
    }
    PyObject *it = await_slot(obj);
    if (it == NULL) {
        Py_DECREF(obj);
        return NULL;
    }
    int returned_coroutine = PyCoro_CheckExact(it) ? 1 : bws_is_iterable_coroutine(it);
    if (returned_coroutine > 0 || (returned_coroutine == 0 && !PyIter_Check(it))) {
#if PY_VERSION_HEX >= 0x030F0000  /* the interpreter's own words, which 3.15 changed (%T: since 3.13) */
        PyErr_Format(PyExc_TypeError, "%T.__await__() must return an iterator, not %T", obj, it);
#else
        if (returned_coroutine > 0) PyErr_SetString(PyExc_TypeError, "__await__() returned a coroutine");
        else PyErr_Format(PyExc_TypeError, "__await__() returned non-iterator of type '%.100s'", Py_TYPE(it)->tp_name);
#endif
        returned_coroutine = -1;
    }
    Py_DECREF(obj);
    if (returned_coroutine != 0) {
        Py_DECREF(it);
        return NULL;
    }
    return it;
}

/* The end of the call: the driven iterator returned `value` (stolen) or raised. */
static PySendResult bws_await_end(BwsAwait *aw, PySendResult status, PyObject *value, PyObject **presult) {
    int result = aw->result;
    *presult = NULL;
    bws_await_release(aw);
    if (status == PYGEN_RETURN) {
        if (result == BWS_AS_IS) {
            *presult = value;
            return PYGEN_RETURN;
        }
        if (result == BWS_SEND) {
            Py_DECREF(value);
            Py_INCREF(Py_None);
            *presult = Py_None;
            return PYGEN_RETURN;
        }
        *presult = bws_finish(aw, value);
        Py_DECREF(value);
        return *presult == NULL ? PYGEN_ERROR : PYGEN_RETURN;
    }
    if (result == BWS_SEND && PyErr_ExceptionMatches(PyExc_OSError)) {
        PyObject *exc = bws_fetch_exception();
        PyObject *instead = bws_send_failed(aw, exc);
        Py_XDECREF(exc);
        if (instead != NULL) bws_raise_exception(instead);
    }
    return PYGEN_ERROR;
}

/* ValueError as a running coroutine gives, or 0. */
static int bws_refuse_reentry(BwsAwait *aw) {
    if (!aw->executing) return 0;
    PyErr_SetString(PyExc_ValueError, "coroutine already executing");
    return -1;
}

/* One step, with aw held and marked executing by the caller. */
static PySendResult bws_await_drive(BwsAwait *aw, PyObject *arg, PyObject **presult) {
    if (aw->state == BWS_NEW) {
        aw->state = BWS_RUNNING;
        PyObject *awaitable = bws_start(aw);
        PyObject *inner = awaitable == NULL ? NULL : bws_iterator_of(awaitable);
        if (inner == NULL) {
            bws_await_release(aw);
            return PYGEN_ERROR;
        }
        aw->inner = inner;
    }
    PyObject *inner = aw->inner;  /* never NULL while running: release also ends the state */
    Py_INCREF(inner);
    PyObject *value = NULL;
    PySendResult status = PyIter_Send(inner, arg, &value);
    Py_DECREF(inner);
    if (status == PYGEN_NEXT) {
        *presult = value;
        return PYGEN_NEXT;
    }
    return bws_await_end(aw, status, value, presult);
}

static PySendResult bws_await_step(BwsAwait *aw, PyObject *arg, PyObject **presult) {
    *presult = NULL;
    if (bws_refuse_reentry(aw) < 0) return PYGEN_ERROR;
    if (aw->state != BWS_RUNNING) {
        if (aw->state == BWS_DONE) {
            PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
            return PYGEN_ERROR;
        }
        if (arg != Py_None) {
            PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
            return PYGEN_ERROR;
        }
    }
    /* Held across the call: whoever drives it may drop it meanwhile. */
    Py_INCREF(aw);
    aw->executing = 1;
    PySendResult status = bws_await_drive(aw, arg, presult);
    if (status == PYGEN_ERROR) bws_forbid_stop_iteration();
    aw->executing = 0;
    Py_DECREF(aw);
    return status;
}

static PySendResult bws_await_am_send(PyObject *self, PyObject *arg, PyObject **presult) {
    return bws_await_step((BwsAwait *)self, arg, presult);
}

static PyObject *bws_await_iternext(PyObject *self) {
    PyObject *value;
    PySendResult status = bws_await_step((BwsAwait *)self, Py_None, &value);
    if (status == PYGEN_NEXT) return value;
    if (status == PYGEN_RETURN) bws_set_stop(value, 0);
    return NULL;
}

static PyObject *bws_await_send(PyObject *self, PyObject *arg) {
    PyObject *value;
    PySendResult status = bws_await_step((BwsAwait *)self, arg, &value);
    if (status == PYGEN_NEXT) return value;
    if (status == PYGEN_RETURN) bws_set_stop(value, 1);
    return NULL;
}

/* -1 with a TypeError for throw() arguments a coroutine refuses (nothing changes then), else 0. */
static int bws_thrown_refused(PyObject *const *args, Py_ssize_t nargs) {
    PyObject *typ = args[0];
    PyObject *val = nargs > 1 ? args[1] : Py_None;
    PyObject *tb = nargs > 2 ? args[2] : Py_None;
    if (tb != Py_None && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback object");
        return -1;
    }
    if (PyExceptionClass_Check(typ)) return 0;
    if (PyExceptionInstance_Check(typ)) {
        if (val == Py_None) return 0;
        PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException, not %.100s",
                 Py_TYPE(typ)->tp_name);
    return -1;
}

/* What throw(typ[, val[, tb]]) names (checked by bws_thrown_refused), as the pending error. */
static void bws_set_thrown(PyObject *const *args, Py_ssize_t nargs) {
    PyObject *typ = args[0];
    PyObject *val = nargs > 1 ? args[1] : NULL;
    PyObject *tb = nargs > 2 && args[2] != Py_None ? args[2] : NULL;
    if (PyExceptionInstance_Check(typ)) {
        val = typ;
        typ = (PyObject *)Py_TYPE(val);
        tb = tb != NULL ? Py_NewRef(tb) : PyException_GetTraceback(val);  /* new reference, or NULL */
        Py_INCREF(typ);
        Py_INCREF(val);
    } else {
        Py_INCREF(typ);
        Py_XINCREF(val);
        Py_XINCREF(tb);
        PyErr_NormalizeException(&typ, &val, &tb);
    }
    PyErr_Restore(typ, val, tb);
}

/* throw() into the running call: the driven iterator's throw() when it has one. */
static PyObject *bws_await_throw_running(BwsAwait *aw, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *throw_method;
    if (bws_optional_attr(aw->inner, "throw", &throw_method) < 0) return NULL;
    int delegated = throw_method != NULL;
    if (!delegated) {  /* raised where the call waits, as `await` does */
        if (bws_thrown_refused(args, nargs) < 0) return NULL;  /* the call goes on */
        bws_set_thrown(args, nargs);
    } else {
        PyObject *yielded = PyObject_Vectorcall(throw_method, args, nargs, NULL);
        Py_DECREF(throw_method);
        if (yielded != NULL) return yielded;
    }
    PyObject *value = NULL, *result = NULL;
    PySendResult status = PYGEN_ERROR;
    if (delegated && PyErr_ExceptionMatches(PyExc_StopIteration)) {  /* the iterator returned */
        PyObject *stop = bws_fetch_exception();
        value = PyObject_GetAttrString(stop, "value");
        Py_DECREF(stop);
        if (value != NULL) status = PYGEN_RETURN;
    }
    status = bws_await_end(aw, status, value, &result);
    if (status == PYGEN_RETURN) bws_set_stop(result, 1);
    else bws_forbid_stop_iteration();
    return NULL;
}

static PyObject *bws_await_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    BwsAwait *aw = (BwsAwait *)self;
    if (nargs < 1) {
        PyErr_Format(PyExc_TypeError, "throw expected at least 1 argument, got %zd", nargs);
        return NULL;
    }
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError, "throw expected at most 3 arguments, got %zd", nargs);
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030C0000  /* as a coroutine's throw() warns since 3.12 */
    if (nargs > 1 && PyErr_WarnEx(PyExc_DeprecationWarning,
                                  "the (type, exc, tb) signature of throw() is deprecated, "
                                  "use the single-arg signature instead.", 1) < 0) {
        return NULL;
    }
#endif
    if (bws_refuse_reentry(aw) < 0) return NULL;
    if (aw->state != BWS_RUNNING) {
#if PY_VERSION_HEX >= 0x030F0000  /* 3.15 refuses a finished coroutine before it reads the arguments */
        if (aw->state == BWS_DONE) {
            PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
            return NULL;
        }
#endif
        if (bws_thrown_refused(args, nargs) < 0) return NULL;  /* nothing changes */
        if (aw->state == BWS_DONE) {
            PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
            return NULL;
        }
        bws_await_release(aw);  /* raised at the start: the call ends */
        bws_set_thrown(args, nargs);
#if PY_VERSION_HEX < 0x030C0000  /* 3.11 runs the new frame with it (PEP 479); 3.12+ raises it as it is */
        bws_forbid_stop_iteration();
#endif
        return NULL;
    }
    Py_INCREF(aw);
    aw->executing = 1;
    PyObject *yielded = bws_await_throw_running(aw, args, nargs);
    aw->executing = 0;
    Py_DECREF(aw);
    return yielded;
}

static PyObject *bws_await_close(PyObject *self, PyObject *unused) {
    (void)unused;  /* the slot's signature */
    BwsAwait *aw = (BwsAwait *)self;
    if (bws_refuse_reentry(aw) < 0) return NULL;
    PyObject *inner = aw->inner;
    aw->inner = NULL;
    bws_await_release(aw);
    if (inner == NULL) Py_RETURN_NONE;
    PyObject *close_method;
    int found = bws_optional_attr(inner, "close", &close_method);
    Py_DECREF(inner);
    if (found < 0) return NULL;
    if (close_method == NULL) Py_RETURN_NONE;
    Py_INCREF(aw);
    aw->executing = 1;  /* the iterator's close() may run code that calls back */
    PyObject *result = PyObject_CallNoArgs(close_method);
    aw->executing = 0;
    Py_DECREF(aw);
    Py_DECREF(close_method);
    return result;
}

/* `await aw`: itself, unless it is suspended in another await (as a coroutine refuses). */
static PyObject *bws_await_await(PyObject *self) {
    BwsAwait *aw = (BwsAwait *)self;
    if (aw->state == BWS_RUNNING && !aw->executing) {
        PyErr_SetString(PyExc_RuntimeError, "coroutine is being awaited already");
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *bws_method_name(PyObject *method, const char *attribute) {
    return PyObject_GetAttrString(((BwsMethod *)method)->function, attribute);
}

static PyObject *bws_await_get_qualname(PyObject *self, void *unused) {
    (void)unused;  /* the slot's signature */
    return bws_method_name(((BwsAwait *)self)->method, "__qualname__");
}

static PyObject *bws_await_get_name(PyObject *self, void *unused) {
    (void)unused;  /* the slot's signature */
    return bws_method_name(((BwsAwait *)self)->method, "__name__");
}

static PyObject *bws_await_get_await(PyObject *self, void *unused) {
    (void)unused;  /* the slot's signature */
    PyObject *inner = ((BwsAwait *)self)->inner;
    return Py_NewRef(inner != NULL ? inner : Py_None);
}

/* As a coroutine's: running while inside send/throw/close, suspended while awaiting. */
static PyObject *bws_await_get_running(PyObject *self, void *unused) {
    (void)unused;  /* the slot's signature */
    return PyBool_FromLong(((BwsAwait *)self)->executing);
}

static PyObject *bws_await_get_suspended(PyObject *self, void *unused) {
    (void)unused;  /* the slot's signature */
    BwsAwait *aw = (BwsAwait *)self;
    return PyBool_FromLong(aw->state == BWS_RUNNING && !aw->executing);
}

static PyObject *bws_await_repr(PyObject *self) {
    PyObject *name = bws_await_get_qualname(self, NULL);
    if (name == NULL) return NULL;
    PyObject *repr = PyUnicode_FromFormat("<coroutine object %U at %p>", name, self);
    Py_DECREF(name);
    return repr;
}

/* As CPython warns for a coroutine never awaited: a forgotten `await` must not lose a message silently. */
static void bws_await_finalize(PyObject *self) {
    BwsAwait *aw = (BwsAwait *)self;
    if (aw->state != BWS_NEW) return;
    aw->state = BWS_DONE;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *saved = PyErr_GetRaisedException();
#else
    PyObject *saved_type, *saved_value, *saved_tb;
    PyErr_Fetch(&saved_type, &saved_value, &saved_tb);
#endif
    PyObject *name = bws_await_get_qualname(self, NULL);
    if (name == NULL || PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "coroutine '%U' was never awaited", name) < 0) {
        PyErr_WriteUnraisable(self);
    }
    Py_XDECREF(name);
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(saved);
#else
    PyErr_Restore(saved_type, saved_value, saved_tb);
#endif
}

static int bws_await_traverse(PyObject *self, visitproc visit, void *arg) {
    BwsAwait *aw = (BwsAwait *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(aw->method);
    Py_VISIT(aw->ws);
    Py_VISIT(aw->arg);
    Py_VISIT(aw->arg2);
    Py_VISIT(aw->inner);
    return 0;
}

/* The GC breaking a cycle: the call ends (it is unreachable, so never to be driven
 * again); method and ws stay until dealloc, so a getter never reads NULL. Every cycle
 * through them also runs through an object that clears (a function, an instance dict). */
static int bws_await_clear(PyObject *self) {
    bws_await_release((BwsAwait *)self);
    return 0;
}

/* A call's awaitable lives for one await: keep a few for the next calls (as Cython's
 * @freelist does). Never one whose finalizer ran (from dealloc or from the GC, in a
 * cycle): CPython marks it finalized for good, so the next never-awaited call made
 * from it would not warn. The module needs the GIL (free-threaded builds get the pure backend). */
#define BWS_FREELIST_SIZE 64
static BwsAwait *bws_freelist[BWS_FREELIST_SIZE];
static int bws_freelist_count = 0;

static void bws_await_dealloc(PyObject *self) {
    BwsAwait *aw = (BwsAwait *)self;
    PyTypeObject *type = Py_TYPE(self);
    if (aw->state == BWS_NEW && PyObject_CallFinalizerFromDealloc(self) < 0) return;  /* resurrected */
    PyObject_GC_UnTrack(self);
    bws_await_release(aw);
    Py_CLEAR(aw->method);
    Py_CLEAR(aw->ws);
    if (bws_freelist_count < BWS_FREELIST_SIZE && !PyObject_GC_IsFinalized(self)) {
        bws_freelist[bws_freelist_count++] = aw;
    } else {
        PyObject_GC_Del(self);
    }
    Py_DECREF(type);
}

static PyMethodDef bws_await_methods[] = {
    {"send", (PyCFunction)bws_await_send, METH_O, "send(value) -> the next value yielded, or StopIteration."},
    {"throw", (PyCFunction)(void (*)(void))bws_await_throw, METH_FASTCALL, "throw(typ[, val[, tb]])"},
    {"close", (PyCFunction)bws_await_close, METH_NOARGS, "close() -> None"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef bws_await_getset[] = {
    {"__qualname__", bws_await_get_qualname, NULL, NULL, NULL},
    {"__name__", bws_await_get_name, NULL, NULL, NULL},
    {"cr_await", bws_await_get_await, NULL, NULL, NULL},
    {"cr_running", bws_await_get_running, NULL, NULL, NULL},
    {"cr_suspended", bws_await_get_suspended, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot bws_await_slots[] = {
    {Py_am_await, bws_await_await},
    {Py_am_send, bws_await_am_send},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, bws_await_iternext},
    {Py_tp_methods, bws_await_methods},
    {Py_tp_getset, bws_await_getset},
    {Py_tp_repr, bws_await_repr},
    {Py_tp_finalize, bws_await_finalize},
    {Py_tp_traverse, bws_await_traverse},
    {Py_tp_clear, bws_await_clear},
    {Py_tp_dealloc, bws_await_dealloc},
    {0, NULL},
};

static PyType_Spec bws_await_spec = {
    "bocadillo_ws._codec.MethodAwaitable",
    sizeof(BwsAwait),
    0,
    /* made by calls only: instantiated from Python, its fields would be NULL */
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    bws_await_slots,
};

/* --------------------------------------------------------------- CoroutineMethod */

static PyObject *bws_await_new(PyObject *method, PyObject *ws, int kind, PyObject *arg, PyObject *arg2) {
    BwsAwait *aw;
    if (bws_freelist_count > 0) {
        aw = bws_freelist[--bws_freelist_count];
        (void)PyObject_Init((PyObject *)aw, BwsAwait_Type);  /* as PyObject_GC_New does: refcount 1, type referenced */
    } else {
        aw = PyObject_GC_New(BwsAwait, BwsAwait_Type);
        if (aw == NULL) return NULL;
    }
    Py_INCREF(method);
    aw->method = method;
    Py_INCREF(ws);
    aw->ws = ws;
    Py_XINCREF(arg);
    aw->arg = arg;
    Py_XINCREF(arg2);
    aw->arg2 = arg2;
    aw->inner = NULL;
    aw->kind = kind;
    aw->state = BWS_NEW;
    aw->result = BWS_AS_IS;
    aw->executing = 0;
    PyObject_GC_Track((PyObject *)aw);
    return (PyObject *)aw;
}

static PyObject *bws_method_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    BwsMethod *m = (BwsMethod *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL && nargs >= m->min_args && nargs <= m->max_args) {
        PyTypeObject *type = Py_TYPE(args[0]);
        if (type == bws_last_core_type || PyType_IsSubtype(type, (PyTypeObject *)bws_core_type)) {
            if (type != bws_last_core_type) {
                PyTypeObject *previous = bws_last_core_type;
                Py_INCREF(type);
                bws_last_core_type = type;
                Py_XDECREF(previous);
            }
            return bws_await_new(self, args[0], m->kind, nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL);
        }
    }
    return PyObject_Vectorcall(m->function, args, nargsf, kwnames);
}

static PyObject *bws_method_descr_get(PyObject *self, PyObject *obj, PyObject *type) {
    (void)type;  /* the slot's signature */
    if (obj == NULL || obj == Py_None) return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

/* Introspection is the function's: these attributes are read from it. */
static const char *const bws_function_attributes[] = {
    "__code__", "__defaults__", "__kwdefaults__", "__annotations__", "__annotate__", "__name__",
    "__qualname__", "__doc__", "__module__", "__type_params__", "__dict__", NULL,
};

static PyObject *bws_method_getattro(PyObject *self, PyObject *name) {
    BwsMethod *m = (BwsMethod *)self;
    if (PyUnicode_Check(name)) {
        if (PyUnicode_CompareWithASCIIString(name, "__wrapped__") == 0) return Py_NewRef(m->function);
        for (const char *const *attribute = bws_function_attributes; *attribute != NULL; attribute++) {
            if (PyUnicode_CompareWithASCIIString(name, *attribute) == 0) return PyObject_GetAttr(m->function, name);
        }
    }
    return PyObject_GenericGetAttr(self, name);
}

static PyObject *bws_method_repr(PyObject *self) {
    PyObject *name = bws_method_name(self, "__qualname__");
    if (name == NULL) return NULL;
    PyObject *repr = PyUnicode_FromFormat("<compiled coroutine function %U>", name);
    Py_DECREF(name);
    return repr;
}

static int bws_method_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(((BwsMethod *)self)->function);
    return 0;
}

/* No tp_clear: the function stays until dealloc (every read of it assumes it is there);
 * a cycle through it is broken at the function or the class dict. */
static void bws_method_dealloc(PyObject *self) {
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_CLEAR(((BwsMethod *)self)->function);
    PyObject_GC_Del(self);
    Py_DECREF(type);
}

static PyMemberDef bws_method_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(BwsMethod, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot bws_method_slots[] = {
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, bws_method_descr_get},
    {Py_tp_getattro, bws_method_getattro},
    {Py_tp_repr, bws_method_repr},
    {Py_tp_members, bws_method_members},
    {Py_tp_traverse, bws_method_traverse},
    {Py_tp_dealloc, bws_method_dealloc},
    {0, NULL},
};

static PyType_Spec bws_method_spec = {
    "bocadillo_ws._codec.CoroutineMethod",
    sizeof(BwsMethod),
    0,
    /* METHOD_DESCRIPTOR: `ws.send_text(x)` calls it with ws first, with no bound method made;
     * DISALLOW_INSTANTIATION: made by _codec.pyx only (from Python, its function would be NULL) */
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_METHOD_DESCRIPTOR | Py_TPFLAGS_HAVE_VECTORCALL
        | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    bws_method_slots,
};

static PyTypeObject *BwsMethod_Type = NULL;

/* --------------------------------------------------------------- set-up, from _codec.pyx */

/* Make both types; 0, or -1 with an error set. */
static int bws_init_types(PyObject *core_type, bws_start_fn start, bws_finish_fn finish, bws_failed_fn failed) {
    if (BwsMethod_Type == NULL) {
        BwsMethod_Type = (PyTypeObject *)PyType_FromSpec(&bws_method_spec);
        if (BwsMethod_Type == NULL) return -1;
    }
    if (BwsAwait_Type == NULL) {
        BwsAwait_Type = (PyTypeObject *)PyType_FromSpec(&bws_await_spec);
        if (BwsAwait_Type == NULL) return -1;
    }
    Py_INCREF(core_type);
    Py_XDECREF(bws_core_type);
    bws_core_type = core_type;
    bws_start = start;
    bws_finish = finish;
    bws_send_failed = failed;
    return 0;
}

/* A CoroutineMethod for `function`, whose direct path takes min_args..max_args positional arguments. */
static PyObject *bws_coroutine_method(PyObject *function, int kind, Py_ssize_t min_args, Py_ssize_t max_args) {
    if (BwsMethod_Type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bws_init_types() was never called");
        return NULL;
    }
    if (min_args < 1 || max_args < min_args || max_args > 3) {
        PyErr_SetString(PyExc_ValueError, "a coroutine method takes self and at most two more arguments");
        return NULL;
    }
    BwsMethod *m = PyObject_GC_New(BwsMethod, BwsMethod_Type);
    if (m == NULL) return NULL;
    Py_INCREF(function);
    m->function = function;
    m->vectorcall = bws_method_vectorcall;
    m->kind = kind;
    m->min_args = min_args;
    m->max_args = max_args;
    PyObject_GC_Track((PyObject *)m);
    return (PyObject *)m;
}

static PyObject *bws_method_awaitable_type(void) { return Py_NewRef((PyObject *)BwsAwait_Type); }
static PyObject *bws_method_type(void) { return Py_NewRef((PyObject *)BwsMethod_Type); }
