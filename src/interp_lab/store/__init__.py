"""The activation store: reading (``Store``), writing (``StoreWriter``) and queries (``interp_lab.store.queries``)."""

from interp_lab.store.reader import Store

__all__ = ["Store"]
