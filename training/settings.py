"""A run's settings, resolved once: the flags as given, each family's and variant's defaults for the ones left
unset, and what was sized to the data. Frozen: a part of the run that needs another value derives a new
Settings (`replace`) instead of writing into the one everybody else reads. Printed on a run's first lines and
saved in its checkpoints (`as_dict`)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


class FrozenSettings(AttributeError):
    """Something tried to change a run's settings after they were resolved."""


class Settings(argparse.Namespace):
    """Attribute access as argparse's Namespace (code reads `settings.epochs`), but nothing can be assigned."""

    def __init__(self, **values: Any):
        for name, value in values.items():
            object.__setattr__(self, name, tuple(value) if isinstance(value, list) else value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenSettings(f"the run's settings are resolved once; derive new ones with replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise FrozenSettings("the run's settings are resolved once")

    def replace(self, **changes: Any) -> Settings:
        return Settings(**{**vars(self), **changes})

    def as_dict(self) -> dict:
        """JSON-ready: paths as text, tuples as lists (what checkpoints and logs record)."""
        return {name: str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
                for name, value in vars(self).items()}

    def describe(self, names: tuple[str, ...]) -> str:
        """'name value, ...' of the settings named, in that order (the first lines of a run)."""
        shown = []
        for name in names:
            value = getattr(self, name, None)
            if value is None or value is False:
                continue
            text = " ".join(map(str, value)) if isinstance(value, tuple) else "" if value is True else str(value)
            shown.append(f"--{name} {text}".rstrip())
        return ", ".join(shown)
