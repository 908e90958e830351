"""The worker side of Python function tries: run by strand-launcher as
``python -u -m strand._worker``, one warm interpreter per slot, tries in frames on stdin,
answers in frames on stdout (a 4-byte little-endian length, then the bytes).

A try is a pickle of (the driver's ``sys.path``, ``cloudpickle.dumps((fn, args, kwargs))``).
An answer is ``b"\\0" + pickle of the return value``, or ``b"\\1" + "type\\0message\\0traceback"``
of the exception the function raised (or of the error pickling its result).
"""

import pickle
import struct
import sys
import traceback


def _frame(out, data: bytes) -> None:
    out.write(struct.pack("<I", len(data)))
    out.write(data)
    out.flush()


def main() -> None:
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    # The function's own prints must not corrupt the frames: they go to stderr (the block's log).
    sys.stdout = sys.stderr
    while True:
        head = inp.read(4)
        if len(head) < 4:
            return
        (n,) = struct.unpack("<I", head)
        data = inp.read(n)
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
            answer = b"\0" + pickle.dumps(fn(*args, **kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as e:  # noqa: BLE001 - every failure is the try's, reported back
            text = f"{type(e).__name__}\0{e}\0{traceback.format_exc()}"
            answer = b"\1" + text.encode("utf-8", errors="replace")
        _frame(out, answer)


if __name__ == "__main__":
    main()
