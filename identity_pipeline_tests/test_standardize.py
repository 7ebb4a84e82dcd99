"""Shared standardizers: what each one turns raw values into, and what becomes 'no observation'."""

import re
import sys

import pandas as pd
import pytest

from identity_pipeline.core.standardize import SPACE_CODEPOINTS, STANDARDIZERS, standardize


def run(values, kind, **opts):
    return standardize(pd.Series(values, dtype="object"), kind, **opts).tolist()


def test_email_trims_lowercases_and_rejects_non_emails():
    assert run([" Alice@Example.COM ", "alice @example.com", "not-an-email", "", None], "email") == [
        "alice@example.com",
        "alice@example.com",
        pd.NA,
        pd.NA,
        pd.NA,
    ]


def test_email_drops_every_whitespace_python_knows_and_nothing_else():
    # the class spelled out for Arrow's regex kernels is exactly Python's `\s`
    assert [c for c in range(sys.maxunicode + 1) if re.match(r"\s", chr(c))] == sorted(SPACE_CODEPOINTS)
    spaced = [f"al{chr(c)}ice@example.com" for c in SPACE_CODEPOINTS]
    assert run(spaced, "email") == ["alice@example.com"] * len(spaced)
    # a zero-width space and a word joiner are not whitespace: the address keeps them
    assert run(["al\u200bice@example.com", "al\u2060ice@example.com"], "email") == [
        "al\u200bice@example.com",
        "al\u2060ice@example.com",
    ]


def test_email_gmail_dots_option_is_provider_specific():
    vals = ["J.Doe+promo@gmail.com", "j.doe@other.com"]
    assert run(vals, "email", gmail_dots=True) == ["jdoe@gmail.com", "j.doe@other.com"]
    assert run(vals, "email") == ["j.doe+promo@gmail.com", "j.doe@other.com"]


def test_phone_formats_become_e164_with_default_region():
    vals = ["06 12 34 56 78", "+33 6 12 34 56 78", "0033612345678", "06.12.34.56.78", "12", "abc"]
    out = run(vals, "phone", default_region="FR")
    assert out[:4] == ["+33612345678"] * 4
    assert out[4:] == [pd.NA, pd.NA]


def test_phone_without_region_needs_country_code():
    assert run(["+44 20 7946 0958", "020 7946 0958"], "phone") == ["+442079460958", pd.NA]


def test_name_casefolds_strips_accents_punctuation_and_spaces():
    assert run(["  Zoë   O'Neil ", "JEAN-LUC", "Ñúñez", "...", None], "name") == [
        "zoe oneil",
        "jean luc",
        "nunez",
        pd.NA,
        pd.NA,
    ]


def test_postal_code_and_domain():
    assert run([" 75 011 ", "sw1a-1aa"], "postal_code") == ["75011", "SW1A1AA"]
    assert run(["https://www.Acme.com/path?x", "bob@acme.io", "WWW.shop.fr:8080"], "domain") == [
        "acme.com",
        "acme.io",
        "shop.fr",
    ]


def test_trim_lowercase_none_and_exact():
    assert run([" A1 ", "   "], "trim") == ["A1", pd.NA]
    assert run([" A1 "], "exact") == ["A1"]
    assert run([" AbC "], "lowercase") == ["abc"]
    assert run([" AbC "], "none") == [" AbC "]


def test_unknown_standardizer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown standardizer 'soundex'"):
        run(["x"], "soundex")
    assert "email" in STANDARDIZERS


def _random_phones(n: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        body = "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 11)))
        style = rng.randint(0, 6)
        if style == 0:
            out.append("0" + body[:9])
        elif style == 1:
            out.append("+33 " + body[:9])
        elif style == 2:
            out.append("0033" + body[:9])
        elif style == 3:
            out.append("+44 " + " ".join([body[:4], body[4:]]))
        elif style == 4:
            out.append("+1-" + body[:3] + "-" + body[3:10])
        elif style == 5:
            out.append(".".join([body[i : i + 2] for i in range(0, len(body), 2)]))
        else:
            out.append("+" + body)
    return out


@pytest.mark.parametrize("region", ["FR", "US", "GB", None])
def test_phone_shape_path_equals_phonenumbers_on_every_value(region):
    from identity_pipeline.core.standardize import _e164

    raw = _random_phones(3000, seed=7) + ["+33 (0)6 12 34 56 78", "06 12 34 56 78 ext 12", "0000000000"]
    fast = run(raw, "phone", default_region=region)
    slow = [_e164(v.strip(), region) for v in raw]
    assert [None if x is pd.NA else x for x in fast] == slow
