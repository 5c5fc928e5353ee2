"""Search spaces per model family (package data of `audioml_configs`)."""
