"""Optional dependencies ("extras"): import them on first use, with an install hint when missing.

The core package must import without PyJWT or redis; a class that needs one calls
``require_extra`` when it is built, so the error appears where the feature is used.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "install_hint", "require_extra"]

#: Top-level module -> the netrun-ws extra that installs it.
EXTRAS = {"jwt": "auth", "cryptography": "auth", "redis": "redis"}


def install_hint(exc: BaseException) -> str | None:
    """``pip install 'netrun-ws[extra]'`` when ``exc`` (or what caused it) is a missing module
    that an extra of netrun-ws installs, else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError) and seen.name:
            extra = EXTRAS.get(seen.name.partition(".")[0])
            if extra is not None:
                return f"pip install 'netrun-ws[{extra}]'"
        seen = seen.__cause__ or seen.__context__
    return None


def require_extra(
    module_name: str, extra: str, feature: str, *, distribution: str | None = None
) -> ModuleType:
    """Import and return ``module_name``, or raise ImportError naming the extra to install.

    ``extra`` is the name in ``netrun-ws[extra]``; ``feature`` is what needs it (e.g. a class
    name); ``distribution`` is the PyPI name when it differs from the module name. The message
    reads e.g. "JWTAuthService needs PyJWT: pip install 'netrun-ws[auth]'".
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        needed = distribution or module_name
        raise ImportError(
            f"{feature} needs {needed}: pip install 'netrun-ws[{extra}]'", name=module_name
        ) from exc
