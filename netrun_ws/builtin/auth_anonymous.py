"""auth: anonymous - everyone may connect (for local development).

The user id comes from the ``user_id`` query parameter when given, else a fresh ``anon-...`` id.
Never use it where identities matter: anyone can claim any user id.
"""

from __future__ import annotations

import re
import uuid

from pydantic import BaseModel, ConfigDict, Field
from starlette.websockets import WebSocket

from netrun_ws import hookimpl
from netrun_ws.identity import AuthenticationError, Identity

_USER_ID = re.compile(r"^[A-Za-z0-9_.@:-]{1,128}$")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    user_id_param: str | None = Field(
        "user_id", description="Query parameter a client may use to pick its user id (null: never)."
    )


class Plugin:
    def __init__(self) -> None:
        self.options = Options()

    @hookimpl
    def configure(self, options: Options) -> None:
        self.options = options

    @hookimpl(trylast=True)
    def authenticate(self, request: WebSocket) -> Identity:
        param = self.options.user_id_param
        requested = request.query_params.get(param) if param else None
        if requested is None:
            return Identity(user_id=f"anon-{uuid.uuid4().hex[:12]}")
        if not _USER_ID.match(requested):
            raise AuthenticationError("invalid user_id")
        return Identity(user_id=requested, username=requested)
