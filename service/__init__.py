"""ReplyDesk: triage, retrieval, grounded drafts and tone checks for messaging support."""

__version__ = "0.1.0"
