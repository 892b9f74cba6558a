"""Name → factory registries (timm style) for models, datasets and methods."""
from __future__ import annotations

import fnmatch
from importlib.metadata import entry_points
from typing import Callable, Generic, TypeVar

from llsbench.errors import LLSBenchError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named factories with wildcard listing and helpful errors.

    When `entry_point_group` is given, installed packages that declare entry points in that
    group are loaded on first use; a plugin that fails to import is recorded in `broken`
    (name → error) and does not hide the others.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self.broken: dict[str, str] = {}
        self._loaded = entry_point_group is None

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        self._items[name] = obj

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.entry_point_group):
            if ep.name in self._items:
                continue
            try:
                self._items[ep.name] = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                self.broken[ep.name] = f"{type(exc).__name__}: {exc}"

    def get(self, name: str) -> T:
        self._load_entry_points()
        if name in self._items:
            return self._items[name]
        if name in self.broken:
            raise LLSBenchError(f"{self.kind} {name!r} is installed but failed to load: {self.broken[name]}")
        raise UnknownNameError(self.kind, name, self.names())

    def names(self, pattern: str = "*") -> list[str]:
        self._load_entry_points()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._items
