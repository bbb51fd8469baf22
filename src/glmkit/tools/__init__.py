"""Tools the models may call: a registry with argument validation, and an optional sandboxed interpreter."""
