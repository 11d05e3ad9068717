"""Tone and emoji check of replies to customers: culture-specific emoji, context, register and wording rules.

The rules are data (`rules.yaml`); `ToneChecker` (in `checker.py`) applies them in well under a millisecond.
"""
