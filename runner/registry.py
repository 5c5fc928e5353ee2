"""The one registry pattern of the runner's extension points (metrics, data sources,
samplers, pruners): a dict of frozen records by name, with ``register`` (refuses a second
record of a name, returns the record, so it reads as a declaration) and ``get`` (names the
spec key and the choices when the name is unknown).
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from runner.errors import RegistryError, format_error

__all__ = ["Registry"]


class _Named(Protocol):
    name: str


T = TypeVar("T", bound=_Named)


class Registry(dict[str, T], Generic[T]):
    """Records of one kind by name. ``kind`` names them in messages (``sampler``); ``key``
    is the spec key that selects one (``search.sampler``)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__()
        self.kind, self.key = kind, key

    def register(self, record: T) -> T:
        if record.name in self:
            raise RegistryError(
                format_error(self.kind, record.name, problem="is already registered")
            )
        self[record.name] = record
        return record

    def get_record(self, name: str) -> T:
        if name not in self:
            raise RegistryError(format_error(self.key, name, one_of=self))
        return self[name]
