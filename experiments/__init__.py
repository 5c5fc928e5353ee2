"""The shipped experiment specs, installed as the package data `audioml_experiments`.

A package (not a plain folder) so that importlib.resources reads it the same way from a wheel
and from an editable install; see runner/resources.py.
"""
