"""The picows load generator: ``python bench/loadgen.py MODE --url ... [options]``.

MODE ``echo`` keeps ``--inflight`` messages in flight on each of ``--conns`` connections and
reports messages/s and round-trip latency; its messages are pre-built masked frames written once
per event-loop turn per connection (:class:`TurnWriter`), so the client spends less per message
than the servers it drives. MODE ``fanout`` connects one publisher and receivers,
keeps a window of broadcasts in flight and reports deliveries/s and delivery latency per phase.
MODE ``latency`` sends chat ``direct`` messages (``host.send_to_user``) at a fixed total rate from
``--conns`` senders on ``--url`` to as many receivers on ``--receiver-urls`` and reports the send to
receipt latency (bench/crossnode.py runs it across two nodes). ``--receiver-urls`` also spreads the
receivers of MODE ``fanout`` round-robin over several nodes (the publisher stays on ``--url``).
MODE ``fixed`` offers every server the same echo or fan-out load (``--fixed-rate``) and reports
the server's CPU time per message. MODE ``connect`` opens ``--conns`` connections with
``--inflight`` handshakes in flight, reports the rate, and keeps them open until told (stdin) so
the caller can measure the server's memory; it uses the lean handshake client of
``bench/handshakes.py``, not picows (see there why).
Results are JSON lines on stdout. Frame handling is synchronous (picows callbacks), so one core
drives 100k+ messages/s. ``--proto`` says how a connection becomes ready: ``plain`` (the 101),
``netrun`` (JWT in the Authorization header; ready at the welcome message) or ``socketio``
(engine.io open, namespace connect).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench import handshakes  # run with the repository on PYTHONPATH, as run.py does

_STAMP = re.compile(rb'"seq": ?(\d+), ?"t": ?(\d+)')
_PUBLISH_STAMP = re.compile(rb'\{"type":"publish","seq":(\d+),"t":(\d+)')
_TEXT_STAMP = re.compile(rb'"text": ?"(\d+)"')
_DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
now_ns = time.monotonic_ns


def emit(record: dict[str, Any]) -> None:
    if record.get("event") in ("result", "connected"):
        record["failed_connects"] = len(FAILED_CONNECTS)
        record["first_failure"] = FAILED_CONNECTS[0] if FAILED_CONNECTS else None
    print(json.dumps(record), flush=True)


@dataclass
class Options:
    url: str
    proto: str
    payload: str
    offer_deflate: bool
    tokens: list[str] = field(default_factory=list)
    #: Where receivers connect, round-robin by index (empty: ``url``).
    receiver_urls: list[str] = field(default_factory=list)

    def receiver_url(self, index: int) -> str:
        urls = self.receiver_urls or [self.url]
        return urls[index % len(urls)]


class ServerCPU:
    """The server process's user + system CPU seconds (``--server-pid``; 0: not measured), read
    at a window's ends, so a result can say what one message or delivery cost the server even
    when the load generator, not the server, set the rate."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid) if pid else None

    def seconds(self) -> float:
        if self.process is None:
            return float("nan")
        times = self.process.cpu_times()
        return float(times.user + times.system)


def percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index] / 1000.0  # ns -> us


def make_tokens(count: int) -> list[str]:
    from bench.servers import JWT_SECRET
    from netrun_ws.auth import JWTAuthService

    service = JWTAuthService(JWT_SECRET, token_expiry_seconds=3600)
    return [service.generate_token(f"bench-{index}") for index in range(count)]


class Client(WSListener):
    """One connection; ``on_text`` is swapped per mode (echo, receiver, publisher)."""

    def __init__(self, proto: str) -> None:
        self.proto = proto
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.on_text: Callable[[Client, bytes], None] = lambda client, data: None
        self.counted = True
        self.closed_by_server = False
        self.frames = 0
        #: Ready, and no protocol messages to answer (not socket.io): text goes to ``on_text``
        #: straight away, the per-delivery path of the fan-out's thousands of receivers.
        self.text_only = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.proto == "plain":
            self.ready.set_result(None)
            self.text_only = True

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed_by_server = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("disconnected before ready"))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.text_only and frame.msg_type == WSMsgType.TEXT:
            self.frames += 1
            self.on_text(self, frame.get_payload_as_bytes())
            return
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        self.frames += 1
        data = frame.get_payload_as_bytes()
        if self.proto == "socketio":
            if data == b"2":  # engine.io ping
                transport.send(WSMsgType.TEXT, b"3")
                return
            if not self.ready.done():
                if data.startswith(b"0"):
                    transport.send(WSMsgType.TEXT, b"40")
                elif data.startswith(b"40"):
                    self.ready.set_result(None)
                return
        elif not self.ready.done():  # netrun: the welcome message (possibly compressed)
            self.ready.set_result(None)
            self.text_only = True
            return
        self.on_text(self, data)

    def send(self, text: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, text)


def _small_rcvbuf_socket(parsed_url: Any) -> socket.socket:
    """A socket with a 4 KB receive buffer: a stalled reader's backlog reaches the server soon."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    return sock


async def open_client(
    options: Options, index: int, *, small_rcvbuf: bool = False, url: str | None = None
) -> Client:
    headers: dict[str, str] = {}
    if options.proto == "netrun":
        headers["Authorization"] = f"Bearer {options.tokens[index]}"
    if options.offer_deflate:
        headers["Sec-WebSocket-Extensions"] = _DEFLATE_OFFER
    kwargs: dict[str, Any] = {}
    if small_rcvbuf:
        kwargs["socket_factory"] = _small_rcvbuf_socket
    _, client = await ws_connect(
        lambda: Client(options.proto),
        url or options.url,
        extra_headers=headers,
        websocket_handshake_timeout=60,
        max_frame_size=1 << 20,
        **kwargs,
    )
    assert isinstance(client, Client)
    await asyncio.wait_for(client.ready, 60)
    return client


#: Handshakes refused or failed so far (reported with each result instead of aborting the run).
FAILED_CONNECTS: list[str] = []


async def open_many(
    options: Options, indices: range, inflight: int, *, receivers: bool = False
) -> list[Client]:
    """Open ``indices``' connections; ``receivers`` ones go to ``options.receiver_url``."""
    semaphore = asyncio.Semaphore(inflight)

    async def one(index: int) -> Client | None:
        url = options.receiver_url(index) if receivers else None
        async with semaphore:
            try:
                return await open_client(options, index, url=url)
            except Exception as exc:  # a refused handshake is a result, not a crash
                FAILED_CONNECTS.append(f"{type(exc).__name__}: {exc}"[:200])
                return None

    opened = await asyncio.gather(*(one(index) for index in indices))
    return [client for client in opened if client is not None]


def message(kind: str, seq: int, payload: str, proto: str, stamp: int | None = None) -> bytes:
    """An app message; ``stamp`` (default: now, in ns) is its ``t``."""
    t = now_ns() if stamp is None else stamp
    body = f'{{"type":"{kind}","seq":{seq},"t":{t},"payload":"{payload}"}}'
    if proto == "socketio":
        body = f'42["{kind}",{body}]'
    return body.encode()


# ------------------------------------------------------------------------------------- echo


#: The client's mask key for the echo's pre-built frames: fixed, as any key is valid (RFC 6455
#: section 5.3) and every server unmasks every byte whatever the key is.
_MASK_KEY = bytes.fromhex("5a3c9e71")
#: One echo in this many carries its send time (latency is sampled); the others carry ``"t":0``.
STAMP_EVERY = 16
#: Distinct unstamped messages cycled through (their ``seq`` differs).
RING = 256
_UNSTAMPED = (b'"t":0,', b'"t": 0,')  # compact JSON (netrun-ws, Node) or json.dumps' spacing


def masked_text_frame(payload: bytes) -> bytes:
    """A client's final text frame of ``payload``, masked with :data:`_MASK_KEY`."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, 0x80 | size))
    elif size < 1 << 16:
        header = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    key = (_MASK_KEY * (size // 4 + 1))[:size]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
    return header + _MASK_KEY + masked.to_bytes(size, "big")


class TurnWriter:
    """Frames queued during one event-loop turn, written with one ``write`` per connection when
    the turn's callbacks are done: a reply's next message no longer costs a ``send`` system call
    each, so one load-generator core drives more messages than the servers it measures."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.pending: dict[Client, list[bytes]] = {}

    def add(self, client: Client, frame: bytes) -> None:
        frames = self.pending.get(client)
        if frames is not None:
            frames.append(frame)
            return
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending[client] = [frame]

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        for client, frames in pending.items():
            transport = client.transport
            if transport is not None and not transport.is_disconnected:
                transport.underlying_transport.write(b"".join(frames))


async def run_echo(options: Options, args: argparse.Namespace) -> None:
    """Each reply sends the connection's next message. Messages are pre-built, masked frames
    (one in :data:`STAMP_EVERY` built when sent, with its send time, for the latency), written
    once per event-loop turn per connection by a :class:`TurnWriter`."""
    options.tokens = make_tokens(args.conns)
    clients = await open_many(options, range(args.conns), 200)
    state = {"count": 0, "recording": False, "seq": 0}
    latencies: list[int] = []
    proto, payload = options.proto, options.payload
    ring = [masked_text_frame(message("echo", seq, payload, proto, stamp=0)) for seq in range(RING)]
    writer = TurnWriter()

    def next_frame() -> bytes:
        seq = state["seq"] = state["seq"] + 1
        if seq % STAMP_EVERY:
            return ring[seq % RING]
        return masked_text_frame(message("echo", seq, payload, proto))

    def on_reply(client: Client, data: bytes) -> None:
        if _UNSTAMPED[0] not in data and _UNSTAMPED[1] not in data:
            match = _STAMP.search(data)
            if match is None:
                return  # a server ping or other message: not an echo
            if state["recording"]:
                latencies.append(now_ns() - int(match.group(2)))
        state["count"] += 1
        writer.add(client, next_frame())

    for client in clients:
        client.on_text = on_reply
        for _ in range(args.inflight):
            writer.add(client, next_frame())
    await asyncio.sleep(args.warmup)
    state["recording"] = True
    server_cpu = ServerCPU(args.server_pid)
    start_count, start = state["count"], time.perf_counter()
    cpu_start, server_start = time.process_time(), server_cpu.seconds()
    await asyncio.sleep(args.duration)
    elapsed = time.perf_counter() - start
    count = state["count"] - start_count
    cpu = time.process_time() - cpu_start
    server_used = server_cpu.seconds() - server_start
    state["recording"] = False
    latencies.sort()
    emit(
        {
            "event": "result",
            "msgs_per_s": count / elapsed,
            "p50_us": percentile(latencies, 0.50),
            "p99_us": percentile(latencies, 0.99),
            "loadgen_cpu": cpu / elapsed,
            "server_cpu": server_used / elapsed,
            "server_cpu_us_per_msg": server_used / count * 1e6 if count else float("nan"),
            "messages": count,
        }
    )


# ----------------------------------------------------------------------------------- fan-out


class FanOut:
    """A publisher keeping ``window`` broadcasts in flight; a broadcast completes when every
    counted receiver got it (or after ``expire_s``, its missing deliveries counted as lost)."""

    def __init__(self, publisher: Client, options: Options, expire_s: float = 2.0) -> None:
        self.publisher = publisher
        self.options = options
        self.expire_ns = int(expire_s * 1e9)
        self.receivers: list[Client] = []
        self.window = 2
        self.seq = 0
        self.outstanding: dict[int, list[int]] = {}  # seq -> [remaining, sent_ns]
        self.deliveries = 0
        self.lost = 0
        self.recording = False
        self.latencies: list[int] = []
        self.running = False
        self.expected = 0

    def count_expected(self) -> None:
        """How many receivers a broadcast must reach: counted once per phase and at each
        watchdog tick (a receiver the server closed is not waited for after that)."""
        self.expected = sum(1 for r in self.receivers if r.counted and not r.closed_by_server)

    def publish(self) -> None:
        self.seq += 1
        self.outstanding[self.seq] = [self.expected, now_ns()]
        self.publisher.send(message("publish", self.seq, self.options.payload, self.options.proto))

    def refill(self) -> None:
        while self.running and len(self.outstanding) < self.window:
            self.publish()

    def on_delivery(self, client: Client, data: bytes) -> None:
        if not client.counted:
            return
        # Anchored at the start for the compact JSON most servers send; else searched.
        match = _PUBLISH_STAMP.match(data) or _STAMP.search(data)
        if match is None:
            return
        self.deliveries += 1
        seq, sent = match.groups()
        if self.recording:
            self.latencies.append(now_ns() - int(sent))
        outstanding = self.outstanding
        entry = outstanding.get(int(seq))
        if entry is not None:
            entry[0] -= 1
            if entry[0] <= 0:
                del outstanding[int(seq)]
                self.refill()

    async def watchdog(self) -> None:
        while self.running:
            await asyncio.sleep(0.1)
            self.count_expected()
            limit = now_ns() - self.expire_ns
            for seq, (remaining, sent) in list(self.outstanding.items()):
                if sent < limit:
                    self.lost += remaining
                    del self.outstanding[seq]
            self.refill()


async def run_fanout(options: Options, args: argparse.Namespace) -> None:
    phases: list[str] = args.phases.split(",")
    largest = max(int(p.rstrip("s")) for p in phases)
    options.tokens = make_tokens(largest + 2)
    publisher = await open_client(options, 0)
    fan = FanOut(publisher, options)
    server_cpu = ServerCPU(args.server_pid)
    next_index = 1
    for phase in phases:
        stalled = phase.endswith("s")
        target = int(phase.rstrip("s"))
        counted = [r for r in fan.receivers if r.counted and not r.closed_by_server]
        need = target - len(counted)
        connect_start = time.perf_counter()
        if need > 0:
            indices = range(next_index, next_index + need)
            new = await open_many(options, indices, 200, receivers=True)
            next_index += need
            for client in new:
                client.on_text = fan.on_delivery
            fan.receivers.extend(new)
        connect_s = time.perf_counter() - connect_start
        stall: Client | None = None
        if stalled:
            stall = await open_client(options, largest + 1, small_rcvbuf=True)
            stall.counted = False
            fan.receivers.append(stall)
            assert stall.transport is not None
            stall.transport.underlying_transport.pause_reading()
        fan.window = max(2, args.inflight_deliveries // target)
        fan.count_expected()
        fan.running = True
        small_payload = options.payload
        if stalled:  # big frames first, so the stalled reader's buffers are full when measuring
            options.payload = "x" * args.prefill_payload_bytes
        fan.refill()
        watchdog = asyncio.create_task(fan.watchdog())
        await asyncio.sleep(args.prefill if stalled else args.warmup)
        options.payload = small_payload
        await asyncio.sleep(args.warmup if stalled else 0)
        fan.latencies = []
        fan.recording = True
        start_deliveries, start_lost, start = fan.deliveries, fan.lost, time.perf_counter()
        server_start, cpu_start = server_cpu.seconds(), time.process_time()
        await asyncio.sleep(args.duration)
        elapsed = time.perf_counter() - start
        server_used = server_cpu.seconds() - server_start
        loadgen_cpu = (time.process_time() - cpu_start) / elapsed
        delivered = fan.deliveries - start_deliveries
        fan.recording = False
        fan.running = False
        await watchdog
        if stall is not None and stall.transport is not None:
            # Paused, it cannot see a close: read the backlog to learn whether the server cut it.
            stall.transport.underlying_transport.resume_reading()
            await asyncio.sleep(1.5)
        fan.latencies.sort()
        emit(
            {
                "event": "result",
                "phase": phase,
                "receivers": target,
                "stalled": stalled,
                "window": fan.window,
                "deliveries_per_s": delivered / elapsed,
                "server_cpu": server_used / elapsed,
                "loadgen_cpu": loadgen_cpu,
                "server_cpu_us_per_delivery": (
                    server_used / delivered * 1e6 if delivered else float("nan")
                ),
                # The window on the machine's monotonic clock (time.perf_counter), so that a
                # server's CPU time in it can be read (CPU time per delivery).
                "window_start": start,
                "window_end": start + elapsed,
                "p50_us": percentile(fan.latencies, 0.50),
                "p99_us": percentile(fan.latencies, 0.99),
                "lost": fan.lost - start_lost,
                "connect_s": connect_s,
                "stalled_closed_by_server": stall.closed_by_server if stall else None,
                "stalled_frames_read": stall.frames if stall else None,
                "receivers_closed_by_server": sum(
                    1 for r in fan.receivers if r.counted and r.closed_by_server
                ),
            }
        )
        # Let in-flight broadcasts land before the next phase; drop the stalled receiver.
        await asyncio.sleep(0.5)
        fan.outstanding.clear()
        if stall is not None:
            fan.receivers.remove(stall)
            if stall.transport is not None:
                stall.transport.disconnect(graceful=False)


# ---------------------------------------------------------------------------- fixed load


async def paced(rate: float, seconds: float, send: Callable[[int], None]) -> int:
    """Call ``send(i)`` ``rate`` times a second for ``seconds`` (at each 1 ms libuv tick, the
    sends due by then); returns how many were made."""
    start, sent = time.perf_counter(), 0
    while (now := time.perf_counter()) < start + seconds:
        due = int((now - start) * rate)
        while sent < due:
            send(sent)
            sent += 1
        await asyncio.sleep(0.001)
    return sent


async def run_fixed(options: Options, args: argparse.Namespace) -> None:
    """The same offered load for every server: ``--fixed-rate`` echo messages/s over ``--conns``
    connections (``--receivers 0``), or broadcasts to ``--receivers`` at ``--fixed-rate``
    deliveries/s in all. Reports the server's CPU time per message or delivery over the window:
    which server does the same work with less CPU, when the load generator cannot drive the
    fastest ones to their limit."""
    receivers = args.receivers
    count = receivers + 1 if receivers else args.conns
    options.tokens = make_tokens(count)
    clients = await open_many(options, range(count), 200)
    got = {"n": 0}

    def on_text(client: Client, data: bytes) -> None:
        if _STAMP.search(data) is not None:
            got["n"] += 1

    for client in clients:
        client.on_text = on_text
    if receivers:
        publisher, clients = clients[0], clients[1:]
        publisher.on_text = lambda client, data: None
        per_send = len(clients)

        def send(index: int) -> None:
            publisher.send(message("publish", index, options.payload, options.proto))
    else:
        per_send = 1

        def send(index: int) -> None:
            echoing = clients[index % len(clients)]
            echoing.send(message("echo", index, options.payload, options.proto))

    rate = args.fixed_rate / per_send
    server_cpu = ServerCPU(args.server_pid)
    warm = await paced(rate, args.warmup, send)
    first, cpu0, start = got["n"], server_cpu.seconds(), time.perf_counter()
    sent = warm + await paced(rate, args.duration, lambda index: send(warm + index))
    elapsed = time.perf_counter() - start
    done, server_used = got["n"] - first, server_cpu.seconds() - cpu0
    await asyncio.sleep(1.0)  # stragglers: did the server keep up with the offered load?
    expected = sent * per_send
    emit(
        {
            "event": "result",
            "offered_per_s": args.fixed_rate,
            "done_per_s": done / elapsed,
            "connections": len(clients),
            "missing": expected - got["n"],
            "server_cpu": server_used / elapsed,
            "server_cpu_us": server_used / done * 1e6 if done else float("nan"),
        }
    )


# ----------------------------------------------------------------------------------- latency


def direct(to: str) -> bytes:
    """The chat plugin's direct message, stamped with its send time (ns) as its text."""
    return f'{{"type":"direct","to":"{to}","text":"{now_ns()}"}}'.encode()


async def run_latency(options: Options, args: argparse.Namespace) -> None:
    """``--rate`` direct messages/s in total, sender i to receiver i; the latency of those sent
    after the warm-up. libuv timers tick in milliseconds, so the sends due are made at each tick
    (at 5,000 msg/s about 5 per tick, spread over the senders)."""
    options.tokens = make_tokens(2 * args.conns)
    tag = f"{os.getpid()}-{now_ns()}"
    names = [f"bob-{tag}-{index}" for index in range(args.conns)]
    receivers = [
        await open_client(options, index, url=f"{options.receiver_url(index)}?user_id={name}")
        for index, name in enumerate(names)
    ]
    senders = await open_many(options, range(args.conns, 2 * args.conns), 50)
    state = {"since": 0, "received": 0}
    samples: list[int] = []

    def on_receipt(client: Client, data: bytes) -> None:
        match = _TEXT_STAMP.search(data)
        if match is not None and state["since"] and int(match.group(1)) >= state["since"]:
            samples.append(now_ns() - int(match.group(1)))

    for client in receivers:
        client.on_text = on_receipt
    start, sent, measured = time.perf_counter(), 0, 0
    end = start + args.warmup + args.duration
    while (now := time.perf_counter()) < end:
        if not state["since"] and now >= start + args.warmup:
            state["since"] = now_ns()
        due = int((now - start) * args.rate)
        while sent < due:
            slot = sent % len(senders)
            senders[slot].send(direct(names[slot]))
            sent += 1
            measured += 1 if state["since"] else 0
        await asyncio.sleep(0.001)  # libuv timers: 1 ms; less would spin (Redis shares the core)
    await asyncio.sleep(1.0)  # stragglers
    samples.sort()
    emit(
        {
            "event": "result",
            "rate": args.rate,
            "senders": len(senders),
            "sent": measured,
            "lost": measured - len(samples),
            "p50_ms": percentile(samples, 0.50) / 1000,
            "p99_ms": percentile(samples, 0.99) / 1000,
            "max_ms": samples[-1] / 1e6 if samples else float("nan"),
        }
    )


# ----------------------------------------------------------------------------------- connect


async def read_command() -> str:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return str(line).strip()


async def open_handshakes(
    options: Options, indices: range, inflight: int
) -> list[handshakes.HandshakeClient]:
    """Connect mode's connections, through the lean handshake client (bench/handshakes.py)."""
    if options.proto == "socketio":
        raise SystemExit("connect mode speaks plain WebSocket handshakes, not socket.io")
    semaphore = asyncio.Semaphore(inflight)
    prepared = []
    for index in indices:
        headers = []
        if options.proto == "netrun":
            headers.append(("Authorization", f"Bearer {options.tokens[index]}"))
        if options.offer_deflate:
            headers.append(("Sec-WebSocket-Extensions", _DEFLATE_OFFER))
        prepared.append(handshakes.upgrade_request(options.url, headers))
    greeted = options.proto == "netrun"

    async def one(request: bytes, accept: bytes, address: tuple[str, int]) -> Any:
        async with semaphore:
            try:
                return await handshakes.handshake(request, accept, address, greeted, 60)
            except Exception as exc:  # a refused handshake is a result, not a crash
                FAILED_CONNECTS.append(f"{type(exc).__name__}: {exc}"[:200])
                return None

    opened = await asyncio.gather(*(one(*request) for request in prepared))
    return [client for client in opened if client is not None]


async def run_connect(options: Options, args: argparse.Namespace) -> None:
    options.tokens = make_tokens(args.conns + args.warm_conns)
    warm = await open_handshakes(options, range(args.conns, args.conns + args.warm_conns), 20)
    for client in warm:
        client.close()
    await asyncio.sleep(1.0)
    emit({"event": "warm"})
    await read_command()
    start = time.perf_counter()
    clients = await open_handshakes(options, range(args.conns), args.inflight)
    elapsed = time.perf_counter() - start
    emit(
        {
            "event": "connected",
            "connects_per_s": len(clients) / elapsed,
            "connections": len(clients),
            "elapsed_s": elapsed,
        }
    )
    await read_command()
    alive = sum(1 for c in clients if not c.closed_by_server)
    emit({"event": "done", "alive": alive})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("echo", "fanout", "connect", "latency", "fixed"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--receiver-urls", default="", help="comma-separated; default: --url")
    parser.add_argument("--rate", type=float, default=5000.0, help="latency: messages/s in all")
    parser.add_argument("--proto", choices=("plain", "netrun", "socketio"), default="plain")
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--prefill", type=float, default=3.0, help="stalled phase: seconds before")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--prefill-payload-bytes", type=int, default=8192)
    parser.add_argument("--phases", default="100,1000,1000s,5000")
    parser.add_argument("--inflight-deliveries", type=int, default=4000)
    parser.add_argument("--warm-conns", type=int, default=20)
    parser.add_argument("--offer-deflate", action="store_true")
    parser.add_argument("--payload-bytes", type=int, default=40)
    parser.add_argument("--cpu", type=int, default=1)
    parser.add_argument("--fixed-rate", type=float, default=30000.0, help="fixed: per second")
    parser.add_argument("--receivers", type=int, default=0, help="fixed: 0 = echo")
    parser.add_argument("--server-pid", type=int, default=0, help="echo, fanout: CPU per message")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    options = Options(args.url, args.proto, "x" * args.payload_bytes, args.offer_deflate)
    options.receiver_urls = [url for url in args.receiver_urls.split(",") if url]
    runners = {
        "echo": run_echo,
        "fanout": run_fanout,
        "connect": run_connect,
        "latency": run_latency,
        "fixed": run_fixed,
    }
    import uvloop

    uvloop.run(runners[args.mode](options, args))


if __name__ == "__main__":
    main()
