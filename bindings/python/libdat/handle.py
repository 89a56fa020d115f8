"""The life cycle every libdat handle shares in Python."""
from __future__ import annotations

import threading
import weakref
from typing import Callable, Optional

# Per thread, the handles each step recording (Context.record) of that thread has used
# so far: another thread's calls meanwhile are no part of it.
_local = threading.local()


def _recordings() -> list:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


class Handle:
    """Owns one libdat handle: closed by close(), a `with` block or garbage
    collection, whichever comes first. Subclasses set `_what` (for messages) and
    `_destroy` (the dat_*_destroy function).

    A handle made from another (a context's tensors, a model's flat buffers) is its
    child: closing the parent closes the children first. The C object is destroyed
    only once nothing depends on it any more (children, numpy views of its memory):
    garbage collection of a cycle finalizes objects in any order, and a view may
    outlive its tensor's close(), so a parent's destroy waits for the last of them."""

    _what = "handle"
    _destroy: Optional[Callable] = None
    _handle = None
    _pending = None  # the C handle, closed from Python but waiting for dependents
    _live = 0        # dependents not yet destroyed: children and views

    @property
    def handle(self):
        if self._handle is None:
            raise ValueError(f"libdat: the {self._what} is closed")
        for used in getattr(_local, "stack", ()):
            used.add(self)
        return self._handle

    def _adopt(self, child: "Handle") -> None:
        """Records a handle made from this one: closing this one closes it first, and
        this one's C object outlives the child's."""
        if not hasattr(self, "_children"):
            self._children = weakref.WeakSet()
        if child in self._children:
            return
        self._children.add(child)
        self._hold()
        child._parents = getattr(child, "_parents", ()) + (self,)

    def _hold(self) -> None:
        """One more dependent of the C object (a child or a view of its memory)."""
        self._live += 1

    def _release(self) -> None:
        """A dependent is gone: destroys the C object if it was closed meanwhile."""
        self._live -= 1
        if self._live == 0 and self._pending is not None:
            self._finish()

    def _finish(self) -> None:
        raw, self._pending = self._pending, None
        if self._destroy is not None:
            type(self)._destroy(raw)
        for parent in getattr(self, "_parents", ()):
            parent._release()

    def close(self) -> None:
        for child in list(getattr(self, "_children", ())):
            child.close()
        if self._handle is None:
            return
        self._pending, self._handle = self._handle, None
        if self._live == 0:
            self._finish()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
