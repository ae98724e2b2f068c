"""Extra plugin 2 of the echo scenario (see bench/other_plugin.py)."""

from bench.other_plugin import plugin_class

Plugin = plugin_class("other_2")
