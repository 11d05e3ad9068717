"""The message pipeline: triage → article retrieval → drafts (with tone checks), one class for every entry
point.

`POST /v1/triage`, `replydesk triage` and ingest (`POST /v1/messages`, the channel webhooks) all run
`MessagePipeline.run`, so every entry point returns the same thing for the same message.
"""
