"""Execution paths for the one primitive, ``corr_valid``."""
