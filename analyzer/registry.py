"""A small name -> factory registry for pluggable backends (detectors, trackers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps backend names to factories; refuses duplicates, lists names on a miss.

    Example:
        >>> DETECTORS = Registry("detector")
        >>> @DETECTORS.register("haar")
        ... class Haar: ...
        >>> DETECTORS.create("haar")  # doctest: +ELLIPSIS
        <...Haar object at ...>
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``.

        Raises:
            KeyError: no backend has that name; the message lists the valid ones.
        """
        if name not in self._factories:
            raise KeyError(
                f"unknown {self.kind} {name!r}; "
                f"choose one of: {', '.join(self.names())}"
            )
        return self._factories[name]

    def create(self, name: str, **kwargs) -> T:
        """Build the backend ``name`` with keyword arguments.

        Raises:
            KeyError: no backend has that name; the message lists the valid ones.
        """
        return self.factory(name)(**kwargs)
