"""Tree scans on every core: the parent walks, forked workers read and match, and the results come
back in walk order, so ``--jobs N`` reports exactly what ``--jobs 1`` reports, in the same order.

The parent walks the tree (ignore rules and all) and sends batches of paths to worker processes
over pipes; each worker reads, unwraps and matches its files (the pipeline's ``scan_file``, handed
in), then sends back the candidates, its warnings in the order they happened, and
the counts it added. The parent hands them on in walk order; suppression, dedup and reporting stay
in the parent. Batches go to the least busy worker, with a bounded number in flight, so memory
stays flat and a slow file does not hold up the other workers.

Why not ``multiprocessing``: importing it costs about 20 ms (a tenth of a whole scan of a
100 MB tree), and its helper threads compete with the walk for the GIL; a fork and two pipes per
worker do the same job. Without ``os.fork`` (Windows) a tree is scanned in-process.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from kascan.errors import KascanError
from kascan.sources.base import FileRef
from kascan.stats import ScanStats

if TYPE_CHECKING:
    from kascan.model import Candidate
    from kascan.sources.base import Run

ScanFile = Callable[[FileRef, "Run"], Iterable["Candidate"]]

Warn = Callable[[str], None]
Events = list["Candidate | str"]  # a batch's results in order: candidates, and warnings (str)

BATCH_FILES = 64  # files per batch: enough to amortize the round trip, few enough to balance
BATCH_BYTES = 16 << 10  # pickled paths per batch
IN_FLIGHT_BYTES = 48 << 10  # unanswered requests per worker: below a pipe's 64 KiB, writes
# never block, so the parent cannot deadlock with a worker that waits to send its results
AHEAD = 1 << 15  # with a progress line: walk entries that may wait ahead of the reads
STRIDE = 8  # ... walked for each one handed on


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(os.cpu_count() or 1, 1)


# --------------------------------------------------------------------------- framing


def _write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(len(payload).to_bytes(8, "little") + payload)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    parts: list[bytes] = []
    while n:
        block = os.read(fd, min(n, 1 << 20))
        if not block:
            return None
        parts.append(block)
        n -= len(block)
    return b"".join(parts)


def _read_frame(fd: int) -> bytes | None:
    head = _read_exact(fd, 8)
    if head is None:
        return None
    return _read_exact(fd, int.from_bytes(head, "little"))


# --------------------------------------------------------------------------- the worker


def _worker(run: Run, req: int, res: int, scan_file: ScanFile) -> None:
    """Serve batches until the parent closes the request pipe."""
    import pickle

    while True:
        frame = _read_frame(req)
        if frame is None:
            return
        stats = ScanStats()
        events: Events = []
        mine = replace(run, stats=stats, warn=events.append)
        try:
            for fs_path, path in pickle.loads(frame):  # noqa: S301 - our own parent's pipe
                if fs_path is None:  # a walk warning, echoed in its place
                    events.append(path)
                else:
                    events.extend(scan_file(FileRef(fs_path, path), mine))
            reply = pickle.dumps((True, events, stats), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # sent back and raised in the parent as one line
            message = (
                exc.message if isinstance(exc, KascanError) else f"{type(exc).__name__}: {exc}"
            )
            reply = pickle.dumps((False, message, stats), pickle.HIGHEST_PROTOCOL)
        _write_frame(res, reply)


class _Worker:
    def __init__(self, run: Run, others: list[_Worker], scan_file: ScanFile) -> None:
        req_r, self.req = os.pipe()
        self.res, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child (coverage does not follow forks)
            code = 0
            try:
                import signal

                signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is the parent's to handle
                os.close(self.req)
                os.close(self.res)
                for w in others:  # the earlier workers' pipe ends are not this worker's
                    os.close(w.req)
                    os.close(w.res)
                _worker(run, req_r, res_w, scan_file)
            except BaseException:
                code = 1
            finally:
                os._exit(code)  # no atexit handlers, no flushing of the parent's buffers
        os.close(req_r)
        os.close(res_w)
        self.pid = pid
        self.in_flight: deque[int] = deque()  # request sizes, oldest first
        self.replies: deque[bytes] = deque()  # read but not yet handed on

    def close(self, kill: bool) -> None:
        import signal

        for fd in (self.req, self.res):
            with contextlib.suppress(OSError):
                os.close(fd)
        if kill:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class _Ahead:
    """A walk kept ahead of the reads, for a progress line only: up to ``STRIDE`` entries are
    walked for each one handed on, until ``AHEAD`` wait, so that the walk of a tree of up to
    about ``AHEAD`` files ends while the first eighth of it is read and the total is known (the
    line's estimate; a bigger tree's when that many files are left). The walk is the same one (no
    stat, no second pass): what this costs is the memory of the waiting entries, a few MiB. The
    walk's warnings wait in the same queue, in their place between the files."""

    def __init__(self, walk: Callable[[Warn], Iterable[FileRef]]) -> None:
        self.queue: deque[FileRef | str] = deque()
        self.refs = iter(walk(self.queue.append))
        self.walked = 0
        self.total: int | None = None  # the walk's files, once it has ended

    def __iter__(self) -> Iterator[FileRef | str]:
        queue, refs = self.queue, self.refs
        while True:
            for _ in range(STRIDE):
                if self.total is not None or len(queue) >= AHEAD:
                    break
                ref = next(refs, None)
                if ref is None:
                    self.total = self.walked
                    break
                self.walked += 1
                queue.append(ref)
            if not queue:
                return
            yield queue.popleft()


class TreeScanner:
    """Scans the files of walks, in parallel when ``jobs > 1``; one set of workers per run."""

    def __init__(self, run: Run, jobs: int, scan_file: ScanFile) -> None:
        self.run = run
        self.scan_file = scan_file
        self.stats = run.stats
        self.warn = run.warn
        self.jobs = jobs if hasattr(os, "fork") else 1
        self._workers: list[_Worker] = []

    def __enter__(self) -> TreeScanner:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(kill=exc_type is not None)

    def close(self, kill: bool = False) -> None:
        workers, self._workers = self._workers, []
        for w in workers:
            w.close(kill)

    def _start(self) -> list[_Worker]:
        if not self._workers:
            for _ in range(self.jobs):
                self._workers.append(_Worker(self.run, self._workers, self.scan_file))
        return self._workers

    def scan(self, walk: Callable[[Warn], Iterable[FileRef]]) -> Iterator[Candidate]:
        """Candidates of every file ``walk(warn)`` yields, in walk order.

        The walk's own warnings (an unreadable directory) are replayed between the files they
        came between, as a one-process scan would show them.
        """
        tick = self.run.tick
        ahead = _Ahead(walk) if tick is not None else None
        done = 0  # files handed on (for the progress line)
        if self.jobs <= 1:
            if ahead is None or tick is None:
                for ref in walk(self.warn):
                    yield from self.scan_file(ref, self.run)
                return
            for entry in ahead:
                if isinstance(entry, str):
                    self.warn(entry)
                    continue
                yield from self.scan_file(entry, self.run)
                done += 1
                tick(done, ahead.total)
            return
        import itertools
        import pickle
        import select

        prelude: list[FileRef | str] = []  # the first files, and walk warnings among them
        sink: list[Warn] = [prelude.append]  # where the walk's warnings go
        refs: Iterator[FileRef | str]  # the walk's warnings come through the sink, or in place
        refs = iter(ahead) if ahead is not None else iter(walk(lambda message: sink[0](message)))
        for entry in refs:
            prelude.append(entry)
            if len(prelude) > BATCH_FILES:
                break
        else:  # a small tree: not worth a fork
            for item in prelude:
                if isinstance(item, str):
                    self.warn(item)
                else:
                    yield from self.scan_file(item, self.run)
                    done += 1
                    if tick is not None and ahead is not None:
                        tick(done, ahead.total)
            return
        workers = self._start()
        order: deque[tuple[_Worker, int]] = deque()  # who answers each batch (its files), in order
        # a batch entry is (fs_path, path), or (None, warning): the worker echoes the warning
        # back in its place, so a walk warning is shown between the same files as in-process
        batch: list[tuple[str | None, str]] = []
        batch_bytes = 0

        def drain(w: _Worker) -> None:
            frame = _read_frame(w.res)
            if frame is None:
                raise KascanError("a worker process died during the scan")
            w.in_flight.popleft()
            w.replies.append(frame)

        def poll() -> None:
            """Read every reply that is already there (it frees room and shows who is idle)."""
            busy = [w for w in workers if w.in_flight]
            while busy:
                ready, _, _ = select.select([w.res for w in busy], [], [], 0)
                if not ready:
                    return
                for w in busy:
                    if w.res in ready:
                        drain(w)
                busy = [w for w in busy if w.in_flight and w.res in ready]

        def hand_on(until: Callable[[], bool]) -> Iterator[Candidate]:
            nonlocal done
            while order and not until():
                head, files = order.popleft()
                if not head.replies:
                    drain(head)
                ok, events, delta = pickle.loads(head.replies.popleft())  # noqa: S301
                self.stats.merge(delta)
                if tick is not None and ahead is not None:
                    done += files
                    tick(done, ahead.total)
                if not ok:
                    raise KascanError(events)
                for event in events:
                    if isinstance(event, str):
                        self.warn(event)
                    else:
                        yield event

        def send() -> Iterator[Candidate]:
            nonlocal batch_bytes
            if not batch:
                return
            payload = pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
            files = sum(fs_path is not None for fs_path, _ in batch)
            batch.clear()
            batch_bytes = 0
            poll()
            w = min(workers, key=lambda w: len(w.in_flight))
            # hand results on, in order, until this worker has room for the request
            yield from hand_on(lambda: sum(w.in_flight) + len(payload) + 8 <= IN_FLIGHT_BYTES)
            _write_frame(w.req, payload)
            w.in_flight.append(len(payload) + 8)
            order.append((w, files))

        def walk_warn(message: str) -> None:
            nonlocal batch_bytes
            batch.append((None, message))
            batch_bytes += len(message) + 16

        sink[0] = walk_warn  # from here on, walk warnings travel with the batches
        for item in itertools.chain(prelude, refs):
            if isinstance(item, str):
                walk_warn(item)
                continue
            batch.append((item.fs_path, item.path))
            batch_bytes += len(item.fs_path) + len(item.path) + 16
            if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                yield from send()
        yield from send()
        yield from hand_on(lambda: False)
