"""Fine-tuning and continued pre-training (``glmkit train``): one YAML config, a plain torch loop, resumable.

- ``config``: the YAML config (pydantic, ``extra="forbid"``); a bad key or value names the field.
- ``data``: ChatGLM3 conversation JSONL (supervised methods) and raw text (``pretrain``), checked line by
  line before anything is written.
- ``masks``: a conversation rendered in the model's own chat format, with labels on the assistant turns
  (and the token that ends each) only; spans found by rendering message prefixes.
- ``model``: the base model for training: a Hugging Face directory (ChatGLM3 mapped onto transformers' Glm),
  a GGUF file dequantised by transformers, or the embedded default.
- ``methods``: LoRA and P-Tuning v2 (PEFT), full fine-tuning, continued pre-training.
- ``loop``: AdamW, linear warm-up and decay, gradient accumulation, eval, JSONL log, atomic checkpoints.
- ``export`` / ``gguf_export``: merged checkpoints, GGUF LoRA adapters and full GGUF files that
  ``glmkit serve`` runs directly.

torch, transformers and peft are imported inside functions only: importing this package stays cheap.
"""
