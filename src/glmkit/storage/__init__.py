"""Storage under ``GLMKIT_HOME``: opening databases and files (plain or encrypted at rest, ``crypto``) and
converting a whole home between the two forms (``home``)."""
