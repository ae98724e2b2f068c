"""Pure encoding logic on the per-message path: frame headers and model encoding must give exactly
what the libraries they shortcut (websockets' Frame.serialize, pydantic's model_dump_json) give."""

from __future__ import annotations

import datetime
import uuid

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_serializer
from websockets.frames import Frame, Opcode

from netrun_ws.wire import encode_message, wire_frame


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000])
def test_wire_frames_are_what_websockets_serialises(length: int) -> None:
    text = "é" * (length // 2) + "a" * (length % 2)  # multi-byte text: length is in bytes
    assert wire_frame(text) == Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
    data = bytes(range(256)) * (length // 256) + bytes(length % 256)
    assert wire_frame(data) == Frame(Opcode.BINARY, data).serialize(mask=False)


class Nested(BaseModel):
    at: datetime.datetime
    ident: uuid.UUID


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type: str = "aliased"
    user_name: str = Field(alias="userName")
    nested: Nested
    ratio: float = 0.5
    missing: int | None = None


class SerializeByAlias(Aliased):
    model_config = ConfigDict(serialize_by_alias=True)


class CustomSerializer(Aliased):
    @field_serializer("user_name")
    def _shout(self, value: str) -> str:
        return value.upper()


class OverridesDump(Aliased):
    def model_dump_json(self, **kwargs: object) -> str:
        return '{"overridden": true}'


@pytest.mark.parametrize("model", [Aliased, SerializeByAlias, CustomSerializer, OverridesDump])
def test_models_encode_exactly_as_model_dump_json(model: type[Aliased]) -> None:
    nested = Nested(at=datetime.datetime(2026, 1, 2, 3, 4, 5), ident=uuid.UUID(int=7))
    message = model(user_name="ada é", nested=nested)
    assert encode_message(message) == message.model_dump_json()
    assert encode_message(message, binary=True) == message.model_dump_json().encode()


def test_uuid4_hex_is_a_version_4_uuid() -> None:
    import uuid

    from netrun_ws.connection import uuid4_hex

    values = {uuid4_hex() for _ in range(1000)}
    assert len(values) == 1000
    for value in values:
        parsed = uuid.UUID(hex=value)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert parsed.hex == value
