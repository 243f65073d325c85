"""Loihi 2 system descriptions (YAML), shipped as package data.

Each value is marked published (with its source) or estimate; the resource
planner of the hardware milestone reads them. Empty until that milestone.
"""
