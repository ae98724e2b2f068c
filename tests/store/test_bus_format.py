"""The bus's wire format decoded without Redis: the fast paths give what the plain ones gave.

``decode_message`` reads the headers nodes write with the JSON scanner and falls back to
``json.loads`` for anything else; exclusions are usually empty; positions are spliced with a
remembered prefix per channel. Epochs are made in batches (``new_epoch``).
"""

from __future__ import annotations

import json
import os
import re

import pytest

from netrun_ws.history import new_epoch, splice_position
from netrun_ws.redis import broker
from netrun_ws.redis.broker import decode_message, encode_envelope, encode_header_prefix
from netrun_ws.store import Envelope, Position

PAYLOAD = '{"type":"direct","text":"hi"}'


def positioned(target: str, offset: int, epoch: str = "e" * 12) -> bytes:
    """What the history script publishes for a user message to ``target``."""
    header = encode_header_prefix("node-a", Envelope("user", target, PAYLOAD))
    return header + f',{offset},"{epoch}"]\n'.encode() + PAYLOAD.encode()


def test_a_header_with_spaces_is_still_read_as_json_reads_it() -> None:
    spaced = b'[1, "node-a", "user", "bob", 0, ["x"], []]\npayload'
    message = decode_message(spaced)
    assert message.envelope == Envelope("user", "bob", "payload", frozenset({"x"}))
    assert decode_message(b'[1,"node-a","user","bob",0,[],[]] \npayload') == message.__class__(
        "node-a", Envelope("user", "bob", "payload")
    )


@pytest.mark.parametrize(
    "header", [b'[1,"n","user","bob",0,[],[]]x', b"\xff[1]", b"[1,", b'[1,"n"] [2]']
)
def test_a_header_that_is_not_one_json_value_is_malformed(header: bytes) -> None:
    with pytest.raises(ValueError, match="the header is not JSON"):
        decode_message(header + b"\npayload")


def test_exclusions_cross_the_bus_empty_or_not() -> None:
    for users, connections in ((frozenset(), frozenset()), (frozenset({"u1", "u2"}), {"c"})):
        envelope = Envelope("broadcast", None, "hi", users, frozenset(connections))
        decoded = decode_message(encode_envelope("node-a", envelope)).envelope
        assert decoded == envelope
    with pytest.raises(ValueError, match="exclusion list"):
        decode_message(b'[1,"n","broadcast",null,0,[1],[]]\nhi')


def test_positions_are_spliced_alike_for_more_channels_than_are_remembered() -> None:
    channels = broker._MAX_POSITION_PREFIXES + 10  # the remembered prefixes are dropped once
    for round_ in range(2):
        for index in range(channels):
            target = f"bob-{index}" if index % 2 else f'b"\\é{index}'
            envelope = decode_message(positioned(target, round_ + 1)).envelope
            assert envelope is not None and envelope.pos == Position(round_ + 1, "e" * 12)
            expected = splice_position(PAYLOAD, f"user:{target}", round_ + 1, "e" * 12)
            assert envelope.payload == expected
            assert json.loads(envelope.payload)["pos"]["channel"] == f"user:{target}"
    assert len(broker._POSITION_PREFIXES) <= broker._MAX_POSITION_PREFIXES


def test_epochs_are_distinct_and_of_the_token_urlsafe_form() -> None:
    epochs = [new_epoch() for _ in range(1000)]  # several batches
    assert len(set(epochs)) == len(epochs)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{12}", epoch) for epoch in epochs)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_makes_epochs_of_its_own() -> None:
    new_epoch()  # a batch is made and partly left in the parent
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(writer, "".join(new_epoch() for _ in range(3)).encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    in_child = os.read(reader, 100).decode()
    os.close(reader)
    in_parent = "".join(new_epoch() for _ in range(3))
    assert in_child != in_parent


@pytest.mark.parametrize(
    "target", [None, "bob", 'qu"ote\\back', "é ☃ 𝄞", "\x00\x1f\x7f", "\ud800", "", "a,b]c"]
)
@pytest.mark.parametrize("payload", ["text", b"bytes"])
def test_a_header_without_exclusions_is_what_the_json_encoder_writes(
    target: str | None, payload: str | bytes
) -> None:
    for kind in ("user", "room", "broadcast"):
        envelope = Envelope(kind, target, payload)
        expected = json.dumps(
            [1, 'nöde-"a"', kind, target, int(isinstance(payload, bytes)), [], []],
            separators=(",", ":"),
        )
        assert encode_header_prefix('nöde-"a"', envelope) == expected[:-1].encode("ascii")
        decoded = decode_message(encode_envelope('nöde-"a"', envelope))
        assert decoded.origin == 'nöde-"a"' and decoded.envelope == envelope


def test_headers_are_alike_for_more_targets_than_are_remembered() -> None:
    targets = broker._MAX_HEADER_PREFIXES + 10  # the remembered headers are dropped once
    for _ in range(2):  # made, then remembered (or made again once dropped)
        for index in range(targets):
            for payload in ("text", b"bytes"):
                envelope = Envelope("user", f"u{index}", payload)
                binary = int(isinstance(payload, bytes))
                expected = json.dumps(
                    [1, "node-a", "user", f"u{index}", binary, [], []], separators=(",", ":")
                )
                assert encode_header_prefix("node-a", envelope) == expected[:-1].encode()
    assert len(broker._HEADER_PREFIXES) <= broker._MAX_HEADER_PREFIXES
