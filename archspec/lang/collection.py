"""Automatic garbage collection paused while a spec is read, expanded or analysed.

Those steps make tens of thousands of objects (IR nodes, layers, rows) that hold no reference
cycles, so reference counting frees them and a collection finds nothing. Python still starts
collections by the count of objects made, and a full one walks the whole heap: in a process
that has imported torch that is 0.1-0.2 s each, several times a larger network's analysis time.
Collection is switched back on afterwards (if it was on), and runs then as usual.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside the block (also a decorator: ``@paused()``); nested or
    in a process that has switched collection off, it changes nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
