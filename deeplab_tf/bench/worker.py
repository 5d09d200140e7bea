"""Contender processes: each builds one contender and times calls on request.

OpenVINO's and ONNX Runtime's worker threads keep spinning after a call and slow whatever
runs next on the same cores, so every contender lives in its own process, and the parent
stops (SIGSTOP) every process but the one it is timing. The parent drives rounds that call
each contender once in turn (``Pool.round``), so load from elsewhere spreads evenly.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
import traceback
from typing import Callable, Dict, List, Optional

from deeplab_tf.runtime import allocator, onednn

_CONTEXT = multiprocessing.get_context("spawn")


def _serve(connection, factory: Callable, args: tuple):
    """Worker main: build ``factory(*args)`` -> callable(); then answer ("call", arg)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        started = time.perf_counter()
        fn, payload = factory(*args)
        connection.send(("ready", {"build_seconds": time.perf_counter() - started,
                                   **payload}))
    except Exception as error:  # reported to the parent, which names the contender
        connection.send(("error", f"{type(error).__name__}: {error}",
                         traceback.format_exc(limit=-3)))
        return
    while True:
        message = connection.recv()
        if message[0] == "stop":
            return
        try:
            start = time.perf_counter()
            output = fn()
            seconds = time.perf_counter() - start
            connection.send(("done", seconds, output if message[1] else None))
        except Exception as error:
            connection.send(("error", f"{type(error).__name__}: {error}",
                             traceback.format_exc(limit=-3)))
            return


def _state(pid: int) -> str:
    """The process state letter from /proc ("?" where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


@contextlib.contextmanager
def _environment(values: Dict[str, str]):
    """``os.environ`` updated with ``values`` while a process starts (spawn copies it)."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def original_environment(keeps_freed_memory: bool = False) -> Dict[str, str]:
    """The original's process as the original ran here: TensorFlow's own choice of kernels
    for this CPU (``onednn.original_environment``) and glibc's malloc defaults (unless
    ``keeps_freed_memory``)."""
    environment = onednn.original_environment()
    if not keeps_freed_memory:
        environment[allocator.ENV] = "0"
    return environment


class WorkerError(RuntimeError):
    """A contender process failed (its message names it)."""


class Worker:
    """One process holding one callable built by ``factory(*args)`` (a picklable function
    returning (callable() -> picklable output, dict of facts)).

    ``environment``: variables set for the new process only (e.g. ``allocator.ENV``, read
    when the process imports deeplab_tf); the parent's environment is left as it was.
    """

    def __init__(self, name: str, factory: Callable, args: tuple = (),
                 environment: Optional[Dict[str, str]] = None):
        self.name = name
        parent, child = _CONTEXT.Pipe()
        self._connection = parent
        self._process = _CONTEXT.Process(target=_serve, args=(child, factory, args),
                                         daemon=True, name=f"bench-{name}")
        with _environment(environment or {}):
            self._process.start()
        # The child's end closed here: a child that dies (e.g. killed for memory) is then an
        # EOFError on recv, not a wait for ever.
        child.close()
        self._stopped = False
        self.facts = self._receive("ready")[1]
        self.pause()

    def _receive(self, expected):
        try:
            message = self._connection.recv()
        except EOFError:
            self._process.join(5)  # reaped, so that its exit code is known
            raise WorkerError(f"{self.name}: the process died (exit code "
                              f"{self._process.exitcode}; out of memory?)") from None
        if message[0] == "error":
            raise WorkerError(f"{self.name}: {message[1]}\n{message[2]}")
        assert message[0] == expected, message
        return message

    def pause(self):
        """SIGSTOP, and wait (up to 1 s) until the kernel shows the process stopped."""
        if not self._stopped and self._process.is_alive():
            os.kill(self._process.pid, signal.SIGSTOP)
            self._stopped = True
            deadline = time.perf_counter() + 1.0
            while _state(self._process.pid) not in ("T", "t", "?") and \
                    time.perf_counter() < deadline:
                time.sleep(0.001)

    def resume(self):
        if self._stopped:
            os.kill(self._process.pid, signal.SIGCONT)
            self._stopped = False

    def call(self, want_output: bool = False):
        """(seconds, output or None) of one call; every other worker should be paused."""
        self.resume()
        try:
            self._connection.send(("call", want_output))
            _, seconds, output = self._receive("done")
        finally:
            self.pause()
        return seconds, output

    def close(self):
        if self._process.is_alive():
            self.resume()
            try:
                self._connection.send(("stop",))
            except (BrokenPipeError, OSError):
                pass
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()


class Pool:
    """Workers timed in alternating rounds (each round calls every worker once, the order
    rotated from round to round)."""

    def __init__(self, workers: List[Worker]):
        self.workers = workers

    def round(self, index: int, want_output: bool = False) -> Dict[str, tuple]:
        shift = index % max(len(self.workers), 1)
        order = self.workers[shift:] + self.workers[:shift]
        return {w.name: w.call(want_output) for w in order}

    def close(self):
        for worker in self.workers:
            worker.close()
