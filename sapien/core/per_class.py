"""What a framework class would build anew for every instance, though it depends on the class alone."""

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def built_once_per_class(instance: object, name: str, build: Callable[[], T]) -> T:
    """What ``build`` makes for ``instance``'s class: made by its first instance and kept on the class as ``name``
    (on that class itself, never inherited from a parent class, whose answer may differ)."""
    built: T | None = type(instance).__dict__.get(name)
    if built is None:
        built = build()
        setattr(type(instance), name, built)
    return built
