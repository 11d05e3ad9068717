"""Knowledge base capability: the `KnowledgeBase` component, its schemas and the /v1/kb endpoints."""
