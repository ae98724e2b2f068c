"""``netrun-ws new-plugin NAME``: a plugin distribution that passes its own test out of the box.

It holds a ``pyproject.toml`` with the ``netrun_ws`` entry point (config names the plugin NAME),
the plugin module (an ``Options`` model, a message type, a ``Plugin`` class with two hooks), a
README and a test built on :mod:`netrun_ws.testing`. The files are templates below, filled by
plain replacement of ``__NAME__`` and ``__MODULE__`` (no brace escaping to get wrong).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["NAME_PATTERN", "ScaffoldError", "scaffold"]

#: A plugin name: what a config writes, and (with "-" as "_") part of the module name.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


class ScaffoldError(ValueError):
    """A name or target directory that cannot be used; ``str()`` is one line."""


_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "netrun-ws-__NAME__"
version = "0.1.0"
description = "A netrun-ws plugin."
requires-python = ">=3.11"
dependencies = ["netrun-ws"]

[project.optional-dependencies]
test = ["netrun-ws[testing]"]

# netrun-ws finds plugins in the `netrun_ws` entry point group; a config names this one
# `__NAME__`: plugins: [{plugin: __NAME__, greeting: "hi"}]
[project.entry-points.netrun_ws]
__NAME__ = "__MODULE__"

[tool.hatch.build.targets.wheel]
packages = ["src/__MODULE__"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
testpaths = ["tests"]
"""

_README = """\
# netrun-ws-__NAME__

A netrun-ws plugin: answers `{"type": "__NAME__.hello", "name": ...}`
with `{"type": "__NAME__.greeting", "text": "<greeting>, <name>"}`.

```sh
pip install -e '.[test]'
netrun-ws plugins        # lists __NAME__ [app] entry point ...
pytest                   # its tests, with netrun_ws.testing's fixtures
```

Configure it in `netrun_ws.yaml`:

```yaml
plugins:
  - {plugin: __NAME__, greeting: "hi"}
```
"""

_MODULE = '''\
"""netrun-ws-__NAME__: a netrun-ws plugin (docs: netrun-ws's docs/plugins.md, docs/hooks.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from netrun_ws import Connection, Host, hookimpl


class Options(BaseModel):
    """The plugin's config keys (validated at start-up; a mistake is one line naming the key)."""

    model_config = ConfigDict(extra="forbid")

    greeting: str = Field("hello", min_length=1, description="What the plugin greets with.")


class Hello(BaseModel):
    """A message clients send: {"type": "__NAME__.hello", "name": "..."}."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["__NAME__.hello"]
    name: str = Field(min_length=1, max_length=100)


class Plugin:
    """One instance per app; its state lives here."""

    def __init__(self) -> None:
        self.greeting = "hello"

    @hookimpl
    def configure(self, host: Host, options: Options) -> None:
        self.greeting = options.greeting

    @hookimpl
    def register_message_types(self) -> list[type[BaseModel]]:
        return [Hello]

    @hookimpl
    async def on_message(self, connection: Connection, message: Hello) -> dict[str, Any]:
        # Called only for Hello messages (the annotation routes it); the reply goes to the sender.
        return {"type": "__NAME__.greeting", "text": f"{self.greeting}, {message.name}"}
'''

_TEST = '''\
"""The plugin under a real server, through netrun_ws.testing's pytest fixtures."""

from __future__ import annotations

from typing import Any

import pytest
from netrun_ws.testing import ServedApp


@pytest.fixture
def netrun_config(netrun_config: dict[str, Any]) -> dict[str, Any]:
    # The plugin by its entry point name, as a config names it.
    return {**netrun_config, "plugins": [{"plugin": "__NAME__", "greeting": "hi"}]}


async def test_hello_is_answered_with_the_configured_greeting(netrun_server: ServedApp) -> None:
    client = await netrun_server.connect("alice")
    reply = await client.request({"type": "__NAME__.hello", "name": "bob"}, "__NAME__.greeting")
    assert reply["text"] == "hi, bob"


async def test_an_invalid_hello_gets_an_error_reply(netrun_server: ServedApp) -> None:
    client = await netrun_server.connect("alice")
    await client.send({"type": "__NAME__.hello", "name": ""})
    await client.expect_error("validation_failed")
'''


def scaffold(name: str, directory: Path | None = None) -> Path:
    """Write the distribution of plugin ``name`` into ``directory`` (default
    ``./netrun-ws-NAME``), which must not exist or be empty. Returns the directory."""
    if not NAME_PATTERN.fullmatch(name):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lowercase letters, digits, '-' or '_', "
            "starting with a letter (e.g. 'greeter')"
        )
    target = directory if directory is not None else Path(f"netrun-ws-{name}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(f"{target}: already exists and is not an empty directory")
    module = "netrun_ws_" + name.replace("-", "_")
    files = {
        Path("pyproject.toml"): _PYPROJECT,
        Path("README.md"): _README,
        Path("src", module, "__init__.py"): _MODULE,
        Path("src", module, "py.typed"): "",
        Path("tests", f"test_{module}.py"): _TEST,
    }
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.replace("__NAME__", name).replace("__MODULE__", module))
    return target
