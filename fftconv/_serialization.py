"""Rebuilding objects from Keras-style ``{"class_name": ..., "config": {...}}`` dicts."""

from __future__ import annotations

import inspect
from typing import Any


class Configurable:
    """Mixin of objects rebuilt from their ``get_config()``: ``cls(**config)``."""

    def get_config(self) -> dict[str, Any]:
        """Return the JSON-serialisable constructor arguments."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """Build an object from :meth:`get_config` output."""
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


def object_from_dict(identifier: dict[str, Any], lookup: dict[str, type], argument: str) -> Any:
    """Instantiate ``lookup[identifier["class_name"]]`` from ``identifier["config"]``.

    Other keys (Keras's ``"module"``, ``"registered_name"``) are ignored.

    Raises
    ------
    TypeError
        If the dict is malformed or its config has keys the class does not take.
    ValueError
        If the class name is unknown.
    """
    class_name = identifier.get("class_name")
    config = identifier.get("config", {})
    if not isinstance(class_name, str) or not isinstance(config, dict):
        raise TypeError(
            f'`{argument}` must be a dict {{"class_name": str, "config": dict}}, got {identifier!r}'
        )
    if class_name not in lookup:
        raise ValueError(
            f"`{argument}` class_name must be one of {list(lookup)}, got {class_name!r}"
        )
    cls = lookup[class_name]
    allowed = list(inspect.signature(cls).parameters)
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise TypeError(
            f"`{argument}` config for {class_name} has unknown keys {unknown}; "
            f"allowed keys are {allowed}"
        )
    return cls.from_config(config)
