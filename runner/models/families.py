"""Imports every built-in family module so that each registers itself."""
