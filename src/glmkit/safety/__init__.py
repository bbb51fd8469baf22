"""Content controls and the audit log (docs/safety.md).

- ``glmkit.safety.filter``: the sensitive-word filter (Aho–Corasick over word lists, actions
  off/flag/mask/block) and the shipped word lists;
- ``glmkit.safety.policy``: which overrides apply where (global settings → route → bot); the
  configuration types themselves are in ``glmkit.settings``;
- ``glmkit.safety.guard``: the controls resolved for one route or bot, PII masking for storage, logs and
  the model (``MaskingChatModel``);
- ``glmkit.safety.audit``: the audit log (SQLite, rotated, exportable) and its ASGI middleware.

It sits above ``glmkit.runtime`` and ``glmkit.data`` and needs only the ``ChatModel`` seam
(``runtime.protocol``) from the runtime; nothing below imports it.
"""
