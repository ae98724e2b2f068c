"""A test app plugin whose replies carry whatever float the client names, so that a reply with
no strict JSON form can be asked for: ``{"type": "measure", "value": "nan"}`` is answered
``{"type": "measured", "value": nan}`` (as a dict, or as a model with ``"as": "model"``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from netrun_ws import hookimpl


class Measure(BaseModel):
    type: Literal["measure"]
    value: str  # float() of it: "1.5", "nan", "inf", "-inf", "1e400"
    nested: bool = False
    as_model: bool = False


class Measured(BaseModel):
    # pydantic writes a model's NaN as null by default; this model asks for the constants.
    model_config = ConfigDict(ser_json_inf_nan="constants")

    type: Literal["measured"] = "measured"
    value: Any


class Plugin:
    @hookimpl
    def register_message_types(self) -> list[type[BaseModel]]:
        return [Measure]

    @hookimpl
    def on_message(self, message: BaseModel) -> Any:
        if not isinstance(message, Measure):
            return None
        value: Any = float(message.value)
        if message.nested:
            value = {"deep": [1, {"x": value}], "label": "NaN and Infinity as text are fine"}
        return Measured(value=value) if message.as_model else {"type": "measured", "value": value}
