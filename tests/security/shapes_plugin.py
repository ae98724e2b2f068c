"""A test app plugin with a message whose field names and tags come from the client: dict keys,
nested dicts and a nested tagged union, so that every way pydantic can name input in an error
(``loc``, ``msg``, ``ctx``) can be tried against the server's error replies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from netrun_ws import hookimpl


class Circle(BaseModel):
    kind: Literal["circle"]
    radius: float


class Square(BaseModel):
    kind: Literal["square"]
    side: float


class Shapes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["shapes"]
    counts: dict[str, int] = {}
    tree: dict[str, dict[str, dict[str, dict[str, dict[str, list[int]]]]]] = {}
    shape: Annotated[Circle | Square, Field(discriminator="kind")] | None = None
    label: str = Field("", pattern=r"^[a-z]{1,10}$")


@hookimpl
def register_message_types() -> list[type[BaseModel]]:
    return [Shapes]


@hookimpl
def on_message(message: BaseModel) -> dict[str, str] | None:
    return {"type": "shaped"} if isinstance(message, Shapes) else None
