"""Value standardizers shared by both capabilities.

Each takes a pandas Series of raw values and returns a Series of standardized strings, with null where the
value is empty after standardization ("no observation"). Work is vectorised; the per-value libraries
(phonenumbers, unidecode) run once per *distinct* value, never once per row.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import pandas as pd
import phonenumbers
from unidecode import unidecode

STANDARDIZERS = ("none", "trim", "lowercase", "exact", "email", "phone", "name", "postal_code", "domain")


def _text(values: pd.Series) -> pd.Series:
    s = values.astype("string")
    return s.str.strip()


def _null_empty(s: pd.Series) -> pd.Series:
    return s.mask(s.isna() | (s == ""), pd.NA).astype("string")


def _map_distinct(s: pd.Series, fn: Callable[[str], str | None]) -> pd.Series:
    """Apply a scalar function once per distinct non-null value."""
    uniq = s.dropna().unique()
    mapping = {v: fn(v) for v in uniq}
    return s.map(mapping, na_action="ignore").astype("string")


def standardize_none(values: pd.Series) -> pd.Series:
    return _null_empty(values.astype("string"))


def standardize_trim(values: pd.Series) -> pd.Series:
    return _null_empty(_text(values))


def standardize_lowercase(values: pd.Series) -> pd.Series:
    return _null_empty(_text(values).str.lower())


def standardize_email(values: pd.Series, *, gmail_dots: bool = False) -> pd.Series:
    """Trim + lowercase; values without exactly one '@' and a dotted domain are not emails (null).

    `gmail_dots` removes dots and `+tags` in the local part of gmail.com / googlemail.com addresses.
    """
    s = _text(values).str.lower().str.replace(r"\s+", "", regex=True)
    valid = s.str.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", na=False)
    s = s.where(valid, pd.NA)
    if gmail_dots:
        parts = s.str.extract(r"^([^@]+)@(gmail\.com|googlemail\.com)$")
        local = parts[0].str.replace(r"\+.*$", "", regex=True).str.replace(".", "", regex=False)
        s = s.where(parts[0].isna(), local + "@gmail.com")
    return _null_empty(s)


@lru_cache(maxsize=1_000_000)
def _e164(raw: str, region: str | None) -> str | None:
    try:
        num = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def standardize_phone(values: pd.Series, *, default_region: str | None = None) -> pd.Series:
    """E.164 via `phonenumbers`; numbers without a country code use `default_region`. Unparseable -> null."""
    s = _null_empty(_text(values))
    return _null_empty(_map_distinct(s, lambda v: _e164(v, default_region)))


def standardize_name(values: pd.Series) -> pd.Series:
    """Casefold, strip accents (unidecode) and punctuation, collapse spaces: 'Zoë  O'Neil' -> 'zoe oneil'."""
    s = _null_empty(_text(values))
    s = _map_distinct(s, unidecode).str.casefold()
    s = s.str.replace(r"[\'’`]", "", regex=True).str.replace(r"[^\w\s]|_", " ", regex=True)
    return _null_empty(s.str.replace(r"\s+", " ", regex=True).str.strip())


def standardize_postal_code(values: pd.Series) -> pd.Series:
    """Uppercase, no spaces or dashes: ' 75 011 ' -> '75011', 'sw1a 1aa' -> 'SW1A1AA'."""
    return _null_empty(_text(values).str.upper().str.replace(r"[\s\-]", "", regex=True))


def standardize_domain(values: pd.Series) -> pd.Series:
    """Domain of a URL, email or bare host, lowercase, without scheme, `www.`, path or port."""
    s = _text(values).str.lower()
    s = s.str.replace(r"^.*@", "", regex=True).str.replace(r"^[a-z]+://", "", regex=True)
    s = s.str.replace(r"[/:?#].*$", "", regex=True).str.replace(r"^www\.", "", regex=True)
    return _null_empty(s.str.strip("."))


def standardize(values: pd.Series, kind: str, **options: object) -> pd.Series:
    """Dispatch on the standardizer name used in the config (see `STANDARDIZERS`)."""
    if kind in ("none",):
        return standardize_none(values)
    if kind in ("trim", "exact"):
        return standardize_trim(values)
    if kind == "lowercase":
        return standardize_lowercase(values)
    if kind == "email":
        return standardize_email(values, gmail_dots=bool(options.get("gmail_dots", False)))
    if kind == "phone":
        region = options.get("default_region")
        return standardize_phone(values, default_region=str(region) if region else None)
    if kind == "name":
        return standardize_name(values)
    if kind == "postal_code":
        return standardize_postal_code(values)
    if kind == "domain":
        return standardize_domain(values)
    raise ValueError(f"unknown standardizer {kind!r}; expected one of {', '.join(STANDARDIZERS)}")
