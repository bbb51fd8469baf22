"""The knowledge base: loaders, splitter, embedder, stores, retriever."""
