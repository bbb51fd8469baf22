"""Chinese-first data preprocessing (``glmkit data …``), streaming line by line over files of any size.

- ``clean``: HTML and boilerplate removal, control characters, full/half width, whitespace, optional
  traditional → simplified.
- ``segment``: jieba words with user dictionaries and stop-word lists.
- ``dedupe``: exact and MinHash-LSH near-duplicate removal with a report of what was dropped.
- ``mask``: PII detectors (resident ID, mobile, landline, e-mail, bank card, address) and typed
  placeholders — the library API the server and logs reuse (``find``, ``mask``, ``Masker``).
- ``convert``: Alpaca / ShareGPT / OpenAI messages → ChatGLM3's fine-tuning conversation format.
- ``streams``: numbered input lines and records, atomic output files, progress.

Import the submodules directly (``from glmkit.data.mask import mask``); this package imports nothing.
"""
