"""The worker side of Python function tries: run by strand-launcher as
``python -u -m strand._worker``, one warm interpreter per slot, tries in frames on stdin,
answers in frames on stdout (a 4-byte little-endian length, then the bytes).

A try is a pickle of (the driver's ``sys.path``, ``cloudpickle.dumps((fn, args, kwargs))``).
An answer is ``b"\\0" + pickle of the return value``, or ``b"\\1" + "type\\0message\\0traceback"``
of the exception the function raised (or of the error pickling its result).
"""

import os
import pickle
import struct
import sys
import traceback

try:  # results pickled by value where plain pickle cannot (a class defined in the function)
    import cloudpickle as _results
except ImportError:  # pragma: no cover - the package depends on it
    _results = pickle


def _frame(out, data: bytes) -> None:
    out.write(struct.pack("<I", len(data)))
    out.write(data)
    out.flush()


def _read(inp, n: int) -> bytes:
    """Exactly n bytes, or fewer at the end of input (the pipe is unbuffered)."""
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
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    while True:
        head = _read(inp, 4)
        if len(head) < 4:
            return
        (n,) = struct.unpack("<I", head)
        data = _read(inp, n)
        try:
            try:
                # The driver's import path comes first in the payload (as text), so that a
                # function pickled by reference finds its module here as it did there.
                path, call = pickle.loads(data)
                for p in path:
                    if p not in sys.path:
                        sys.path.append(p)
                fn, args, kwargs = pickle.loads(call)
            except Exception as e:
                # Most often a module the function needs that this interpreter cannot import.
                raise type(e)(f"{e} (unpickling the task in {sys.executable})") from e
            answer = b"\0" + _results.dumps(fn(*args, **kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as e:  # noqa: BLE001 - every failure is the try's, reported back
            text = f"{type(e).__name__}\0{e}\0{traceback.format_exc()}"
            answer = b"\1" + text.encode("utf-8", errors="replace")
        _frame(out, answer)


if __name__ == "__main__":
    main()
