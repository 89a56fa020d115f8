"""The life cycle every libdat handle shares in Python."""
from __future__ import annotations

import weakref
from typing import Callable, Optional


class Handle:
    """Owns one libdat handle: closed by close(), a `with` block or garbage
    collection, whichever comes first. Subclasses set `_what` (for messages) and
    `_destroy` (the dat_*_destroy function)."""

    _what = "handle"
    _destroy: Optional[Callable] = None
    _handle = None

    @property
    def handle(self):
        if self._handle is None:
            raise ValueError(f"libdat: the {self._what} is closed")
        return self._handle

    def _adopt(self, child: "Handle") -> None:
        """Records a handle made from this one (a context's tensors, models, ...): closing
        this one closes them first, so no child outlives what it was made from."""
        if not hasattr(self, "_children"):
            self._children = weakref.WeakSet()
        self._children.add(child)

    def close(self) -> None:
        for child in list(getattr(self, "_children", ())):
            child.close()
        if self._handle is not None:
            if self._destroy is not None:
                type(self)._destroy(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
