"""A cross-node publish workload for counting instructions (``valgrind --tool=callgrind``).

Two ``RedisStore``s (node A and node B) in one process on a private ``redis-server`` (started
here, not counted: valgrind does not follow it). ``--senders`` tasks on A each publish user
messages to a user on B one after the other, awaiting each ``publish`` as the message loop awaits
a ``send_to_user`` (history on, as by default: one script call per message that assigns the
offset and PUBLISHes). The run ends when B has delivered them all. So the count holds A's
publish, A's own copy from the bus and B's delivery, and no WebSocket work::

    for n in 0 1000; do
        valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \\
            python -m bench.publish_instructions --messages $n
    done
    # instructions per message = (total(1000) - total(0)) / 1000
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.crossnode import private_redis
from netrun_ws.redis.store import RedisStore
from netrun_ws.store import DeliveryGap, Envelope

PAYLOAD = '{"type":"direct","from":"alice","text":"1234567890123456789"}'


async def workload(url: str, messages: int, senders: int) -> float:
    """Publish ``messages`` from A to users on B; seconds taken (after a warm-up)."""
    delivered = 0
    done = asyncio.Event()

    async def on_a(envelope: Envelope) -> int:
        return 0  # the users are on B

    async def on_b(envelope: Envelope) -> int:
        nonlocal delivered
        delivered += 1
        if delivered >= messages:
            done.set()
        return 1

    async def on_gap(gap: DeliveryGap) -> None:
        return None

    node_a, node_b = RedisStore(url), RedisStore(url)
    await node_a.start(on_a, on_gap)
    await node_b.start(on_b, on_gap)
    try:
        for _ in range(20):  # scripts loaded, connections open
            await node_a.publish(Envelope("user", "warm-up", PAYLOAD))
        await asyncio.sleep(0.2)
        delivered = 0

        async def sender(index: int) -> None:
            for _ in range(messages // senders):
                await node_a.publish(Envelope("user", f"bob-{index}", PAYLOAD))

        started = time.perf_counter()
        if messages:
            await asyncio.gather(*(sender(index) for index in range(senders)))
            await asyncio.wait_for(done.wait(), 60)
        return time.perf_counter() - started
    finally:
        await node_a.stop()
        await node_b.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="a multiple of --senders")
    parser.add_argument("--senders", type=int, default=10)
    args = parser.parse_args()
    with private_redis() as url:
        seconds = asyncio.run(workload(url, args.messages, args.senders))
    print(f"{args.messages} messages in {seconds:.3f}s")


if __name__ == "__main__":
    main()
