"""remaster's version, at the bottom of the package: anything that records it imports it from here."""

__version__ = "0.2.0"
