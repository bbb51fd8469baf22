"""Backends. Only these modules import llama_cpp, torch or transformers, and only when loaded."""
