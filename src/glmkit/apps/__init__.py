"""The applications: question answering, customer service, summarization, generation."""
