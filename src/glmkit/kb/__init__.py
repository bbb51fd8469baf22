"""The knowledge base: loaders, splitter, embedder, stores, retriever."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from glmkit.kb.service import KnowledgeBases
    from glmkit.settings import Settings


def open_knowledge_bases(settings: Settings) -> KnowledgeBases:
    """The knowledge-base service the settings describe (store, embedder, reranker, chunking)."""
    from glmkit.kb.embed import load_embedder
    from glmkit.kb.rerank import load_reranker
    from glmkit.kb.service import KnowledgeBases
    from glmkit.kb.stores import open_store
    from glmkit.storage.home import home_key

    return KnowledgeBases(
        open_store(settings.kb_store, settings.home, home_key(settings)),
        lambda: load_embedder(settings.embedding_model),
        lambda: load_reranker(settings.kb_reranker),
        chunk_size=settings.kb_chunk_size,
        chunk_overlap=settings.kb_chunk_overlap,
        max_file_bytes=settings.kb_max_file_bytes,
    )
