"""ProfileResolutionConfig: field-level errors with clear messages, before anything is written."""

from __future__ import annotations

import copy

import pytest

from identity_pipeline.config import ConfigError, parse_config
from identity_pipeline_tests.profile_resolution.conftest import BASE_PR


def cfg(mutate) -> dict:
    pr = copy.deepcopy(BASE_PR)
    mutate(pr)
    return {"profile_resolution": pr}


def test_base_config_parses():
    c = parse_config(cfg(lambda pr: None))
    pr = c.profile_resolution
    assert pr.canonical_fields()[:2] == ["email", "phone"]
    assert pr.golden_fields() == ["email", "phone", "first_name", "last_name", "customer_number"]
    assert pr.rules[2].anchor_fields == ["phone"]


def test_sql_field_and_table_source_parse():
    def m(pr):
        pr["sources"][1] = {
            "name": "app",
            "table": "raw.app",
            "primary_key": "user_id",
            "priority": 3,
            "fields": {"first_name": {"sql": "split_part(full_name, ' ', 1)"}, "email": "mail"},
        }

    c = parse_config(cfg(m))
    assert c.profile_resolution.sources[1].fields["first_name"].sql.startswith("split_part")


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (
            lambda pr: pr["rules"].append(
                {
                    "name": "fuzzy_only",
                    "conditions": [{"fuzzy": {"field": "first_name", "scorer": "ratio", "threshold": 90}}],
                }
            ),
            r"rules\.3'.*rule 'fuzzy_only' has no exact condition",
        ),
        (
            lambda pr: pr["rules"][2]["conditions"][1]["fuzzy"].update(scorer="levenshtein"),
            r"unknown scorer 'levenshtein'; valid scorers: ratio, partial_ratio, .*jaro_winkler",
        ),
        (
            lambda pr: pr["rules"][2]["conditions"][1]["fuzzy"].update(threshold=90),
            r"threshold 90.0 is off the scale of scorer 'jaro_winkler' \(expected 0..1\)",
        ),
        (
            lambda pr: pr["rules"][0]["conditions"].append({"exact": "zip"}),
            r"rules\.0\.conditions\.1\.exact: 'zip' .*is not a configured identifier",
        ),
        (
            lambda pr: pr["golden_record"].update(fields={"nickname": "longest"}),
            r"golden_record\.fields\.nickname: not a canonical field",
        ),
        (
            lambda pr: pr["golden_record"].update(fields={"email": "newest"}),
            r"golden_record\.fields\.email",
        ),
        (
            lambda pr: pr["sources"][1].update(name="crm"),
            r"sources\.1\.name: 'crm' is already used by sources\.0",
        ),
        (lambda pr: pr["sources"][1].update(priority=1), r"sources\.1\.priority: 1 is already used"),
        (
            lambda pr: pr["identifiers"]["email"].update(blocked_patterns=["(unclosed"]),
            r"identifiers\.email\.blocked_patterns.*not a valid regular expression",
        ),
        (
            lambda pr: pr["identifiers"].update(zip={"standardizer": "postal_code"}),
            r"identifiers\.zip: no source",
        ),
        (
            lambda pr: pr["identifiers"]["email"].update(standardizer="soundex"),
            r"identifiers\.email\.standardizer",
        ),
        (
            lambda pr: pr["sources"][0].update(order_by="created"),
            r"order_by 'created' is not one of its canonical",
        ),
        (lambda pr: pr["sources"][0].update(colour="red"), r"sources\.0\.colour.*Extra inputs"),
        (lambda pr: pr["sources"][0]["fields"].update(source="x"), r"'source' is reserved"),
        (
            lambda pr: pr["rules"][1].update(conditions=[{"exact": "email", "fuzzy": None}, {}]),
            r"exactly one of",
        ),
    ],
)
def test_config_errors_name_the_place(mutate, pattern):
    with pytest.raises(ConfigError, match=rf"(?s)x\.yaml.*{pattern}"):
        parse_config(cfg(mutate), source="x.yaml")
