"""The ``netrun-ws`` command: run, check, plugins, token, schema, asyncapi, typescript, connect.

Exit codes (docs/cli.md): 0 success; 1 unexpected failure; 2 usage or configuration error (one
``file:line key.path: message`` line per mistake); 3 plugin error (import, setup, unknown hook);
4 the server could not start (port in use, store unreachable, a startup hook failed); 5 `connect`:
the server refused the connection or ended it for good.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_CLOSED",
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_PLUGIN",
    "EXIT_START",
    "build_server",
    "frame_budget",
    "guard_connections",
    "http_protocol_class",
    "main",
    "protocol_settings",
    "serve_loaded",
    "ws_protocol_class",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_PLUGIN = 3
EXIT_START = 4
EXIT_CLOSED = 5

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netrun-ws",
        description="A config-driven WebSocket server: netrun_ws.yaml selects the plugins.",
        epilog="Exit codes: 0 ok, 1 unexpected error, 2 config/usage error, 3 plugin error, "
        "4 server failed to start, 5 connection refused or ended for good. Docs: docs/cli.md",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--config",
            "-c",
            default="netrun_ws.yaml",
            metavar="PATH",
            help="config file (default: ./netrun_ws.yaml)",
        )
        sub.add_argument(
            "--env",
            "-e",
            default=None,
            metavar="NAME",
            help="environment overlay from the config's `environments:` (default: $NETRUN_WS_ENV)",
        )

    run = commands.add_parser(
        "run",
        help="serve the configured app with uvicorn",
        description="Serve until SIGINT/SIGTERM.",
    )
    with_config(run)
    run.add_argument("--host", help="bind address (overrides server.host)")
    run.add_argument("--port", type=int, help="port (overrides server.port)")
    run.add_argument("--log-level", choices=LOG_LEVELS, help="overrides server.log_level")
    run.add_argument(
        "--workers",
        metavar="N",
        help="processes serving the port, each a node of the cluster (a number or auto: one per "
        "core; overrides server.workers; more than one needs the redis store)",
    )

    check = commands.add_parser(
        "check",
        help="validate the config and plugins without serving",
        description="Validate config and plugins; print each slot's plugin and where it came from.",
    )
    with_config(check)

    plugins = commands.add_parser(
        "plugins",
        help="list every discoverable plugin and the hooks it implements",
        description="Built-ins, entry points (group `netrun_ws`) and files in plugins_dir.",
    )
    plugins.add_argument(
        "--plugins-dir",
        default=None,
        metavar="DIR",
        help="plugins folder to list (default: ./plugins)",
    )

    new_plugin = commands.add_parser(
        "new-plugin",
        help="create a plugin distribution (entry point, options, a hook, a test) to start from",
        description="Write a plugin distribution that passes its own test: pip install -e "
        "'.[test]' && pytest in it.",
    )
    new_plugin.add_argument("name", metavar="NAME", help="plugin name, as a config writes it")
    new_plugin.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="where to create it (default: ./netrun-ws-NAME); must not exist or be empty",
    )

    token = commands.add_parser(
        "token",
        help="print a JWT for local testing, signed with the configured auth secret",
        description="Needs `auth: {plugin: jwt, secret: ...}` in the (environment's) config.",
    )
    with_config(token)
    token.add_argument(
        "--user", required=True, metavar="ID", help="user id (sub and user_id claims)"
    )
    token.add_argument("--expiry", type=int, metavar="SECONDS", help="lifetime (default: config)")
    token.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra claim (repeatable; VALUE parsed as JSON when it can be)",
    )
    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of netrun_ws.yaml, with every plugin's options",
        description="Built-ins, entry points and the config's plugins_dir; for editors and CI.",
    )
    schema.add_argument(
        "--config",
        "-c",
        default="netrun_ws.yaml",
        metavar="PATH",
        help="config whose plugins_dir is searched (default: ./netrun_ws.yaml; may be absent)",
    )
    schema.add_argument(
        "--no-entry-points",
        action="store_true",
        help="leave out plugins installed as entry points (for a schema file kept in a repository)",
    )
    asyncapi = commands.add_parser(
        "asyncapi",
        help="print an AsyncAPI 3.0 document (JSON) of the configured server's websocket protocol",
        description="Built-in messages, every type the configured plugins register, close and "
        "error codes.",
    )
    with_config(asyncapi)
    typescript = commands.add_parser(
        "typescript",
        help="print TypeScript declarations of every message of the configured server",
        description="Built-in and plugin-registered messages, ServerMessage and ClientMessage "
        "unions, close and error codes.",
    )
    with_config(typescript)

    connect = commands.add_parser(
        "connect",
        help="an interactive session: send JSON lines, print what the server sends",
        description="Type one JSON message per line; received messages are printed one per "
        "line, connection states on stderr (lines starting with #). Pings are answered and the "
        "client reconnects by the server's policy, resuming its session. Ctrl-D or Ctrl-C ends.",
    )
    connect.add_argument("url", metavar="URL", help="e.g. 'ws://127.0.0.1:8000/ws?user_id=alice'")
    credentials = connect.add_mutually_exclusive_group()
    credentials.add_argument("--token", metavar="T", help="a token (visible to other local users)")
    credentials.add_argument(
        "--token-file",
        metavar="F",
        help="read the token from F; read again to refresh it before it expires",
    )
    connect.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra handshake header (repeatable)",
    )
    where = connect.add_mutually_exclusive_group()
    where.add_argument(
        "--subprotocol-auth",
        action="store_true",
        help="send the token as the bearer.<token> subprotocol (as browsers do) instead of an "
        "Authorization header",
    )
    where.add_argument(
        "--message-auth",
        action="store_true",
        help='send the token as the first message, {"type": "auth", "token": ...}, for a server '
        "with server.first_message_auth",
    )
    return parser


def _fail(code: int, message: str) -> int:
    print(message, file=sys.stderr)
    return code


def _load(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Any:
    from netrun_ws.app import load_app_config

    return load_app_config(args.config, env=args.env, overrides=overrides)


def _workers_override(value: str | None) -> int | str | None:
    # A number stays a string when it is not one, so the config names it as server.workers.
    return int(value) if value is not None and value.isdigit() else value


def _run(args: argparse.Namespace) -> int:
    from netrun_ws.runtime.workers import (
        Supervisor,
        WorkerSpec,
        configure_logging,
        memory_store_refusal,
        worker_count,
    )

    server_overrides = {
        key: value
        for key, value in (
            ("host", args.host),
            ("port", args.port),
            ("log_level", args.log_level),
            ("workers", _workers_override(args.workers)),
        )
        if value is not None
    }
    overrides = {"server": server_overrides} if server_overrides else None
    loaded = _load(args, overrides)
    server = loaded.config.server
    configure_logging(server.log_level)
    workers = worker_count(server.workers)
    if workers == 1:
        return _serve(loaded)
    refusal = memory_store_refusal(loaded.config.store.plugin, workers)
    if refusal is not None:
        return _fail(EXIT_CONFIG, refusal)
    from netrun_ws.host import Host

    Host(loaded)  # plugin errors once, here, rather than once per worker
    spec = WorkerSpec(
        config=str(loaded.path),
        env=args.env,
        overrides=overrides,
        host=server.host,
        port=server.port,
        log_level=server.log_level,
        drain_timeout=server.drain_timeout,
    )
    return Supervisor(spec, workers).run()


def _serve(loaded: Any, sockets: list[Any] | None = None) -> int:
    uvicorn_server = build_server(loaded)
    try:
        uvicorn_server.run(sockets=sockets)
    except SystemExit:  # uvicorn exits with its own code when start-up fails
        return EXIT_START
    return EXIT_OK if uvicorn_server.started else EXIT_START


def serve_loaded(
    config: str, env: str | None, overrides: Any, bind: Callable[[str, int], Any]
) -> int:
    """One worker of `netrun-ws run --workers N`: load the config as the command did and serve
    it on the socket ``bind(host, port)`` returns; returns the exit code, as `main` does."""

    def serve() -> int:
        from netrun_ws.app import load_app_config

        loaded = load_app_config(config, env=env, overrides=overrides)
        server = loaded.config.server
        try:
            sock = bind(server.host, server.port)
        except OSError as error:
            return _fail(EXIT_START, f"error: cannot bind {server.host}:{server.port}: {error}")
        return _serve(loaded, [sock])

    return _guarded(serve)


def build_server(loaded: Any, **uvicorn_settings: Any) -> Any:
    """The uvicorn server `netrun-ws run` serves ``loaded`` (a loaded app config) with.

    ``uvicorn_settings`` override the ``uvicorn.Config`` arguments taken from the config (the
    benchmark sets its own backlog and port, for instance). Applies ``server.gc_threshold`` now
    and ``server.gc_freeze`` once start-up has finished.
    """
    import uvicorn

    from netrun_ws.app import create_app

    server = loaded.config.server
    app = create_app(loaded)
    settings: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "log_level": server.log_level,
        "lifespan": "on",
        "timeout_graceful_shutdown": server.drain_timeout,
        **protocol_settings(loaded.config),
    }
    settings.update(uvicorn_settings)
    if server.gc_threshold is not None:
        _first, *older = gc.get_threshold()
        gc.set_threshold(server.gc_threshold, *older)
    uvicorn_config = uvicorn.Config(app, **settings)
    guard_connections(uvicorn_config, loaded.config.limits)
    return _draining_server_class()(uvicorn_config, app, freeze_heap=server.gc_freeze)


def protocol_settings(config: Any, ws_protocol: str | None = None) -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments for how ``config`` (an app's ``Config``) speaks on the
    wire, as ``netrun-ws run`` serves it: the websocket and HTTP protocols of
    ``server.ws_protocol`` (or ``ws_protocol``), permessage-deflate, and ``ws_max_size`` from
    ``limits.max_message_bytes`` (websockets' parser refuses an oversize frame at its header).
    The test servers use it too, so that tests meet what users run."""
    protocol = ws_protocol or config.server.ws_protocol
    return {
        "ws": ws_protocol_class(protocol, config.limits),
        "http": http_protocol_class(protocol),
        "ws_per_message_deflate": config.server.permessage_deflate,
        "ws_max_size": config.limits.max_message_bytes,
    }


def ws_protocol_class(name: str, limits: Any = None) -> Any:
    """The ``uvicorn.Config(ws=...)`` value for ``server.ws_protocol``: for ``netrun``, uvicorn's
    own where the internals netrun-ws's builds on are not the tested ones (with a warning).
    ``limits`` (the config's ``limits`` section) gives netrun-ws's protocol its frame budget."""
    from netrun_ws.transport import netrun_protocols_usable

    if name == "netrun" and netrun_protocols_usable():
        from netrun_ws.transport.websocket import NetrunWebSocketProtocol

        budget = frame_budget(limits)
        if not budget:
            return NetrunWebSocketProtocol
        return NetrunWebSocketProtocol.with_limits(budget)
    return "websockets-sansio"


def frame_budget(limits: Any) -> float:
    """Frames per second one connection may send (0: no budget): ``limits.frames_per_second``,
    and at least twice ``messages_per_second``. Whichever protocol serves keeps it: netrun-ws's
    counts the frames it parses; for any other, netrun_ws.transport.frames does."""
    if limits is None or not limits.frames_per_second:
        return 0.0
    return float(max(limits.frames_per_second, 2 * limits.messages_per_second))


def guard_connections(uvicorn_config: Any, limits: Any) -> None:
    """Bound, on ``uvicorn_config``'s connections, what a client may hold before its request
    is read, while it does not read, and the frames it sends under a websocket protocol that
    does not count them (``limits``: the config's section; see netrun_ws.transport.guard).
    Loads ``uvicorn_config``."""
    from netrun_ws.transport.guard import guard_requests
    from netrun_ws.transport.pending import RequestLimits

    guard_requests(
        uvicorn_config,
        RequestLimits(
            timeout=limits.request_timeout,
            max_pending=limits.max_pending_requests,
            max_pending_per_ip=limits.max_pending_requests_per_ip,
            frames_per_second=frame_budget(limits),
        ),
    )


def http_protocol_class(ws_protocol: str) -> Any:
    """The ``uvicorn.Config(http=...)`` value: with netrun-ws's websocket protocol, the httptools
    protocol that hands upgrades over parsed (netrun_ws.transport.http), when httptools is there."""
    from netrun_ws.transport import netrun_http_protocol_usable

    if (
        ws_protocol == "netrun"
        and importlib.util.find_spec("httptools") is not None
        and netrun_http_protocol_usable()
    ):
        from netrun_ws.transport.http import NetrunHttpToolsProtocol

        return NetrunHttpToolsProtocol
    return "auto"


def _draining_server_class() -> Any:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn.Server whose first SIGTERM/SIGINT drains the host before uvicorn shuts down:
        clients get a resume hint and 1012 from netrun-ws, not uvicorn's bare 1012.

        Built on uvicorn's documented programmatic API only (``serve``, ``should_exit``,
        ``force_exit``): once the app's lifespan startup is complete, before any connection is
        served, the loop's own signal handlers take over from the ones uvicorn installed."""

        def __init__(self, config: uvicorn.Config, app: Any, *, freeze_heap: bool) -> None:
            super().__init__(config)
            self.host = app.state.host
            self.freeze_heap = freeze_heap
            self._drain_started = False
            self._handled: list[int] = []
            self._received: list[int] = []  # the signals the loop's handlers took
            app.when_started(self._started)

        async def serve(self, sockets: Any = None) -> None:
            try:
                await super().serve(sockets=sockets)
            finally:
                loop = asyncio.get_running_loop()
                for sig in self._handled:
                    loop.remove_signal_handler(sig)  # back to Python's default handler
            if self._received:
                # As uvicorn does with the signals it handles: the process ends the way that
                # signal normally ends it (SIGTERM: killed, status 143; SIGINT: KeyboardInterrupt).
                signal.raise_signal(self._received[0])

        def _started(self) -> None:
            """The host has started and the server is about to listen (the app's lifespan)."""
            if self.freeze_heap:
                # What start-up built lives as long as the process: full collections, which
                # also walk every connection's objects, need not walk it again and again.
                gc.collect()
                gc.freeze()
            if threading.current_thread() is threading.main_thread():
                # uvicorn's handlers (installed for start-up) give way to the loop's.
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, self._signalled, sig)
                    self._handled.append(sig)

        def _signalled(self, sig: int) -> None:
            self._received.append(sig)
            if not self._drain_started:
                self._drain_started = True
                self._drain_task = asyncio.ensure_future(self._drain())  # keep a reference
            elif self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # as uvicorn: a further Ctrl-C stops waiting
            else:
                self.should_exit = True  # a second signal: shut down without the drain

        async def _drain(self) -> None:
            try:
                await self.host.drain(self.config.timeout_graceful_shutdown)
            finally:
                self.should_exit = True

    return DrainingServer


def _check(args: argparse.Namespace) -> int:
    from netrun_ws.config import mask_secrets
    from netrun_ws.host import Host

    loaded = _load(args)
    host = Host(loaded)
    source = f"{loaded.path}" + (f" (environment {loaded.env})" if loaded.env else "")
    print(f"config: {source}: OK")
    for key, pm_name in host.slots.items():
        plugin = host.plugins[pm_name]
        print(f"  {key:<10} {plugin.name:<12} {plugin.origin}")
        options = host.plugin_options.get(pm_name)
        if options is not None:
            shown = mask_secrets(options.model_dump(mode="json"))
            print(f"  {'':<10} options: {json.dumps(shown, sort_keys=True)}")
    for pm_name, plugin in host.plugins.items():
        if pm_name not in host.slots.values():
            print(f"  {'app':<10} {plugin.name:<12} {plugin.origin}")
    _warn_unmarked_hooks(host)
    return EXIT_OK


def _warn_unmarked_hooks(host: Any) -> None:
    """One warning line per function named like a hook but not marked ``@hookimpl``."""
    from netrun_ws.plugins.lint import lint_plugin

    for pm_name, plugin in host.plugins.items():
        registered = host.plugin_manager.get_plugin(pm_name)
        for problem in lint_plugin(registered, host.hooks.names, check_unknown=False):
            print(f"warning: plugin {plugin.name!r} ({plugin.origin}): {problem}")


def _plugins(args: argparse.Namespace) -> int:
    from netrun_ws.plugins.loading import discover

    plugins_dir = Path(args.plugins_dir) if args.plugins_dir else Path("plugins")
    for plugin in discover(plugins_dir.resolve() if plugins_dir.is_dir() else None):
        slot = plugin.slot or "app"
        print(f"{plugin.name} [{slot}] {plugin.origin}")
        if plugin.needs:
            print(f"    needs: {plugin.needs}")
        elif plugin.error:
            print(f"    error: {plugin.error}")
        else:
            print(f"    hooks: {', '.join(plugin.hooks) or '(none)'}")
        for warning in plugin.warnings:
            print(f"    warning: {warning}")
    return EXIT_OK


def _token(args: argparse.Namespace) -> int:
    from netrun_ws.builtin.auth_jwt import Options, service_from

    loaded = _load(args)
    auth = loaded.config.auth
    if auth.plugin != "jwt":
        return _fail(
            EXIT_CONFIG,
            f"{loaded.path}: auth.plugin is {auth.plugin!r}; "
            "`token` needs auth: {plugin: jwt, ...}"
            " (pick an environment that uses jwt with --env)",
        )
    options = loaded.validate_options("auth", Options, auth.options)
    assert isinstance(options, Options)
    claims: dict[str, Any] = {}
    for item in args.claim:
        key, sep, value = item.partition("=")
        if not sep or not key:
            return _fail(EXIT_CONFIG, f"--claim {item!r}: expected KEY=VALUE")
        try:
            claims[key] = json.loads(value)
        except json.JSONDecodeError:
            claims[key] = value
    if args.expiry is not None and args.expiry <= 0:
        # The library reads 0 as "the default" and a negative lifetime as "already expired"
        # (netrun-websocket 1.0); a token minted from the command line must be usable.
        return _fail(EXIT_CONFIG, f"error: expiry_seconds must be > 0, got {args.expiry!r}")
    try:
        service = service_from(options)
        token = service.generate_token(
            args.user, additional_claims=claims or None, expiry_seconds=args.expiry
        )
    except (ValueError, RuntimeError, OSError) as error:  # bad claim/expiry/user, verify-only key
        return _fail(EXIT_CONFIG, f"error: {error}")
    print(token)
    return EXIT_OK


def _new_plugin(args: argparse.Namespace) -> int:
    from netrun_ws._scaffold import ScaffoldError, scaffold

    try:
        target = scaffold(args.name, Path(args.dir) if args.dir else None)
    except ScaffoldError as error:
        return _fail(EXIT_CONFIG, f"error: {error}")
    print(f"created {target}: cd {target} && pip install -e '.[test]' && pytest")
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    import yaml

    from netrun_ws.contracts.config_schema import config_schema
    from netrun_ws.contracts.plugin_options import find_plugins, plugins_dir_of

    try:
        plugins_dir = plugins_dir_of(Path(args.config))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return _fail(EXIT_CONFIG, f"{args.config}: cannot read plugins_dir: {first}")
    plugins = find_plugins(plugins_dir, with_entry_points=not args.no_entry_points)
    for note in plugins.notes:
        print(note, file=sys.stderr)
    print(json.dumps(config_schema(plugins), indent=2))
    return EXIT_OK


def _asyncapi(args: argparse.Namespace) -> int:
    from netrun_ws import __version__
    from netrun_ws.contracts.asyncapi import REF_PREFIX, render_asyncapi
    from netrun_ws.contracts.catalog import build_catalog, configured_server

    loaded, registered = configured_server(args.config, args.env)
    server = loaded.config.server
    document = render_asyncapi(
        build_catalog(registered, REF_PREFIX),
        version=__version__,
        host=server.host,
        port=server.port,
        path=server.path,
    )
    print(json.dumps(document, indent=2))
    return EXIT_OK


def _typescript(args: argparse.Namespace) -> int:
    from netrun_ws.contracts.catalog import build_catalog, configured_server
    from netrun_ws.contracts.typescript import REF_PREFIX, render_typescript

    loaded, registered = configured_server(args.config, args.env)
    source = Path(loaded.path).name if loaded.path else "a config"
    if loaded.env:
        source += f" (environment {loaded.env})"
    print(render_typescript(build_catalog(registered, REF_PREFIX), source), end="")
    return EXIT_OK


def _connect(args: argparse.Namespace) -> int:
    from netrun_ws.client.console import UsageError, client_options, run_console

    try:
        options = client_options(
            args.url,
            token=args.token,
            token_file=args.token_file,
            headers=args.header,
            subprotocol_auth=args.subprotocol_auth,
            message_auth=args.message_auth,
        )
    except UsageError as error:
        return _fail(EXIT_CONFIG, f"error: {error}")
    return asyncio.run(run_console(args.url, options))


COMMANDS = {
    "run": _run,
    "check": _check,
    "plugins": _plugins,
    "new-plugin": _new_plugin,
    "token": _token,
    "schema": _schema,
    "asyncapi": _asyncapi,
    "typescript": _typescript,
    "connect": _connect,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``netrun-ws`` script; returns the exit code."""
    args = _parser().parse_args(argv)
    return _guarded(lambda: COMMANDS[args.command](args))


def _guarded(command: Callable[[], int]) -> int:
    """Run ``command``; the errors a user can fix become one line and their exit code."""
    from netrun_ws.config import ConfigError
    from netrun_ws.plugins.loading import PluginLoadError

    try:
        return command()
    except ConfigError as error:
        return _fail(EXIT_CONFIG, str(error))
    except PluginLoadError as error:
        return _fail(EXIT_PLUGIN, str(error))
    except ImportError as error:  # a missing extra, e.g. PyJWT for auth: jwt
        return _fail(EXIT_CONFIG, f"error: {error}")
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `netrun-ws schema | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
