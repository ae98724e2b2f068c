"""Deep-merge a layer (an environment overlay, or CLI overrides) over config data.

Mappings merge key by key; lists, scalars and null replace. A single-plugin slot (``SLOT_KEYS``:
auth, store, ...) whose overlay names a different ``plugin`` - or is a bare plugin name - is
replaced whole, so ``store: {plugin: redis}`` never inherits memory's options; an
overlay without ``plugin`` adds options to whatever plugin the slot already has (the default one
if the base does not mention the slot). Locations follow the data: a replaced subtree takes the
layer's locations.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from netrun_ws.config.locations import KeyPath, Location, SourceMap, normal_path
from netrun_ws.config.models import SLOT_KEYS, Config


def _default_slot(key: str) -> Any:
    default = Config.model_fields[key].get_default(call_default_factory=True)
    return None if default is None else default.model_dump()


def _as_slot_mapping(value: Any) -> Any:
    return {"plugin": value} if isinstance(value, str) else value


def _slot_replaced(base: Any, overlay: Any) -> bool:
    if not isinstance(overlay, Mapping) or not isinstance(base, Mapping):
        return True
    return "plugin" in overlay and overlay.get("plugin") != base.get("plugin")


def merge_layer(
    base: Mapping[Any, Any],
    layer: Mapping[Any, Any],
    sources: SourceMap,
    layer_locations: Mapping[KeyPath, Location],
) -> dict[Any, Any]:
    """``layer`` merged over ``base`` (neither is modified); ``sources`` is updated in place.

    ``layer_locations`` are keyed by full paths (the layer's root is the config's root).
    """
    layer_locations = {normal_path(path): location for path, location in layer_locations.items()}

    def located_under(prefix: KeyPath) -> dict[KeyPath, Location]:
        return {
            path: location
            for path, location in layer_locations.items()
            if path[: len(prefix)] == normal_path(prefix)
        }

    def replace(path: KeyPath, value: Any) -> Any:
        sources.replace_subtree(path, located_under(path))
        return copy.deepcopy(value)

    def merge_mapping(
        old: Mapping[Any, Any], new: Mapping[Any, Any], path: KeyPath
    ) -> dict[Any, Any]:
        merged = dict(old)
        for key, value in new.items():
            child = (*path, key)
            if not path and key in SLOT_KEYS:
                merged[key] = merge_slot(merged.get(key, _default_slot(key)), value, child)
            elif key in merged and isinstance(merged[key], Mapping) and isinstance(value, Mapping):
                if not sources.has(child) and normal_path(child) in layer_locations:
                    sources.set(child, layer_locations[normal_path(child)])
                merged[key] = merge_mapping(merged[key], value, child)
            else:
                merged[key] = replace(child, value)
        return merged

    def merge_slot(old: Any, new: Any, path: KeyPath) -> Any:
        old = _as_slot_mapping(old)
        if _slot_replaced(old, new):
            return replace(path, new)
        if not sources.has(path) and normal_path(path) in layer_locations:
            sources.set(path, layer_locations[normal_path(path)])
        return merge_mapping(old, new, path)

    return merge_mapping(base, layer, ())
