"""Garbage collection in the editor runs on the GUI thread: a cycle holding a Qt object, dropped
while another thread allocates, is deleted on the GUI thread, never on the allocating one (Qt
destructors off the GUI thread can deadlock against it: one hung a CI run)."""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject, Qt


def _qt_object_in_a_cycle(deleted_on: list[str]) -> None:
    holder = QObject()
    holder.cycle = {"back": holder}  # reachable only through itself once this frame ends
    holder.destroyed.connect(  # called on the thread that deletes it
        lambda *_: deleted_on.append(threading.current_thread().name),
        Qt.ConnectionType.DirectConnection,
    )


def _allocate_on_another_thread() -> None:
    def churn() -> None:
        for _ in range(20):
            junk = [[i] for i in range(50_000)]  # far past generation 0's threshold
            junk.append(junk)  # cycles too
            del junk

    worker = threading.Thread(target=churn, name="allocating worker")
    worker.start()
    worker.join()


def test_a_window_turns_automatic_collection_off(window):
    assert not gc.isenabled()


def test_cycles_of_qt_objects_are_collected_on_the_gui_thread(window, qtbot):
    deleted_on: list[str] = []
    _qt_object_in_a_cycle(deleted_on)
    _allocate_on_another_thread()
    assert deleted_on == []  # the worker's allocations collected nothing
    qtbot.waitUntil(lambda: bool(deleted_on), timeout=5_000)  # the GUI thread's timer did
    assert deleted_on == [threading.main_thread().name]
