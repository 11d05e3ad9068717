"""Personal data in customer text: what is found (`detect.find_pii`), how it is replaced by placeholders
before any LLM call, and how placeholders come back in a draft (`redaction`), with cards and IBANs only ever
shown masked ("card ending 0004").

A low layer (under triage and drafting, over auth): it knows text, cue words and checksums, nothing about
requests, channels or the LLM. Callers pass what they know about the customer as `PiiHints`.
"""
