"""Chat formats (chatglm3, GGUF/HF jinja templates) and tool-call parsing."""
