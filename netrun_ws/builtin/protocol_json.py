"""protocol: json - JSON text frames validated against registered pydantic message types.

``schemas`` lists modules whose ``MESSAGE_TYPES`` (a list of models, each with a ``type`` Literal)
join the protocol; ``netrun_ws.protocol`` holds the netrun-websocket message models. App plugins
add their own types through the ``register_message_types`` hook.
"""

from __future__ import annotations

import importlib

from pydantic import BaseModel, ConfigDict, Field

from netrun_ws import hookimpl


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    schemas: list[str] = Field(
        ["netrun_ws.protocol"], description="Modules whose MESSAGE_TYPES are registered."
    )


class Plugin:
    def __init__(self) -> None:
        self.options = Options()

    @hookimpl
    def configure(self, options: Options) -> None:
        self.options = options

    @hookimpl
    def register_message_types(self) -> list[type[BaseModel]]:
        models: list[type[BaseModel]] = []
        for module_path in self.options.schemas:
            module = importlib.import_module(module_path)
            found = getattr(module, "MESSAGE_TYPES", None)
            if not isinstance(found, (list, tuple)):
                raise ValueError(f"schema module {module_path!r} has no MESSAGE_TYPES list")
            models.extend(found)
        return models
