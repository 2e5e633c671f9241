"""How the program ends: as `sys.exit` would, less the interpreter's teardown.

After a plan or an apply over the gcp backend the teardown (every module and object
freed one by one: the client libraries' thousands of classes) took 0.13-0.17 s of the
process's life, longer than the run's own last step. What of it matters is done first:
the handlers the run registered (atexit: logging, weakref finalizers, multiprocessing)
run, and stdout and stderr are flushed. The ordinary exit is taken instead whenever
the interpreter would do more than that: a thread other than the main one still runs
(it would be waited for), the code is not a number (it is printed), a flush fails (a
closed pipe, which the interpreter reports), or a profiler or tracer is on (`python -m
cProfile -m rotator ...` writes its results once the program's SystemExit reaches it).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def leave(code: str | int | None) -> NoReturn:
    """End the process with `code` (SystemExit's: None is 0)."""
    if code is None:
        code = 0
    if not isinstance(code, int) or _threads_left() or sys.getprofile() or sys.gettrace():
        sys.exit(code)
    atexit._run_exitfuncs()  # run once: they are cleared as they run
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # the interpreter reports it, as without this
        sys.exit(code)
    os._exit(code)


def _threads_left() -> bool:
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())
