"""Comparing runs: repeated traces of one scenario, and the head against its base."""
