"""Print the README configuration table from `Settings` (so the README never drifts from the code)."""

from __future__ import annotations

from service.settings import REPO_ROOT, Settings


def _default(field) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "—"
    text = str(value).replace(str(REPO_ROOT) + "/", "./")
    return f"`{text}`" if text else '`""`'


def main() -> None:
    print("| variable | default | meaning |")
    print("|---|---|---|")
    for name, field in Settings.model_fields.items():
        desc = (field.description or "").replace("|", "\\|")
        print(f"| `REPLYDESK_{name.upper()}` | {_default(field)} | {desc} |")


if __name__ == "__main__":
    main()
