"""Extra plugin 1 of the echo scenario (see bench/other_plugin.py)."""

from bench.other_plugin import plugin_class

Plugin = plugin_class("other_1")
