"""The package version, in a module of its own: the core layers read it from here, so that none of them
imports the package root (whose ``__getattr__`` loads ``interp_lab.api`` on demand)."""

__version__ = "4.0.0.dev0"
