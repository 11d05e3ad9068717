"""Reply drafts: the LLM seam, templates, and the checks every draft passes."""
