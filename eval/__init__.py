"""Offline evaluation: intents, urgency, retrieval, tone and drafts."""
