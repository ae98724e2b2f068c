"""FrameScanner (netrun_ws.transport.frames), which finds where RFC 6455 frames begin in a byte
stream for the frame budget of uvicorn's protocols. Pure logic on bytes: every way a read can cut
the stream, every header size, and the cut at the budget's end."""

from __future__ import annotations

import itertools

import pytest

from netrun_ws.transport.frames import FrameScanner
from tests.support.raw_ws import Opcode, encode_frame

#: Frames of every header size: 2 (unmasked, short), 6 (masked, short), 8 (16-bit length,
#: masked), 4 (16-bit, unmasked), 14 (64-bit, masked), 10 (64-bit, unmasked); control frames,
#: empty ones, fragments, reserved bits.
FRAMES = [
    encode_frame(Opcode.PING, b""),
    encode_frame(Opcode.TEXT, b"hello", mask=False),
    encode_frame(Opcode.TEXT, b"x" * 125),
    encode_frame(Opcode.BINARY, b"y" * 126),
    encode_frame(Opcode.BINARY, b"z" * 300, mask=False),
    encode_frame(Opcode.CONTINUATION, b"", fin=False),
    encode_frame(Opcode.BINARY, b"w" * 70_000),
    encode_frame(Opcode.TEXT, b"v" * 65_536, mask=False, rsv=4),
    encode_frame(Opcode.PONG, b"p" * 125),
    encode_frame(Opcode.CLOSE, b"\x03\xe8bye"),
]
STREAM = b"".join(FRAMES)
STARTS = list(itertools.accumulate((len(frame) for frame in FRAMES[:-1]), initial=0))


def scan_all(chunks: list[bytes]) -> int:
    """Feed ``chunks`` with no budget to cut them: the frames counted."""
    scanner = FrameScanner()
    total = 0
    for chunk in chunks:
        cut, frames = scanner.scan(chunk, 1 << 30)
        assert cut == len(chunk)
        total += frames
    return total


def test_counts_every_frame_in_one_read() -> None:
    assert FrameScanner().scan(STREAM, 1 << 30) == (len(STREAM), len(FRAMES))


def test_counts_every_frame_whatever_byte_the_reads_are_cut_at() -> None:
    # Cut into two reads at every byte: a header cut anywhere in its 2 to 14 bytes, and a
    # payload cut anywhere, including at its last byte.
    small = b"".join(FRAMES[:6]) + FRAMES[8] + FRAMES[9]
    count = len(FRAMES) - 2
    for at in range(len(small) + 1):
        assert scan_all([small[:at], small[at:]]) == count, at


def test_a_header_cut_over_many_reads_counts_once() -> None:
    # One byte per read: 64-bit lengths, masked, and long payloads.
    for frame in (FRAMES[6], FRAMES[7], encode_frame(Opcode.PING, b"")):
        stream = frame * 3
        assert scan_all([stream[i : i + 1] for i in range(len(stream))]) == 3


def test_reads_of_every_size_see_the_same_frames() -> None:
    for size in (1, 2, 3, 5, 7, 13, 14, 15, 1000, 65_537):
        chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
        assert scan_all(chunks) == len(FRAMES), size


def test_a_64_bit_length_is_read_whole() -> None:
    # A declared length past 2**32: the scanner skips that many bytes, whatever arrives.
    header = encode_frame(Opcode.BINARY, b"", length=(1 << 40) + 5)
    scanner = FrameScanner()
    assert scanner.scan(header + b"a" * 1000 + encode_frame(Opcode.PING, b""), 10) == (
        len(header) + 1000 + 6,
        1,
    )


@pytest.mark.parametrize("budget", range(len(FRAMES)))
def test_the_cut_is_where_the_frame_past_the_budget_begins(budget: int) -> None:
    scanner = FrameScanner()
    cut, frames = scanner.scan(STREAM, budget)
    assert (cut, frames) == (STARTS[budget], budget)
    # The rest, fed from the cut, holds exactly the frames not yet counted.
    assert scanner.scan(STREAM[cut:], 1 << 30) == (len(STREAM) - cut, len(FRAMES) - budget)


def test_a_payload_cut_by_the_read_goes_on_even_with_no_budget_left() -> None:
    # The frame was counted when it began: the rest of its payload is not held back.
    frame = FRAMES[6]
    scanner = FrameScanner()
    assert scanner.scan(frame[:100], 1) == (100, 1)
    rest = frame[100:] + FRAMES[0]
    assert scanner.scan(rest, 0) == (len(frame) - 100, 0)
    assert scanner.scan(FRAMES[0], 1) == (len(FRAMES[0]), 1)


def test_a_header_cut_by_the_read_is_counted_when_it_begins() -> None:
    frame = FRAMES[6]  # 8-byte header
    scanner = FrameScanner()
    assert scanner.scan(frame[:3], 1) == (3, 1)
    assert scanner.scan(frame[3:], 0) == (len(frame) - 3, 0)


def test_empty_fragments_and_pings_count_one_each() -> None:
    flood = (
        encode_frame(Opcode.CONTINUATION, b"", fin=False) + encode_frame(Opcode.PING, b"")
    ) * 500
    assert FrameScanner().scan(flood, 1 << 30) == (len(flood), 1000)
    assert FrameScanner().scan(flood, 7) == (7 * 6, 7)
