"""huren (互认): mutual recognition and sharing of examination and laboratory results."""

__version__ = "0.1.0"
