"""Pieces of a local OpenAI-compatible `/v1/chat/completions` stand-in (127.0.0.1 only), shared by the
benchmarks (`bench.slow_llm`, `bench.drafting`) and the tests that need an LLM they control: the completion
body, a quiet JSON request handler and a threaded server started in the background."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK = "127.0.0.1"


def chat_completion(
    content: str,
    *,
    completion_id: str = "cmpl-1",
    model: str = "stub",
    prompt_tokens: int = 10,
    completion_tokens: int = 10,
) -> dict[str, Any]:
    """An OpenAI chat-completion body whose one choice says `content`."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class StubHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers JSON; a client that hung up is ignored."""

    def log_message(self, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))

    def send_json(self, status: int, payload: bytes | dict[str, Any]) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up: nothing to do
            pass


class StubServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 (any free port), serving in a daemon thread from `start()`."""

    daemon_threads = True
    request_queue_size = 512  # the default backlog (5) would drop a burst of connections

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__((LOOPBACK, 0), handler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (`.../v1`)."""
        return f"http://{LOOPBACK}:{self.port}/v1"

    def start(self) -> StubServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
