"""The version of handgrad, in a module of its own so that any module can read it without importing
the package (which imports them all: reading it from there made import cycles)."""

__version__ = "0.1.0"
