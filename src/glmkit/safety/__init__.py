"""Content controls and the audit log (docs/safety.md).

- ``glmkit.safety.filter``: the sensitive-word filter (Aho–Corasick over word lists, actions
  off/flag/mask/block) and the shipped word lists;
- ``glmkit.safety.policy``: the configuration types (settings, per-route and per-bot overrides);
- ``glmkit.safety.guard``: the controls resolved for one route or bot, PII masking for storage, logs and
  the model (``MaskingChatModel``);
- ``glmkit.safety.audit``: the audit log (SQLite, rotated, exportable) and its ASGI middleware.

This package's ``__init__`` imports nothing, so ``glmkit.settings`` can import ``glmkit.safety.policy``.
"""
