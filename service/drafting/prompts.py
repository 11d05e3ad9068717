"""Versioned Jinja2 prompts: `prompts/<name>.<version>.j2` with front matter, activated by
`prompts/registry.yaml`.

Customer text reaches a template only through the `untrusted` filter: JSON-encoded (so quotes and newlines
cannot end the string) with `<`, `>` and backticks escaped (so the text cannot close the `<customer_data>`
block or a fence).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import frontmatter
from jinja2 import Environment, StrictUndefined, Template, TemplateError

from service import yamlfile
from service.errors import ServiceUnavailable

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "`": "\\u0060"}


class PromptsUnavailable(ServiceUnavailable):
    code = "prompts_unavailable"


def untrusted(value: Any) -> str:
    """JSON text of `value` that cannot break out of the block it is placed in."""
    text = json.dumps(value, ensure_ascii=False, indent=1, default=str)
    for ch, esc in _ESCAPES.items():
        text = text.replace(ch, esc)
    return text


def make_environment() -> Environment:
    env = Environment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters["untrusted"] = untrusted
    return env


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    description: str
    path: Path
    sha256: str
    template: Template

    @property
    def ref(self) -> str:
        return f"{self.name}.{self.version}"

    def render(self, **variables: Any) -> str:
        return self.template.render(**variables).strip()


class PromptRegistry:
    """Loads every active prompt once; `get(name)` returns the active version."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._env = make_environment()
        registry_path = self.directory / "registry.yaml"
        try:
            raw = yamlfile.safe_load(registry_path.read_text(encoding="utf-8"))
        except (OSError, yamlfile.YAMLError) as exc:
            raise PromptsUnavailable(f"cannot read prompt registry {registry_path}: {exc}") from exc
        active = raw.get("active") if isinstance(raw, dict) else None
        if not isinstance(active, dict) or not active:
            raise PromptsUnavailable(f"{registry_path}: expected `active: {{name: version}}`")
        self._active: dict[str, PromptTemplate] = {
            str(name): self._load(str(name), str(version)) for name, version in active.items()
        }

    def _load(self, name: str, version: str) -> PromptTemplate:
        path = self.directory / f"{name}.{version}.j2"
        try:
            source = path.read_text(encoding="utf-8")
            post = frontmatter.loads(source)
        except (OSError, yamlfile.YAMLError, ValueError) as exc:
            raise PromptsUnavailable(f"cannot read prompt {path}: {exc}") from exc
        if str(post.get("name")) != name or str(post.get("version")) != version:
            raise PromptsUnavailable(
                f"{path}: front matter says {post.get('name')}.{post.get('version')}, registry says "
                f"{name}.{version}"
            )
        try:
            template = self._env.from_string(post.content)
        except TemplateError as exc:
            raise PromptsUnavailable(f"{path}: invalid Jinja2 template: {exc}") from exc
        return PromptTemplate(
            name=name,
            version=version,
            description=str(post.get("description", "")),
            path=path,
            sha256=hashlib.sha256(source.encode()).hexdigest()[:12],
            template=template,
        )

    def get(self, name: str) -> PromptTemplate:
        try:
            return self._active[name]
        except KeyError:
            raise PromptsUnavailable(
                f"no active prompt named {name!r} in {self.directory / 'registry.yaml'}"
            ) from None

    def versions(self) -> dict[str, str]:
        return {name: t.version for name, t in self._active.items()}
