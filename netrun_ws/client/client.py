"""`Client`: one logical connection to a netrun-ws server that survives reconnects.

One background task owns the socket: it connects, reads the welcome, answers pings, tracks
positions, refreshes the token, and after a close decides by :mod:`.retry` whether and when to
reconnect (resuming the session with the positions it has). The app reads messages from a bounded
queue (``async for``) and learns about states and gaps through callbacks and the stream itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from netrun_ws.protocol import MessageRegistry, ProtocolError
from netrun_ws.reconnection import ReconnectionConfig
from netrun_ws.wire import encode_message

from .events import ClientClosed, Gap, State, StateChange
from .positions import MAX_SINCE_CHANNELS, Position, Positions
from .retry import (
    NETWORK_ERROR,
    Retry,
    RetryRule,
    attempts_left,
    policy_from_welcome,
    retry_delay,
    rule_for_close,
    rule_for_status,
)
from .tokens import refresh_delay, token_expiry

logger = logging.getLogger("netrun_ws.client")

Message = dict[str, Any] | BaseModel
TokenSource = Callable[[], str | Awaitable[str]]

#: The longest request target (path and query) a resume request is given: servers refuse a
#: longer request line (websockets' and so netrun-ws's limit is 8,192 bytes with "GET " and
#: " HTTP/1.1", nginx's default 8 KB) with HTTP 414; ``since`` is cut to fit (Positions).
MAX_REQUEST_TARGET = 8000

#: Messages the client itself reads; always handed to the app as dicts, never parsed as models.
CONTROL_TYPES = frozenset(
    {"connect", "disconnect", "gap", "recovered", "delivery_gap", "refreshed", "error"}
)


class _End:
    """The inbox's last item: iteration stops (``error`` None) or raises ``error``."""

    def __init__(self, error: ClientClosed | None) -> None:
        self.error = error


class _Ended(Exception):
    """One connection ended: how, for the retry decision."""

    def __init__(self, rule: RetryRule, code: int | None, reason: str, text: str) -> None:
        super().__init__(text)
        self.rule, self.code, self.reason, self.text = rule, code, reason, text


class Client:
    """A netrun-ws connection that reconnects, resumes and recovers by itself.

    ``async with Client(url, token=...) as client:`` (``url``: one URL, or a list of the
    nodes of a cluster, tried in turn on reconnects) connects (raising :class:`ClientClosed`
    when the first connection is refused for good); ``await client.send(...)`` sends a dict or
    a pydantic model, waiting while reconnecting; ``async for message in client`` yields every
    message but pings, as dicts or, when ``registry`` knows the type, as its model; it ends after
    ``close()`` and raises :class:`ClientClosed` when the server or the network ended the
    client for good. See docs/clients.md.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        token: str | None = None,
        token_transport: Literal["header", "subprotocol", "message"] = "header",
        refresh_token: TokenSource | None = None,
        refresh_margin: float = 30.0,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        registry: MessageRegistry | None = None,
        reconnect: ReconnectionConfig | bool = True,
        retry_first: bool = False,
        on_state: Callable[[StateChange], object] | None = None,
        on_gap: Callable[[Gap], object] | None = None,
        open_timeout: float = 10.0,
        max_queue: int = 1024,
        random: Callable[[], float] = _random.random,
        **connect_options: Any,
    ) -> None:
        if token_transport not in ("header", "subprotocol", "message"):
            raise ValueError(
                "token_transport must be 'header', 'subprotocol' or 'message', "
                f"got {token_transport!r}"
            )
        #: The server's URLs (several: nodes of one cluster); each reconnect attempt takes the
        #: next one, so a client whose node died or drained lands on another.
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("Client needs at least one URL")
        self._url_index = 0
        self._token = token
        self._token_transport = token_transport
        self._refresh_token = refresh_token
        self._refresh_margin = refresh_margin
        self._params = dict(params or {})
        self._headers = dict(headers or {})
        self._registry = registry
        self._reconnects = reconnect is not False
        self._fallback_policy = (
            reconnect if isinstance(reconnect, ReconnectionConfig) else ReconnectionConfig()
        )
        self._retry_first = retry_first
        self._on_state = on_state
        self._on_gap = on_gap
        self._open_timeout = open_timeout
        self._random = random
        self._connect_options = connect_options
        # Bounded by max_queue in _deliver, not by the queue: past close() the reader must go
        # on taking frames without waiting for the app (see _deliver).
        self._inbox: asyncio.Queue[Message | _End] = asyncio.Queue()
        self._max_queue = max_queue
        self._room = asyncio.Event()  # set when the app took a message, or close() began
        self._positions = Positions()
        #: The most channels ``since`` names: the last welcome's ``max_since_channels``.
        self._max_since_channels = MAX_SINCE_CHANNELS
        #: The last welcome said the server reads a ``since`` frame (``since_frame``).
        self._since_frame_offered = False
        #: The ``since`` frame the current resume request promised (``since_frame=1``).
        self._since_frame: str | None = None
        self._policy = self._fallback_policy
        self._session_id: str | None = None
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._stopped = asyncio.Event()
        self._first_outcome: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._ended: _End | None = None
        self._draining = False
        self._reauthed = False
        self._welcomed = False
        self._resuming = False
        self.state = State.CLOSED
        self.welcome: dict[str, Any] | None = None

    # ------------------------------------------------------------------ what the app reads

    @property
    def session_id(self) -> str | None:
        """The session the client resumes on reconnect (from the last welcome)."""
        return self._session_id

    @property
    def positions(self) -> dict[str, Position]:
        """The last position received per channel."""
        return self._positions.snapshot()

    @property
    def url(self) -> str:
        """The URL the client is connected to, or will try next."""
        return self.urls[self._url_index]

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect; return once the first welcome arrived. Raises ClientClosed when the first
        connection failed for good (refused, unreachable without ``retry_first``)."""
        if self._task is not None:
            raise RuntimeError("the client was already started")
        self._first_outcome = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name=f"netrun-ws client {self.url}")
        await asyncio.shield(self._first_outcome)

    async def close(self) -> None:
        """Close the connection with 1000 and stop reconnecting; iteration ends once the
        messages received until the server's close frame are read."""
        self._closing = True
        self._room.set()  # a reader waiting for the app to make room goes on reading
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()  # the close handshake, bounded by websockets' close_timeout
        task = self._task
        if task is not None and task is not asyncio.current_task():
            try:
                if ws is not None and not task.done():
                    # websockets keeps the frames that came before the server's close frame
                    # readable: the reader hands them to the inbox and then ends by itself.
                    # Only an app callback (on_gap) could hold it; that wait is bounded too.
                    await asyncio.wait({task}, timeout=ws.close_timeout)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._finish(None)

    async def wait_closed(self) -> None:
        """Wait until the client stopped for good (the error, if any, is raised by iteration);
        at once when it was never started."""
        if self._task is not None:
            await self._stopped.wait()

    # ------------------------------------------------------------------ messages

    async def send(self, message: Mapping[str, Any] | BaseModel) -> None:
        """Send one message, waiting while the client reconnects. Raises ClientClosed once the
        client has stopped for good."""
        frame = encode_message(message if isinstance(message, BaseModel) else dict(message))
        while True:
            await self._wait_connected()
            ws = self._ws
            if ws is not None:
                try:
                    await ws.send(frame)
                    return
                except ConnectionClosed:
                    pass
            await asyncio.sleep(0.01)  # the run task notices the close and reconnects

    async def recv(self) -> Message:
        """The next message; raises StopAsyncIteration after close(), ClientClosed on failure."""
        if self._ended is not None and self._inbox.empty():
            return self._raise_end(self._ended)
        item = await self._inbox.get()
        self._room.set()
        if isinstance(item, _End):
            self._inbox.put_nowait(item)  # every later reader ends the same way
            return self._raise_end(item)
        return item

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        return await self.recv()

    @staticmethod
    def _raise_end(end: _End) -> Message:
        if end.error is not None:
            raise end.error
        raise StopAsyncIteration

    async def _wait_connected(self) -> None:
        if self._task is None:
            raise RuntimeError("the client is not started (use `async with Client(...)`)")
        while not self._connected.is_set():
            if self._ended is not None:
                raise self._ended.error or ClientClosed(None, "client closed")
            waiters = {
                asyncio.ensure_future(self._connected.wait()),
                asyncio.ensure_future(self._stopped.wait()),
            }
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    # ------------------------------------------------------------------ the run loop

    async def _run(self) -> None:
        attempt = 0
        error: ClientClosed | None = None
        try:
            await self._set_state(StateChange(State.CONNECTING))
            while not self._closing:
                try:
                    await self._connect_once()
                    raise AssertionError("_connect_once returns only by raising _Ended")
                except _Ended as exc:
                    ended = exc
                if self._closing:
                    break
                if self._welcomed:
                    attempt = 0  # a connection that got as far as the welcome resets the count
                    self._welcomed = False
                first = self._first_outcome is not None and not self._first_outcome.done()
                # A first connection that fails is reported at once (unless retry_first), but a
                # refused token still gets its one retry with a new one.
                plain_retry = ended.rule.retry is not Retry.REAUTH
                if not self._reconnects or (first and not self._retry_first and plain_retry):
                    retry = Retry.NEVER
                else:
                    retry = await self._decide(ended)
                if retry is Retry.NEVER:
                    error = ClientClosed(ended.code, ended.text)
                    break
                attempt += 1
                if not attempts_left(self._policy, attempt):
                    text = f"gave up after {attempt - 1} attempts; last: {ended.text}"
                    error = ClientClosed(ended.code, text)
                    break
                self._url_index = (self._url_index + 1) % len(self.urls)
                delay = retry_delay(self._policy, attempt, retry, self._random)
                await self._set_state(
                    StateChange(State.RECONNECTING, ended.code, ended.reason, attempt, delay)
                )
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug here must end iteration loudly, not quietly
            logger.exception("netrun-ws client failed")
            error = ClientClosed(None, f"client failed: {exc!r}")
        finally:
            await self._finish(error)

    async def _decide(self, ended: _Ended) -> Retry:
        """Turn how a connection ended into what to do next, handling the special cases."""
        retry = ended.rule.retry
        if self._draining and retry is Retry.BACKOFF:
            retry = Retry.PROMPT  # told to go by a `disconnect` message, then closed by the proxy
        self._draining = False
        if ended.code in (400, 414) and self._resuming and self._session_id is not None:
            # The server refused our resume request (a bad `since`, or a URL longer than a
            # proxy takes): start a fresh session and say what is lost rather than fail.
            await self._lose_all("resume_refused")
            self._session_id = None
            return Retry.BACKOFF
        if retry is Retry.REAUTH:
            if self._refresh_token is None or self._reauthed:
                return Retry.NEVER
            self._reauthed = True
            try:
                self._token = await _call_token_source(self._refresh_token)
            except Exception as exc:  # the app's callback: say so, stop rather than loop
                logger.warning("refresh_token callback failed: %r", exc)
                return Retry.NEVER
            return Retry.BACKOFF
        return retry

    async def _connect_once(self) -> None:
        """One connection from handshake to close; raises _Ended saying how it ended."""
        await self._renew_if_expired()
        url, headers, subprotocols = self._handshake()
        options: dict[str, Any] = {"open_timeout": self._open_timeout, **self._connect_options}
        try:
            ws = await connect(
                url, additional_headers=headers, subprotocols=subprotocols, **options
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            reason = _refusal_reason(exc)
            text = f"refused with HTTP {status}" + (f" ({reason})" if reason else "")
            raise _Ended(rule_for_status(status), status, reason, text) from None
        except InvalidURI as exc:
            never = RetryRule(Retry.NEVER, "invalid URL")
            raise _Ended(never, None, str(exc), f"invalid URL: {exc}") from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise _Ended(NETWORK_ERROR, None, str(exc), f"cannot connect: {exc}") from None
        refresher: asyncio.Task[None] | None = None
        try:
            if self._token is not None and self._token_transport == "message":
                # server.first_message_auth: the token is the first message, before the welcome.
                await ws.send(json.dumps({"type": "auth", "token": self._token}))
            if self._since_frame is not None:
                await ws.send(self._since_frame)  # read by the server after the welcome
            welcome = await self._read_welcome(ws)
            self._ws = ws
            await self._on_welcome(welcome)
            self._connected.set()
            self._welcomed = True
            await self._set_state(
                StateChange(State.CONNECTED, resumed=welcome.get("resumed") is True)
            )
            self._settle_first()
            await self._deliver(welcome)
            if self._refresh_token is not None and self._token is not None:
                refresher = asyncio.create_task(self._refresh_loop(ws))
            async for raw in ws:
                await self._handle(ws, raw)
        except ConnectionClosed:
            pass
        finally:
            self._connected.clear()
            self._ws = None
            if refresher is not None:
                refresher.cancel()
            if self._closing:
                with contextlib.suppress(Exception):
                    await ws.close()
        code, reason = ws.close_code, ws.close_reason or ""
        text = f"closed with {code if code is not None else 1006}" + (
            f" ({reason})" if reason else ""
        )
        raise _Ended(rule_for_close(code), code, reason, text)

    def _handshake(self) -> tuple[str, dict[str, str], list[Subprotocol] | None]:
        parts = urlsplit(self.url)
        query = [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k not in ("session_id", "since")
        ]
        query.extend(self._params.items())
        self._resuming = self._session_id is not None
        self._since_frame = None
        if self._session_id is not None:
            query.append(("session_id", self._session_id))
            # What fits in the server's request line (websockets' limit, proxies' too).
            rest = len(urlunsplit(parts._replace(scheme="", netloc="", query=urlencode(query))))
            budget = MAX_REQUEST_TARGET - rest - len("&since=")
            positions = self._positions
            if self._since_frame_offered and not positions.fit_in_url(
                budget, self._max_since_channels
            ):
                # Every channel in the first frame rather than some in the URL.
                query.append(("since_frame", "1"))
                self._since_frame = positions.since_frame()
            else:
                since = positions.since_param(budget, self._max_since_channels)
                if since is not None:
                    query.append(("since", since))
        url = urlunsplit(parts._replace(query=urlencode(query)))
        headers = dict(self._headers)
        subprotocols: list[Subprotocol] | None = None
        if self._token is not None:
            if self._token_transport == "header":
                headers["Authorization"] = f"Bearer {self._token}"
            elif self._token_transport == "subprotocol":
                subprotocols = [Subprotocol("netrun-ws"), Subprotocol(f"bearer.{self._token}")]
        return url, headers, subprotocols

    async def _read_welcome(self, ws: ClientConnection) -> dict[str, Any]:
        try:
            raw = await asyncio.wait_for(ws.recv(), self._open_timeout)
        except TimeoutError:
            await ws.close(1002, "no welcome")
            raise _Ended(NETWORK_ERROR, None, "no welcome", "the server sent no welcome") from None
        message = _parse(raw)
        if message is None or message.get("type") != "connect":
            await ws.close(1002, "no welcome")
            text = "the server's first message was not a welcome"
            raise _Ended(NETWORK_ERROR, None, "no welcome", text)
        return message

    async def _on_welcome(self, welcome: dict[str, Any]) -> None:
        self.welcome = welcome
        self._reauthed = False
        session_id = welcome.get("session_id")
        self._session_id = session_id if isinstance(session_id, str) else None
        self._policy = policy_from_welcome(welcome, self._fallback_policy)
        limit = welcome.get("max_since_channels")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            self._max_since_channels = limit
        self._since_frame_offered = welcome.get("since_frame") is True
        raw_positions = welcome.get("positions")
        listed = raw_positions if isinstance(raw_positions, Mapping) else {}
        if self._resuming:
            # The server recovers the channels its welcome lists (replay, or a gap). Any other
            # channel we tracked went with the session: a room of a session that was not
            # resumed is a loss to report; one a resumed session left is simply forgotten.
            gone = self._positions.forget_all_but(listed)
            if welcome.get("resumed") is not True:
                for channel in gone:
                    message = {"type": "gap", "channel": channel, "reason": "session_lost"}
                    await self._gap(Gap(channel, "session_lost"), message)
            return
        # A new session: the channels start where the server stands now.
        for channel, raw in listed.items():
            position = Position.parse(raw)
            if isinstance(channel, str) and position is not None:
                self._positions.set(channel, position)

    async def _lose_all(self, reason: str) -> None:
        """Every tracked channel may have lost messages: one gap each, then forget them."""
        for channel in self._positions.forget_all_but({}):
            await self._gap(
                Gap(channel, reason), {"type": "gap", "channel": channel, "reason": reason}
            )

    async def _handle(self, ws: ClientConnection, raw: str | bytes) -> None:
        message = _parse(raw)
        if message is None:
            logger.warning("the server sent a frame that is not a JSON object; ignored")
            return
        kind = message.get("type")
        if kind == "ping":
            if not self._closing:  # a send after our close frame would wait for the close
                await ws.send('{"type":"pong"}')
            return
        if kind == "gap":
            channel, position = message.get("channel"), Position.parse(message)
            if isinstance(channel, str) and position is not None:
                self._positions.set(channel, position)
            reason = message.get("reason")
            gap = Gap(
                channel if isinstance(channel, str) else None,
                reason if isinstance(reason, str) else "unknown",
                position.offset if position else None,
                position.epoch if position else None,
            )
            await self._gap(gap, message)
            return
        if kind == "delivery_gap":
            since, until = message.get("since"), message.get("until")
            gap = Gap(
                None,
                "delivery_gap",
                since=float(since) if isinstance(since, int | float) else None,
                until=float(until) if isinstance(until, int | float) else None,
            )
            await self._gap(gap, message)
            return
        if kind == "recovered":
            channels = message.get("channels")
            if isinstance(channels, Mapping):
                for channel, raw_position in channels.items():
                    position = Position.parse(raw_position)
                    if isinstance(channel, str) and position is not None:
                        self._positions.set(channel, position)
        elif kind == "disconnect":
            self._draining = True
            session_id = message.get("session_id")
            if isinstance(session_id, str):
                self._session_id = session_id
        elif kind == "refreshed":
            pass  # the new token's own exp drives the next refresh
        else:
            fresh, previous = self._positions.accept(message)
            if not fresh:
                return  # a duplicate: already delivered
            if previous is not None:
                pos = message["pos"]
                gap = Gap(pos["channel"], "epoch_changed", pos["offset"] - 1, pos["epoch"])
                await self._gap(
                    gap,
                    {
                        "type": "gap",
                        "channel": gap.channel,
                        "reason": gap.reason,
                        "offset": gap.offset,
                        "epoch": gap.epoch,
                    },
                )
        await self._deliver(message)

    async def _gap(self, gap: Gap, message: dict[str, Any]) -> None:
        if self._on_gap is not None:
            await _call(self._on_gap, gap)
        await self._deliver(message)

    async def _deliver(self, message: dict[str, Any]) -> None:
        item = self._typed(message)
        inbox = self._inbox
        # An app that reads slower than the server sends holds the reader here (back-pressure
        # to the server). Once close() began it does not: the server's answer to the close
        # frame waits behind the frames still coming, and websockets stops reading the socket
        # while its own queue is full, so a held reader made close() wait out its timeout.
        # What arrives meanwhile stays readable (its position is already counted).
        while inbox.qsize() >= self._max_queue > 0 and not self._closing:
            self._room.clear()
            await self._room.wait()
        inbox.put_nowait(item)

    def _typed(self, message: dict[str, Any]) -> Message:
        registry = self._registry
        kind = message.get("type")
        if registry is None or kind in CONTROL_TYPES or kind not in registry:
            return message
        body = {k: v for k, v in message.items() if k != "pos"}
        try:
            return registry.parse(body)
        except (ProtocolError, ValidationError) as exc:
            logger.warning(
                "message of type %r does not fit its model, delivered as a dict: %s", kind, exc
            )
            return message

    # ------------------------------------------------------------------ tokens

    async def _renew_if_expired(self) -> None:
        """Ask for a new token before connecting with one already expired (a long outage), not
        after the server refused it."""
        if self._refresh_token is None or self._token is None:
            return
        expires_at = token_expiry(self._token)
        if expires_at is None or expires_at > time.time():
            return
        try:
            self._token = await _call_token_source(self._refresh_token)
        except Exception as exc:  # the app's callback: try with the old token, as without one
            logger.warning("refresh_token callback failed: %r", exc)

    async def _refresh_loop(self, ws: ClientConnection) -> None:
        source = self._refresh_token
        assert source is not None
        while True:
            expires_at = token_expiry(self._token or "")
            if expires_at is None:
                return
            await asyncio.sleep(refresh_delay(expires_at, time.time(), self._refresh_margin))
            try:
                token = await _call_token_source(source)
            except Exception as exc:  # the app's callback: keep the connection, try again later
                logger.warning("refresh_token callback failed: %r", exc)
                await asyncio.sleep(max(1.0, (expires_at - time.time()) / 3))
                continue
            if token == self._token:
                # Nothing new to send: wait until the old one runs out (the server closes with
                # 1008 "token expired" and the reconnect asks again).
                await asyncio.sleep(max(1.0, expires_at - time.time() + 1))
                continue
            self._token = token
            await ws.send(json.dumps({"type": "refresh", "token": token}))

    # ------------------------------------------------------------------ events

    async def _set_state(self, change: StateChange) -> None:
        self.state = change.state
        if self._on_state is not None:
            await _call(self._on_state, change)

    def _settle_first(self, error: ClientClosed | None = None) -> None:
        first = self._first_outcome
        if first is not None and not first.done():
            if error is None:
                first.set_result(None)
            else:
                first.set_exception(error)

    async def _finish(self, error: ClientClosed | None) -> None:
        if self._ended is not None:
            return
        self._ended = _End(error)
        self._connected.clear()
        self._stopped.set()
        self._settle_first(error or ClientClosed(None, "client closed"))
        code, reason = (error.code, error.reason) if error else (None, "")
        await self._set_state(StateChange(State.CLOSED, code, reason))
        # Wake a reader blocked on an empty inbox; a reader of a full one finds _ended when
        # it has drained it.
        self._inbox.put_nowait(self._ended)


def _parse(raw: str | bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    return cast(dict[str, Any], message) if isinstance(message, dict) else None


def _refusal_reason(exc: InvalidStatus) -> str:
    """The ``error`` of a refusal's JSON body (``{"error": "..."}``), cut short; else ""."""
    try:
        body = json.loads(exc.response.body or b"")
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return error[:200] if isinstance(error, str) else ""


async def _call(callback: Callable[[Any], object], argument: Any) -> None:
    """Call an app callback (sync or async); its failure is logged, never breaks the client."""
    try:
        result = callback(argument)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("client callback %r failed", callback)


async def _call_token_source(source: TokenSource) -> str:
    token = source()
    if inspect.isawaitable(token):
        token = await token
    if not isinstance(token, str) or not token:
        raise TypeError(f"refresh_token must return a non-empty str, got {type(token).__name__}")
    return token
