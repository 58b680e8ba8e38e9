"""Suite-wide guards: a test fails if its code blocks an asyncio event loop or leaks a thread.

python-zeroconf's ``tests/conftest.py`` checks that no thread outlives a test; STYLE.md
item 9 asks the same of the event loop ("tests fail when something blocks the event loop").
Both checks run around every test (the autouse fixture below) and fail it at teardown with
the offending callback or thread named. A test that stalls a loop on purpose says so with
``@pytest.mark.blocking_ok("why")``; the reason is required.

How a blocked loop is measured, and why this way:

- Every callback a loop runs goes through ``asyncio.Handle._run`` (task steps, wake-ups,
  ``call_soon``/``call_later`` and I/O callbacks alike), so the guard wraps that one method
  for the whole session and times each call. It does not use asyncio debug mode: debug mode
  would do the timing for us (``slow_callback_duration``) but also captures a traceback at
  every ``call_soon``, tracks coroutine origins and turns on extra checks and warnings, which
  slows the suite and changes what it tests. The wrapper costs a few microseconds per
  callback and changes nothing else.
- Two limits, because this box has 2 cores shared with PostgreSQL, Mosquitto, Chromium
  and other test runs, where a 5 ms callback can take 300 ms of wall time while its thread
  waits for a CPU. Wall time against 100 ms would make the suite flaky.

  1. CPU: the loop thread's own CPU time across the callback (``time.thread_time``) must
     stay under 100 ms (``CPU_LIMIT_S``). Load does not inflate it, so the issue's 100 ms
     applies exactly, to computation on the loop (validation, hashing, big JSON).
  2. Waiting: ``wall - run_delay - gc`` must stay under 500 ms (``WAIT_LIMIT_S``), where
     ``run_delay`` is the kernel's count of the time the thread was runnable but had no CPU
     (the second field of ``/proc/thread-self/schedstat``, read before and after each
     callback). This is CPU work plus time blocked in system calls: ``time.sleep``,
     ``subprocess.run``, a synchronous socket or an SQLite commit waiting on ``fsync``,
     which thread CPU time alone would miss. It is more generous because a wait for
     *another* thread or process (``Thread.start()`` waits for the new thread to run,
     ``Popen`` for the child to exec, a lock for its holder) includes that other one's wait
     for a CPU, which this thread's ``run_delay`` cannot see: on the loaded box the first
     ``asyncio.to_thread`` (which starts the executor's first worker) was measured at
     147 ms, a ``Popen`` at 145 ms, both a few milliseconds when the box is idle.
     Synchronous waits of a second or more, the usual way a test blocks its loop, fail.

- Garbage collection pauses are subtracted from both (timed with ``gc.callbacks``): the test
  process holds the heap of hundreds of tests, so a full collection can land in any callback
  and says nothing about the code that happened to trigger it.
- Where ``schedstat`` is missing (not Linux), the wait limit applies to wall time instead.
- While a callback runs past ``SAMPLE_AFTER_S``, a sampler thread records the loop thread's
  stack, so the failure shows where the time went, not only which callback it was.
- A loop driven from a child greenlet is not timed: Playwright's sync API runs its loop in
  a greenlet and switches to the test's own (synchronous) code from inside a callback, so
  that callback's duration is the test's, not the loop's.

Threads: every thread alive after the test that was not alive before it is joined for up to
``THREAD_GRACE_S`` in total (a thread that was told to stop may need a moment); any still
running is a leak. Threads started by module- or session-scoped fixtures are already alive
when this function-scoped fixture starts (pytest sets up wider scopes first), so they are not
counted. One kind of thread is allowed to outlive the test that started it: an idle
default-executor worker of an event loop that is still open (see
``_idle_worker_of_an_open_loop``), because that loop belongs to a module-scoped fixture and
reuses the worker in the next test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread
import gc
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# The rows of docs/reliability.md (benchmarks/reliability.py) are recorded by the tests.
pytest_plugins = ("tests.reliability",)

CPU_LIMIT_S = 0.100
WAIT_LIMIT_S = 0.500
SAMPLE_AFTER_S = 0.060
SAMPLER_TICK_S = 0.020
THREAD_GRACE_S = 2.0
ROOT = Path(__file__).resolve().parents[1]

_NS = 1_000_000_000
_CPU_LIMIT_NS = int(CPU_LIMIT_S * _NS)
_WAIT_LIMIT_NS = int(WAIT_LIMIT_S * _NS)


# ------------------------------------------------------------------ per-thread clocks


class _Schedstat:
    """One thread's ``schedstat`` file, kept open so that a read is one ``pread``."""

    def __init__(self) -> None:
        try:
            self.fd: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self.fd = None

    def __del__(self) -> None:  # its thread has ended (thread-local state is dropped)
        if self.fd is not None:
            os.close(self.fd)

    def read(self) -> bytes:
        return b"" if self.fd is None else os.pread(self.fd, 64, 0)


class _ThreadClocks(threading.local):
    """Per thread: the open ``schedstat`` file and the time spent in garbage collection."""

    def __init__(self) -> None:
        self.sched = _Schedstat()
        self.gc_ns = 0
        self.gc_start = 0


def _run_delay_ns(raw: bytes) -> int:
    return int(raw.split()[1])


_clocks = _ThreadClocks()


def _gc_timer(phase: str, _info: dict[str, Any]) -> None:
    if phase == "start":
        _clocks.gc_start = time.perf_counter_ns()
    else:
        _clocks.gc_ns += time.perf_counter_ns() - _clocks.gc_start


# ------------------------------------------------------------------ what the guard records


@dataclass(slots=True)
class Slow:
    """One callback that kept its loop's thread past a limit."""

    callback: str
    cpu_ns: int
    blocked_ns: int
    wall_ns: int
    gc_ns: int
    stack: list[str]

    def describe(self) -> str:
        ms = 1e-6
        head = (
            f"{self.callback} blocked the loop: cpu {self.cpu_ns * ms:.0f} ms "
            f"(limit {CPU_LIMIT_S * 1e3:.0f}), cpu + waits {self.blocked_ns * ms:.0f} ms "
            f"(limit {WAIT_LIMIT_S * 1e3:.0f}), wall {self.wall_ns * ms:.0f} ms, "
            f"gc {self.gc_ns * ms:.0f} ms"
        )
        if not self.stack:
            return head
        return head + "\n    sampled while blocked:\n" + "\n".join(self.stack)


@dataclass(slots=True)
class Window:
    """What happened on the loops during one test."""

    slow: list[Slow] = field(default_factory=list)
    worst_cpu_ns: int = 0


@dataclass(slots=True)
class _Running:
    started_ns: int
    stack: list[str] | None = None


_window: Window | None = None
_running: dict[int, _Running] = {}  # thread ident -> the callback it is running now
_worst: list[tuple[int, str]] = []  # (cpu ns, test id) per test, for the summary


# ------------------------------------------------------------------ the wrapped Handle._run

_original_run: Callable[[asyncio.Handle], None] = asyncio.Handle._run


def _in_child_greenlet() -> bool:
    greenlet = sys.modules.get("greenlet")
    return greenlet is not None and greenlet.getcurrent().parent is not None


def _timed_run(handle: asyncio.Handle) -> None:
    window = _window
    if window is None or _in_child_greenlet():
        _original_run(handle)
        return
    clocks = _clocks
    ident = threading.get_ident()
    outer = _running.get(ident)
    me = _Running(time.perf_counter_ns())
    _running[ident] = me
    sched0, gc0, cpu0 = clocks.sched.read(), clocks.gc_ns, time.thread_time_ns()
    try:
        _original_run(handle)
    finally:
        wall = time.perf_counter_ns() - me.started_ns
        if outer is None:
            del _running[ident]
        else:
            _running[ident] = outer
        if wall > _CPU_LIMIT_NS:  # cpu and blocked time are both at most the wall time
            _judge(window, handle, me, wall, sched0, gc0, cpu0)


def _judge(
    window: Window,
    handle: asyncio.Handle,
    me: _Running,
    wall: int,
    sched0: bytes,
    gc0: int,
    cpu0: int,
) -> None:
    clocks = _clocks
    gc_ns = clocks.gc_ns - gc0
    cpu = max(0, time.thread_time_ns() - cpu0 - gc_ns)
    if sched0:
        blocked = wall - (_run_delay_ns(clocks.sched.read()) - _run_delay_ns(sched0)) - gc_ns
    else:
        blocked = wall - gc_ns
    window.worst_cpu_ns = max(window.worst_cpu_ns, cpu)
    if cpu > _CPU_LIMIT_NS or blocked > _WAIT_LIMIT_NS:
        window.slow.append(Slow(_name(handle), cpu, blocked, wall, gc_ns, me.stack or []))


def _name(handle: asyncio.Handle) -> str:
    """The callback as a reader wants it: a task by its name and coroutine, else the function."""
    callback = handle._callback  # type: ignore[attr-defined]
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        code = getattr(coro, "cr_code", None)
        where = f" ({_short(code.co_filename)}:{code.co_firstlineno})" if code else ""
        return f"task {owner.get_name()!r} {getattr(coro, '__qualname__', coro)!r}{where}"
    inner = getattr(callback, "func", callback)  # functools.partial
    code = getattr(inner, "__code__", None)
    where = f" ({_short(code.co_filename)}:{code.co_firstlineno})" if code else ""
    return f"callback {getattr(inner, '__qualname__', repr(inner))}{where}"


def _short(filename: str) -> str:
    try:
        return str(Path(filename).relative_to(ROOT))
    except ValueError:
        return filename


# ------------------------------------------------------------------ the stack sampler


def _sample_forever(stop: threading.Event) -> None:
    while not stop.wait(SAMPLER_TICK_S):
        now = time.perf_counter_ns()
        late = [
            (ident, run)
            for ident, run in list(_running.items())
            if run.stack is None and now - run.started_ns > SAMPLE_AFTER_S * _NS
        ]
        if not late:
            continue
        frames = sys._current_frames()
        for ident, run in late:
            frame = frames.get(ident)
            if frame is not None:
                run.stack = _format_stack(frame)


def _format_stack(frame: Any) -> list[str]:
    """The frames below the guard's wrapper, innermost last, at most the last 12."""
    summary = list(traceback.extract_stack(frame))
    for i, entry in enumerate(summary):
        if entry.name == _timed_run.__name__ and entry.filename == __file__:
            summary = summary[i + 2 :]  # and Handle._run's own line
            break
    return [
        f"      {_short(e.filename)}:{e.lineno} in {e.name}: {(e.line or '').strip()}"
        for e in summary[-12:]
    ]


_stop_sampler = threading.Event()


def pytest_configure(config: pytest.Config) -> None:
    del config
    asyncio.Handle._run = _timed_run  # type: ignore[method-assign, assignment]
    gc.callbacks.append(_gc_timer)
    threading.Thread(
        target=_sample_forever, args=(_stop_sampler,), name="loopguard-sampler", daemon=True
    ).start()


def pytest_unconfigure(config: pytest.Config) -> None:
    del config
    _stop_sampler.set()
    asyncio.Handle._run = _original_run  # type: ignore[method-assign, assignment]
    if _gc_timer in gc.callbacks:
        gc.callbacks.remove(_gc_timer)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    top = sorted(w for w in _worst if w[0] > 0)[::-1][:5]
    if not top:
        return
    terminalreporter.write_sep("-", "loop guard: most CPU in one callback (limit 100 ms)")
    for ns, nodeid in top:
        terminalreporter.write_line(f"{ns / 1e6:7.1f} ms  {nodeid}")


# ------------------------------------------------------------------ the fixture


def _blocking_reason(node: pytest.Item) -> str | None:
    marker = node.get_closest_marker("blocking_ok")
    if marker is None:
        return None
    reason = marker.args[0] if marker.args else marker.kwargs.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        pytest.fail(
            f"{node.nodeid}: @pytest.mark.blocking_ok needs a reason, "
            'e.g. @pytest.mark.blocking_ok("the watchdog test stalls the loop on purpose")',
            pytrace=False,
        )
    return reason


def _idle_worker_of_an_open_loop(thread: threading.Thread) -> bool:
    """A default-executor worker ("asyncio_N") of a loop that is still open.

    Every loop a test owns is closed by now (pytest-asyncio's runner, ``asyncio.run`` and
    ``loop.close()`` all shut the executor down, and its workers then end within the grace
    period). An executor still open belongs to a loop that outlives the test: Playwright's
    module-wide loop, or a server loop of a module-scoped fixture. Its workers were started
    lazily by the first test that needed one and are reused by the next: they are not that
    test's leak.
    """
    target = getattr(thread, "_target", None)
    args = getattr(thread, "_args", ())
    if target is not concurrent.futures.thread._worker or not args:
        return False
    executor = args[0]()  # the worker holds its executor by weak reference
    return (
        thread.name.startswith("asyncio_")
        and executor is not None
        and not getattr(executor, "_shutdown", True)
    )


def _leaked_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    deadline = time.monotonic() + THREAD_GRACE_S
    leaked = []
    for thread in threading.enumerate():
        if thread in before or thread is threading.current_thread():
            continue
        if _idle_worker_of_an_open_loop(thread):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread)
    return leaked


@pytest.fixture(autouse=True)
def loop_and_thread_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if a loop callback blocked its loop too long or a thread outlived it."""
    global _window  # noqa: PLW0603 - one test runs at a time; the wrapper reads it
    allowed = _blocking_reason(request.node)
    threads_before = set(threading.enumerate())
    window = _window = Window()
    try:
        yield
    finally:
        _window = None
    _worst.append((window.worst_cpu_ns, request.node.nodeid))
    problems = []
    if window.slow and allowed is None:
        problems += [slow.describe() for slow in window.slow[:5]]
        if len(window.slow) > 5:
            problems.append(f"... and {len(window.slow) - 5} more slow callbacks")
    problems += [
        f"thread {t.name!r} (target {getattr(t, '_target', None)!r}) is still running "
        f"{THREAD_GRACE_S:.0f} s after the test: stop and join it"
        for t in _leaked_threads(threads_before)
    ]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
