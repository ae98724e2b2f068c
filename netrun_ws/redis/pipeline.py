"""The publish path's Redis connection: the commands of one event-loop turn in one write.

Every PUBLISH of the bus (and every history script call, which PUBLISHes too) would otherwise
be one redis-py call each: a pool checkout, a timeout context, one write and one read, so at a
few thousand messages a second the per-call overhead, not Redis, bounds the latency. Here the
calls queue up during a loop turn; a writer task sends them in one write on ONE dedicated
connection, and a reader task resolves the callers' futures from the replies, in order. So:

- order: one TCP stream, so Redis runs them in the order they were called (per channel and
  across channels), which the history offsets rely on;
- bounded: at most ``max_pending`` calls wait for a reply; a call beyond that fails at once;
- timed out: one timer per connection (not per call) fails every call still waiting
  ``timeout`` seconds after it was written, and drops the connection;
- errors: an error reply fails only its own call (``ResponseError``: NOSCRIPT is for the caller
  to handle); a lost connection fails every call in flight with :class:`RedisStoreError`, and
  the next call reconnects. Nothing is retried: a call that may have run is never sent twice.

Only for one Redis: on Redis Cluster the store keeps redis-py's cluster client (MOVED, ASK).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from typing import Any

from redis.asyncio.connection import AbstractConnection, Connection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from netrun_ws.redis.calls import REDIS_FAILURES, RedisStoreError, RedisTarget, describe_failure

__all__ = ["PipelinedConnection"]

#: Calls waiting for a reply at most (a Redis that stalls must not grow memory without bound).
MAX_PENDING = 100_000


class PipelinedConnection:
    """One connection to one Redis; :meth:`call` queues a command and returns its reply's future."""

    def __init__(
        self,
        target: RedisTarget,
        *,
        timeout: float,
        decode_responses: bool = True,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._target = target
        self._timeout = timeout
        self._max_pending = max_pending
        self._pool = ConnectionPool.from_url(
            target.url,
            decode_responses=decode_responses,
            socket_connect_timeout=timeout,
            socket_timeout=None,  # bounded by our own timer, not per read
            retry=Retry(NoBackoff(), 0),  # nothing is resent: see the module's docstring
        )
        #: Commands called since the writer last ran, with their futures and operation names.
        self._queued: list[tuple[bytes, asyncio.Future[Any], str]] = []
        #: Written, awaiting their replies in order: future, operation, time written.
        self._sent: collections.deque[tuple[asyncio.Future[Any], str, float]] = collections.deque()
        self._wake = asyncio.Event()
        self._connection: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def call(self, operation: str, *args: Any) -> asyncio.Future[Any]:
        """Queue ``args`` (a command; TypeError for an argument that is not str, bytes or a
        number) to be written at the end of this loop turn; the future
        gets its raw reply (no redis-py response callbacks: ``"OK"``, not True), the
        ``ResponseError`` of an error reply, or :class:`RedisStoreError`."""
        return self.call_packed(operation, _pack(args))

    def call_packed(self, operation: str, command: bytes) -> asyncio.Future[Any]:
        """:meth:`call` for a command the caller packed in RESP itself (one array of bulk
        strings: Redis's reply is matched to it in order)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(RedisStoreError("the Redis store is stopped"))
        elif len(self._sent) + len(self._queued) >= self._max_pending:
            future.set_exception(
                RedisStoreError(
                    f"Redis at {self._target.location}: {self._max_pending} calls await a reply"
                )
            )
        else:
            self._queued.append((command, future, operation))
            if self._writer is None:
                self._writer = asyncio.create_task(self._write_loop(), name="redis-pipeline")
            self._wake.set()
        return future

    async def stop(self) -> None:
        """Fail what waits, close the connection; idempotent."""
        self._closed = True
        tasks = [task for task in (self._writer, self._reader) if task is not None]
        self._writer = self._reader = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self._timeout)
        self._drop(RedisStoreError("the Redis store is stopped"))
        with contextlib.suppress(*REDIS_FAILURES):
            await asyncio.wait_for(self._pool.disconnect(), self._timeout)

    # ---------------------------------------------------------------- writing

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queued = self._queued, []
            batch = [item for item in batch if not item[1].done()]  # callers gone meanwhile
            if not batch:
                continue
            try:
                connection = await self._connected(batch[0][2])
                loop = asyncio.get_running_loop()
                now = loop.time()
                self._sent.extend((future, operation, now) for _, future, operation in batch)
                if self._timer is None:
                    self._timer = loop.call_at(now + self._timeout, self._check_timeouts)
                packed = b"".join([command for command, _, _ in batch])
                await connection.send_packed_command(packed, check_health=False)
            except Exception as exc:  # a failed batch fails its calls, never the writer
                error = self._error(batch[0][2], exc)
                self._fail(batch, error)
                self._drop(error)

    async def _connected(self, operation: str) -> AbstractConnection:
        if self._connection is not None:
            return self._connection
        connection: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            async with asyncio.timeout(self._timeout):
                await connection.connect()  # type: ignore[no-untyped-call]
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            if isinstance(exc, REDIS_FAILURES):
                raise self._error(operation, exc) from None
            raise
        self._connection = connection
        self._reader = asyncio.create_task(self._read_loop(connection), name="redis-replies")
        return connection

    # ---------------------------------------------------------------- reading

    async def _read_loop(self, connection: AbstractConnection) -> None:
        sent = self._sent
        while True:
            try:
                reply: Any = await connection.read_response()
            except ResponseError as exc:
                reply = exc
            except REDIS_FAILURES as exc:
                if self._connection is connection:
                    self._drop(self._error(sent[0][1] if sent else "a call", exc))
                return
            if not sent:  # a reply nobody asked for: the stream is out of step
                self._drop(RedisStoreError(f"Redis at {self._target.location} sent a stray reply"))
                return
            future, _, _ = sent.popleft()
            if not future.done():
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    def _check_timeouts(self) -> None:
        self._timer = None
        if not self._sent:
            return
        _, operation, written = self._sent[0]
        loop = asyncio.get_running_loop()
        if loop.time() - written >= self._timeout:
            self._drop(
                RedisStoreError(
                    f"Redis at {self._target.location} did not answer {operation} "
                    f"within {self._timeout:g}s"
                )
            )
        else:
            self._timer = loop.call_at(written + self._timeout, self._check_timeouts)

    # ---------------------------------------------------------------- failures

    def _error(self, operation: str, exc: BaseException) -> RedisStoreError:
        if isinstance(exc, RedisStoreError):
            return exc
        if isinstance(exc, asyncio.TimeoutError):
            return RedisStoreError(
                f"Redis at {self._target.location} did not answer {operation} "
                f"within {self._timeout:g}s"
            )
        cause = self._target.scrub(describe_failure(exc))
        return RedisStoreError(
            f"Redis at {self._target.location} failed during {operation}: {cause}"
        )

    @staticmethod
    def _fail(batch: list[tuple[bytes, asyncio.Future[Any], str]], error: BaseException) -> None:
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(error)

    def _drop(self, error: BaseException) -> None:
        """The connection is lost or out of step: fail every call in flight, forget it (the next
        call reconnects)."""
        connection, reader = self._connection, self._reader
        self._connection = self._reader = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sent, self._sent = self._sent, collections.deque()
        for future, _, _ in sent:
            if not future.done():
                future.set_exception(error)
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        if connection is not None:
            task = asyncio.ensure_future(_close(connection, self._timeout))
            task.add_done_callback(_retrieve)


def _pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP, packed by hiredis (compiled; in the ``redis`` extra) or else by
    redis-py: at write time through redis-py's pool, the packing cost more than the rest of a
    publish. Text with lone surrogates (JSON allows them) crosses unchanged, as payloads do."""
    for arg in args:
        if type(arg) not in _ARGUMENT_TYPES:  # bool too, which redis-py refuses as well
            raise TypeError(
                f"a Redis argument must be str, bytes or a number, not {type(arg).__name__}"
            )
    try:
        return _pack_command(args)
    except UnicodeEncodeError:
        return _pack_command(
            tuple(a.encode("utf-8", "surrogatepass") if type(a) is str else a for a in args)
        )


def _pack_with_redis_py(args: tuple[Any, ...]) -> bytes:
    return b"".join(_REDIS_PY_PACKER.pack_command(*args))


_ARGUMENT_TYPES = frozenset((str, bytes, int, float))
#: An unconnected redis-py connection: its pack_command needs no socket.
_REDIS_PY_PACKER = Connection()
_pack_command: Callable[[tuple[Any, ...]], bytes]
try:
    from hiredis import pack_command as _pack_command
except ImportError:  # redis without its extra: redis-py packs
    _pack_command = _pack_with_redis_py


async def _close(connection: AbstractConnection, timeout: float) -> None:
    with contextlib.suppress(Exception):  # best effort: the connection is being abandoned
        await asyncio.wait_for(connection.disconnect(nowait=True), timeout)


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()
