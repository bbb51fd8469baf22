"""The model runtime: the ChatModel seam, chat formats, backends and model resolution."""
