"""Reads the YAML files the service ships (taxonomy, tone rules, templates, policies) with libyaml's C loader
when PyYAML was built with it, which parses the 50 kB taxonomy in ~10 ms instead of ~150 ms. Same safe subset
of YAML either way: `CSafeLoader` and `SafeLoader` build identical values."""

from __future__ import annotations

from typing import Any

import yaml

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

YAMLError = yaml.YAMLError


def safe_load(text: str) -> Any:
    """`yaml.safe_load`, faster: the C loader when available."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader, never the full one
