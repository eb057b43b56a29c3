"""Putting our function in place of a moto one, so that installing it again replaces ours.

Why: each extension is installed with the backend object that owns its state (the wrapper
closes over it). A second install, as a second stack in one process does, must wrap moto's
original again, not our first wrapper, or both backends would see every call.
"""

from __future__ import annotations

from typing import Any, Callable

_ORIGINAL = "_local_original"


def replace(owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
    """``owner.name = wrap(original)``, with ``original`` moto's own attribute."""
    current = getattr(owner, name)
    original = getattr(current, _ORIGINAL, current)
    new = wrap(original)
    setattr(new, _ORIGINAL, original)
    setattr(owner, name, new)
