"""Names a type nobody registers in ``handles(...)``: start-up must refuse it."""

from netrun_ws import handles, hookimpl


@hookimpl
@handles("nope")
def on_message() -> None:
    return None
