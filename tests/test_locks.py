"""graphnet._locks.ReadWriteLock: many readers or one writer, writers first,
re-entrant for the writer; read_optimistically: a read without the lock that
runs again under it when a write lands in the middle."""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

from graphnet._locks import ReadWriteLock, read_optimistically


def test_readers_share_and_a_writer_waits_for_them():
    lock, order = ReadWriteLock(), []
    lock.acquire_read()
    lock.acquire_read()  # a second reader gets in at once
    writer = threading.Thread(target=lambda: (lock.acquire_write(), order.append("write"), lock.release_write()))
    writer.start()
    time.sleep(0.05)
    assert order == [] and lock.busy
    lock.release_read()
    time.sleep(0.05)
    assert order == []  # one reader still holds it
    lock.release_read()
    writer.join(5)
    assert order == ["write"] and not lock.busy


def test_a_waiting_writer_goes_before_new_readers():
    lock, order = ReadWriteLock(), []
    lock.acquire_read()
    writer = threading.Thread(target=lambda: (lock.acquire_write(), order.append("write"), lock.release_write()))
    writer.start()
    while not lock._waiting:
        time.sleep(0.001)
    reader = threading.Thread(target=lambda: (lock.acquire_read(), order.append("read"), lock.release_read()))
    reader.start()
    time.sleep(0.05)
    assert order == []
    lock.release_read()
    writer.join(5)
    reader.join(5)
    assert order == ["write", "read"]


def test_the_writer_may_write_and_read_again_inside():
    lock = ReadWriteLock()
    with lock.writing():
        with lock.writing(), lock.reading():
            assert lock._depth == 3
        assert lock.busy
    assert not lock.busy


def test_under_load_no_reader_ever_sees_a_writer():
    lock, seen, stop = ReadWriteLock(), [], threading.Event()
    state = {"writing": False, "readers": 0}
    guard = threading.Lock()

    def read():
        while not stop.is_set():
            with lock.reading():
                with guard:
                    state["readers"] += 1
                    seen.append(state["writing"])
                with guard:
                    state["readers"] -= 1

    def write():
        for _ in range(300):
            with lock.writing():
                with guard:
                    seen.append(state["readers"] != 0)
                    state["writing"] = True
                with guard:
                    state["writing"] = False

    threads = [threading.Thread(target=read) for _ in range(3)] + [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads[3:]:
        t.join(30)
    stop.set()
    for t in threads[:3]:
        t.join(30)
    assert len(seen) > 600 and not any(seen)
    assert not lock.busy and lock._sleepers == 0


def test_a_reader_may_read_again_while_a_writer_waits():
    """``save`` holds the read lock and reads the weights, which take it again:
    a writer waiting in between must not make the second read wait for it."""
    lock, order = ReadWriteLock(), []
    lock.acquire_read()
    writer = threading.Thread(target=lambda: (lock.acquire_write(), order.append("write"), lock.release_write()))
    writer.start()
    while not lock._waiting:
        time.sleep(0.001)
    done = threading.Event()

    def read_again():
        with lock.reading():
            order.append("read again")
        done.set()

    again = threading.Thread(target=read_again)  # another thread: it must wait for the writer
    again.start()
    with lock.reading():  # this thread already reads: it gets in at once
        order.append("nested read")
    lock.release_read()
    writer.join(5)
    again.join(5)
    assert order == ["nested read", "write", "read again"] and done.is_set() and not lock.busy


def test_writers_go_in_the_order_they_came_so_one_writing_in_a_loop_starves_no_other():
    # One thread writes in a loop, taking the lock again as soon as it lets go;
    # another asks for the lock 20 times. Were a writer that lets go free to take
    # the lock straight back, the other would wake while it is held every time.
    lock, stop, done = ReadWriteLock(), threading.Event(), []

    def write_in_a_loop():
        while not stop.is_set():
            with lock.writing():
                time.sleep(0)  # an edit that lets other threads run while it holds the lock (a system call)

    def write_twenty_times():
        for _ in range(20):
            with lock.writing():
                done.append(1)

    looping = threading.Thread(target=write_in_a_loop)
    looping.start()
    other = threading.Thread(target=write_twenty_times, daemon=True)
    try:
        other.start()
        other.join(10)
        got = len(done)  # before the loop stops and lets it through
    finally:
        stop.set()
        looping.join(5)
    assert got == 20, f"the second writer got the lock {got} times of 20 while the first wrote in a loop"


def test_a_writer_interrupted_while_waiting_leaves_the_line():
    # The first writer in line is interrupted (as Ctrl-C would, here an
    # exception sent to its thread): the second must still get the lock.
    class Interrupted(Exception):
        pass

    lock, order = ReadWriteLock(), []
    lock.acquire_write()

    def write(name):
        try:
            with lock.writing():
                order.append(name)
        except Interrupted:
            order.append(f"{name} interrupted")

    first = threading.Thread(target=write, args=("first",))
    first.start()
    while len(lock._waiting) < 1:
        time.sleep(0.001)
    second = threading.Thread(target=write, args=("second",))
    second.start()
    while len(lock._waiting) < 2:
        time.sleep(0.001)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(first.ident), ctypes.py_object(Interrupted))
    with lock._mutex:
        lock._wake()  # the first wakes, and the exception lands
    first.join(5)
    lock.release_write()
    second.join(5)
    assert order == ["first interrupted", "second"] and not lock._waiting


def _write_from_another_thread(lock):
    thread = threading.Thread(target=lambda: (lock.acquire_write(), lock.release_write()))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()


def test_an_optimistic_read_with_no_writer_runs_once_without_the_lock():
    lock, calls = ReadWriteLock(), []
    result = read_optimistically(lock, lambda a, b: calls.append(lock.busy) or a + b, 2, 3)
    assert result == 5 and calls == [False]
    assert lock.writes == 0


def test_a_write_in_the_middle_of_an_optimistic_read_makes_it_run_again_under_the_lock():
    lock, calls = ReadWriteLock(), []

    def read():
        calls.append(lock.busy)
        if len(calls) == 1:
            _write_from_another_thread(lock)  # lands at once: the first run holds nothing
        return len(calls)

    assert read_optimistically(lock, read) == 2
    assert calls == [False, True]  # the second run held the read lock
    assert lock.writes == 2 and not lock.busy


def test_an_error_in_an_optimistic_read_is_raised_unless_a_write_came_in_the_middle():
    lock, calls = ReadWriteLock(), []

    def fails():
        calls.append(lock.busy)
        raise KeyError("x")

    with pytest.raises(KeyError):
        read_optimistically(lock, fails)
    assert calls == [False]  # raised from the first run: no write, so the error is the call's own

    calls.clear()

    def torn_once():
        calls.append(lock.busy)
        if len(calls) == 1:
            _write_from_another_thread(lock)
            raise KeyError("a dict changed under the read")
        return "read"

    assert read_optimistically(lock, torn_once) == "read"
    assert calls == [False, True]


def test_an_optimistic_read_waits_for_a_writer_that_holds_the_lock():
    lock, calls = ReadWriteLock(), []
    lock.acquire_write()
    reader = threading.Thread(target=lambda: calls.append(read_optimistically(lock, lambda: lock.busy)))
    reader.start()
    time.sleep(0.05)
    assert calls == []
    lock.release_write()
    reader.join(5)
    assert calls == [True]  # one run, under the read lock


def test_the_writer_reads_optimistically_under_its_own_lock():
    lock = ReadWriteLock()
    with lock.writing():
        assert read_optimistically(lock, lambda: lock._depth) == 2  # straight to the lock, re-entered
    assert lock.writes == 2
