"""An ``on_message`` without annotations: a catch-all, answering every ``say`` too."""

from netrun_ws import hookimpl


@hookimpl
def on_message(host, message):  # type: ignore[no-untyped-def]
    host.state.setdefault("seen", []).append(("untyped", message.type))
    if message.type == "say":
        return {"type": "said", "by": "untyped_plugin"}
    return None
