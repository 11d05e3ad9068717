"""The agent console: server-rendered pages (Jinja2, progressively enhanced with htmx) where agents work the
queue, read a conversation with its triage and cited articles, and approve, edit or reject the drafts."""
