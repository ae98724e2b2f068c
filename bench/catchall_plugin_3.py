"""Extra plugin 3 of the echo scenario, as a catch-all (see bench/other_plugin.py)."""

from bench.other_plugin import plugin_class

Plugin = plugin_class("other_3", routed=False)
