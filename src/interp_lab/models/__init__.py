"""Models: the registry of named models, fetching and caching, loading, hook points and edits.

Importing this package does not import torch; ``load``, ``hooked`` and ``fetch.convert`` do when called.
"""

from interp_lab.models.registry import REGISTRY, ModelSpec, lookup

__all__ = ["REGISTRY", "ModelSpec", "lookup"]
