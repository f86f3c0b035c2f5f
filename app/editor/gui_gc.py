"""Python's cyclic garbage collection, on the GUI thread only.

Left automatic, a collection runs in whichever thread passes an allocation threshold: a run's or
a training's job thread, the kernels' helper threads, a library's monitor thread. A reference
cycle holding Qt objects collected there deletes them off the GUI thread; Qt's destructor then
takes a lock that the GUI thread can hold while it waits for the GIL, and the editor hangs (seen in
the test suite: a QAction deleted by a collection in tqdm's monitor thread while the GUI thread,
holding the GIL, deleted a menu). pyqtgraph's :class:`GarbageCollector` turns automatic
collection off and collects generation by generation, at Python's own thresholds, from a timer on
the GUI thread.
"""

from __future__ import annotations

from pyqtgraph.util.garbage_collector import GarbageCollector

_collector: GarbageCollector | None = None


def collect_on_gui_thread(interval_s: float = 0.5) -> None:
    """From now on the process collects cycles on this (the GUI) thread only, every
    ``interval_s`` seconds when Python's thresholds are passed; idempotent."""
    global _collector
    if _collector is None:
        _collector = GarbageCollector(interval=interval_s)


def collect_due() -> None:
    """Collect now, on the calling thread, what automatic collection would have collected by now
    (nothing before :func:`collect_on_gui_thread`): for code that calls the GUI thread's
    attention between events, e.g. a test suite between tests."""
    if _collector is not None:
        _collector.check()
