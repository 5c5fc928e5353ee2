"""The one registry pattern of every extension point: a dict of frozen records by name.

``register`` refuses a second record of a name and returns the record, so that it reads as a
declaration in the extension's own module; ``get_record`` names the spec key and the choices
when a name is unknown. The class lives here, at the bottom of both packages, because the
feature engine imports nothing of the runner; ``runner.registry.Registry`` is this class
raising ``runner.errors.RegistryError``. It imports nothing, so any registry stays cheap to
read (``audioml validate``).
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from features.errors import format_error

__all__ = ["Named", "Registry"]


class Named(Protocol):
    """A record: anything with a ``name``."""

    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(dict[str, T], Generic[T]):
    """Records of one kind by name.

    Args:
        kind: what a record is, in messages (``sampler``, ``model family``).
        key: the spec key (or logged field) that selects a record (``search.sampler``).
        error: the exception raised on a duplicate or an unknown name; subclasses set
            :attr:`error` instead.
    """

    #: Raised on a duplicate or an unknown name (a neutral built-in unless a subclass or the
    #: constructor says otherwise).
    error: type[Exception] = LookupError

    def __init__(self, kind: str, key: str, *, error: type[Exception] | None = None) -> None:
        super().__init__()
        self.kind, self.key = kind, key
        if error is not None:
            self.error = error
        # Old names that still resolve (records logged under them), never listed as choices.
        self.aliases: dict[str, str] = {}

    def register(self, record: T) -> T:
        """Add ``record`` under its name; returns it. A name is registered once."""
        if record.name in self or record.name in self.aliases:
            raise self.error(format_error(self.kind, record.name, problem="is already registered"))
        self[record.name] = record
        return record

    def alias(self, old: str, name: str) -> None:
        """Let ``old``, an earlier spelling, look up the record ``name``."""
        if old in self or old in self.aliases:
            raise self.error(format_error(self.kind, old, problem="is already registered"))
        self.aliases[old] = name

    def get_record(self, name: str) -> T:
        """The record ``name`` (or the one an alias names).

        Raises:
            error: no record is registered under ``name``; the message names the key and
                the choices.
        """
        record = self.get(self.aliases.get(name, name))
        if record is None:
            raise self.error(format_error(self.key, name, one_of=self))
        return record
