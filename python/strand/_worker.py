"""The worker side of Python function tries: run by strand-launcher as
``python -u -m strand._worker``, one warm interpreter per slot, tries in frames on stdin,
answers in frames on stdout (a 4-byte little-endian length, then the bytes).

First the interpreter says hello: ``b"strand-worker\\0"``, the protocol (4 bytes), then its
Python's version and its strand's, separated by ``\\0``. Then a try is a kind byte, the function's 16-byte key, then (kinds 0 and 2) the pickled function
as a 4-byte length and ``pickle.dumps((driver's sys.path, cloudpickle.dumps(fn), driver's
(major, minor) Python version))``, then
``pickle.dumps((args, kwargs))``. Kind 1 names a function this interpreter already holds;
kind 2 first forgets every function held (launcher/src/exec/python.rs decides which).
An answer is ``b"\\0" + pickle of the return value``, or ``b"\\1" + "type\\0message\\0traceback"``
of the exception the function raised (or of the error pickling its result).
"""

import os
import pickle
import platform
import struct
import sys
import traceback

try:  # results pickled by value where plain pickle cannot (a class defined in the function)
    import cloudpickle as _by_value
except ImportError:  # pragma: no cover - the package depends on it
    _by_value = pickle

WITH_FUNCTION, CACHED_FUNCTION, FORGET_THEN_WITH_FUNCTION = 0, 1, 2
#: The frames' protocol, as launcher/src/exec/python.rs's PROTOCOL.
PROTOCOL = 2


def _frame(out, data: bytes) -> None:
    out.write(struct.pack("<I", len(data)))
    out.write(data)
    out.flush()


def _read(inp, n: int) -> bytes:
    """Exactly n bytes, or fewer at the end of input."""
    chunks, left = [], n
    while left:
        chunk = inp.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def main() -> None:
    # The frames move to descriptors of their own (not inherited: os.dup's are not), and fds
    # 0 and 1 become /dev/null and stderr, so that neither the function's prints nor a
    # command it starts (Parsl's bash_app) can read or write a frame.
    # Buffered: one read takes a whole frame (the launcher writes each in one piece).
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _frame(out, b"strand-worker\0" + struct.pack("<I", PROTOCOL) + f"{platform.python_version()}\0{_version()}".encode())
    functions: dict = {}
    while True:
        head = _read(inp, 4)
        if len(head) < 4:
            return
        (n,) = struct.unpack("<I", head)
        data = memoryview(_read(inp, n))
        try:
            kind, key, at = data[0], bytes(data[1:17]), 17
            if kind == FORGET_THEN_WITH_FUNCTION:
                functions.clear()
            if kind != CACHED_FUNCTION:
                (size,) = struct.unpack_from("<I", data, at)
                at += 4
                functions[key] = _function(data[at : at + size])
                at += size
            fn = functions.get(key)
            if fn is None:
                raise RuntimeError("the launcher named a function this interpreter does not hold")
            if isinstance(fn, _Unpicklable):
                raise fn.again()
            try:
                args, kwargs = pickle.loads(data[at:])
            except Exception as e:
                raise _unpickling(e) from e
            answer = b"\0" + _dumps(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - every failure is the try's, reported back
            text = f"{type(e).__name__}\0{e}\0{traceback.format_exc()}"
            answer = b"\1" + text.encode("utf-8", errors="replace")
        _frame(out, answer)


class _Unpicklable:
    """A function this interpreter could not unpickle: each call of it fails the same way."""

    def __init__(self, error: Exception):
        self.error = error

    def again(self) -> Exception:
        return _unpickling(self.error)


def _unpickling(e: Exception) -> Exception:
    """The error, saying where it happened (most often a module the function needs that this
    interpreter cannot import)."""
    text = f"{e} (unpickling the task in {sys.executable})"
    try:
        return type(e)(text)
    except Exception:  # noqa: BLE001 - an exception type that takes other arguments
        return RuntimeError(f"{type(e).__name__}: {text}")


def _function(pickled):
    """A function as the driver pickled it, its import path added to this one's first, so
    that a function pickled by reference finds its module here as it did there; or, if it
    cannot be unpickled here, why."""
    try:
        path, fn, version = pickle.loads(pickled)
        if tuple(version) != tuple(sys.version_info[:2]):
            # Bytecode pickled by value does not carry across Python versions.
            raise RuntimeError(
                f"the function was pickled by Python {'.'.join(map(str, version))} on the driver, and this worker's "
                f"interpreter {sys.executable} is Python {platform.python_version()}: use the same Python version on "
                "both (python= on the Dfk, or the executor's python = ...)"
            )
        for p in path:
            if p not in sys.path:
                sys.path.append(p)
        return pickle.loads(fn)
    except Exception as e:  # noqa: BLE001 - reported by every call of the function
        return _Unpicklable(e)


def _version() -> str:
    try:
        from strand import _strand

        return _strand.__version__
    except Exception:  # noqa: BLE001 - a strand without its extension module
        return "unknown"


def _dumps(value) -> bytes:
    """Plain pickle, which is fast, unless it cannot (a class made by the function itself):
    then cloudpickle, by value."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - PicklingError, AttributeError, TypeError all mean "by value"
        return _by_value.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


if __name__ == "__main__":
    main()
