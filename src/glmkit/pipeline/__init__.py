"""The model pipeline: ``metrics`` (pure evaluation metrics) and ``evaluate`` (scoring files, reports)."""
