"""The shared defaults and search spaces, installed as the package data `audioml_configs`.

A package (not a plain folder) so that importlib.resources reads it the same way from a wheel
and from an editable install; see runner/resources.py.
"""
