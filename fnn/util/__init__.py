"""Helpers any layer may use: name lookup for the registries, atomic file writes, text tables.

The bottom of the layer order: it imports nothing of fnn.
"""
