"""The intent taxonomy: bundled YAML, custom YAML / CSV / JSONL files, and clear errors for malformed
files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.errors import InvalidInput
from service.triage.models import UrgencyLevel
from service.triage.taxonomy import OUT_OF_SCOPE, load_taxonomy

DEFAULT_INTENTS = {
    "order_status": ("normal", True),
    "delivery_delay": ("normal", True),
    "wrong_item": ("normal", False),
    "damaged_item": ("normal", False),
    "return_item": ("normal", True),
    "refund_status": ("normal", True),
    "cancel_order": ("normal", True),
    "change_address": ("normal", True),
    "shipping_info": ("low", True),
    "payment_failed": ("high", True),
    "charged_twice": ("high", False),
    "unauthorized_charge": ("critical", False),
    "invoice_request": ("low", True),
    "account_access": ("high", True),
    "hacked_account": ("critical", False),
    "delete_account": ("normal", False),
    "talk_to_human": ("normal", False),
    "complaint": ("high", False),
    "product_question": ("low", True),
    "stock_availability": ("low", True),
    "book_appointment": ("normal", True),
    "reschedule_appointment": ("normal", True),
    "discount_code": ("low", True),
    "feedback": ("low", True),
    "greeting": ("low", True),
    "thanks": ("low", True),
    "unsubscribe": ("low", True),
}


def test_bundled_taxonomy_has_the_27_default_intents_with_their_urgency_and_automatable_flag():
    tax = load_taxonomy()
    assert set(tax.intents) == set(DEFAULT_INTENTS)
    for name, (urgency, automatable) in DEFAULT_INTENTS.items():
        spec = tax.intents[name]
        assert spec.default_urgency == UrgencyLevel(urgency), name
        assert spec.automatable is automatable, name


def test_every_bundled_intent_has_a_description_and_at_least_20_examples_in_several_languages():
    tax = load_taxonomy()
    for name, spec in tax.intents.items():
        assert spec.description.strip(), name
        assert len(spec.examples) >= 20, name
        assert len(set(spec.examples)) == len(spec.examples), f"duplicate examples in {name}"
    assert len(tax.oos_examples) >= 30


def test_bundled_examples_keep_order_numbers_after_a_hash_sign():
    """`#` starts a YAML comment unless quoted: the examples must keep their order numbers."""
    examples = load_taxonomy().intents["order_status"].examples
    assert "hi, any update on order #NW-48213?" in examples


def test_content_hash_is_stable_and_changes_with_the_examples(tmp_path: Path):
    assert load_taxonomy().content_hash == load_taxonomy().content_hash
    custom = tmp_path / "t.yaml"
    custom.write_text(
        "intents:\n  - name: a\n    examples: [x one, x two]\n  - name: b\n    examples: [y one, y two]\n"
    )
    other = tmp_path / "u.yaml"
    other.write_text(
        "intents:\n  - name: a\n    examples: [x one, x 2]\n  - name: b\n    examples: [y one, y two]\n"
    )
    assert load_taxonomy(custom).content_hash != load_taxonomy(other).content_hash


def test_custom_yaml_taxonomy_keeps_metadata_and_out_of_scope_examples(tmp_path: Path):
    path = tmp_path / "tax.yaml"
    path.write_text(
        "intents:\n"
        "  - name: track\n    default_urgency: high\n    automatable: true\n    description: where is it\n"
        "    examples: [where is my parcel, track my order]\n"
        "  - name: bill\n    examples: [send invoice, need a receipt]\n"
        "out_of_scope_examples: [tell me a joke]\n"
    )
    tax = load_taxonomy(path)
    assert tax.intents["track"].default_urgency == UrgencyLevel.high
    assert tax.intents["track"].automatable is True
    assert tax.intents["bill"].default_urgency == UrgencyLevel.normal
    assert tax.intents["bill"].automatable is False
    assert tax.oos_examples == ["tell me a joke"]
    texts, labels = tax.training_data()
    assert ("tell me a joke", OUT_OF_SCOPE) in list(zip(texts, labels, strict=True))


def test_csv_taxonomy_labels_get_defaults_and_oos_rows_become_out_of_scope_data(tmp_path: Path):
    path = tmp_path / "rows.csv"
    path.write_text(
        "text,label\nwhere is my parcel,Track\ntrack my order,Track\nsend invoice,bill\n"
        "need a receipt,bill\nwhat's the weather,oos\n"
    )
    tax = load_taxonomy(path)
    assert set(tax.intents) == {"Track", "bill"}
    assert tax.intents["bill"].default_urgency == UrgencyLevel.normal
    assert tax.intents["bill"].automatable is False
    assert tax.oos_examples == ["what's the weather"]


def test_jsonl_taxonomy_treats_out_of_scope_label_as_oos_data(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    rows = [
        ("where is my parcel", "track"),
        ("track my order", "track"),
        ("send invoice", "bill"),
        ("need a receipt", "bill"),
        ("tell me a joke", "out_of_scope"),
    ]
    path.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in rows) + "\n")
    tax = load_taxonomy(path)
    assert set(tax.intents) == {"track", "bill"}
    assert tax.oos_examples == ["tell me a joke"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.yaml", "intents: [\n", "not valid YAML"),
        ("noint.yaml", "foo: bar\n", "`intents:`"),
        (
            "dup.yaml",
            "intents:\n  - {name: a, examples: [x, y]}\n  - {name: a, examples: [z, w]}\n",
            "defined twice",
        ),
        (
            "urg.yaml",
            "intents:\n  - {name: a, default_urgency: urgent, examples: [x, y]}\n"
            "  - {name: b, examples: [z, w]}\n",
            "default_urgency",
        ),
        ("one.yaml", "intents:\n  - {name: a, examples: [x, y]}\n", "at least 2 intents"),
        ("thin.csv", "text,label\nx,a\ny,a\nz,b\n", "at least 2 example"),
        ("cols.csv", "message,intent\nx,a\n", "needs columns `text` and `label`"),
        ("broken.jsonl", '{"text": "x", "label": "a"}\n{not json}\n', "line 2 is not valid JSON"),
        ("fields.jsonl", '{"body": "x"}\n', "line 1 needs string fields"),
        ("tax.txt", "hello", "unsupported file type"),
    ],
)
def test_malformed_taxonomy_files_raise_invalid_input_naming_the_problem(
    tmp_path: Path, name, content, message
):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InvalidInput) as err:
        load_taxonomy(path)
    assert message in err.value.message
    assert err.value.details["path"] == str(path)


def test_missing_taxonomy_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(InvalidInput, match="file not found"):
        load_taxonomy(tmp_path / "nope.yaml")
