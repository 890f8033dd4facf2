"""Shipped policy presets, installed as the package ci_gate.presets (builtin:NAME)."""
