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


# Python's `\s` (what `str.isspace` calls whitespace), spelled out: with `\s` in a pattern pandas runs the
# regex in Python, value by value, because RE2's `\s` (Arrow's kernels) only knows ASCII whitespace. The same
# characters in a class run in Arrow and mean the same in either engine (test_standardize.py checks the set).
SPACE_CODEPOINTS = (
    *range(0x09, 0x0E), *range(0x1C, 0x21), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
    0x202F, 0x205F, 0x3000,
)  # fmt: skip
_SPACES = "[" + "".join(chr(c) for c in SPACE_CODEPOINTS) + "]+"


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
    s = _text(values).str.lower().str.replace(_SPACES, "", regex=True)
    valid = s.str.fullmatch(r"[^@]+@[^@]+\.[^@]+", na=False)  # no whitespace is left to exclude
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


_PLAIN_PHONE = r"\+?[\d\s.\-/]+"
_SHAPE_PREFIX = 5


def _shape_transform(digits: str, e164: str | None) -> tuple[str, int] | None:
    """Write `e164` as '+' + prefix + digits[k:] with k <= _SHAPE_PREFIX (None if it has no such form)."""
    if e164 is None:
        return None
    out = e164[1:]
    for k in range(0, min(_SHAPE_PREFIX, len(digits)) + 1):
        tail = digits[k:]
        if out.endswith(tail) and len(out) >= len(tail):
            return out[: len(out) - len(tail)], k
    return None


def _phones_by_shape(plain: pd.Series, region: str | None) -> pd.Series:
    """E.164 for plain numbers (digits, spaces, dots, dashes, optional leading '+').

    phonenumbers costs ~90 µs a number, too slow for millions of distinct phones. Numbers of one *shape*
    (leading '+', first five digits, length) are parsed the same way, so two representatives of each shape
    are parsed, the transform (strip a prefix, prepend a country code) is derived from one and checked on
    the other, then applied to the whole shape at once. A shape whose representatives disagree or do not fit
    that form falls back to parsing every value.
    """
    plus = plain.str.startswith("+")
    digits = plain.str.replace(r"\D", "", regex=True)
    frame = pd.DataFrame({"raw": plain, "digits": digits, "plus": plus})
    frame["shape"] = (
        frame["plus"].map({True: "+", False: ""})
        + digits.str[:_SHAPE_PREFIX]
        + "|"
        + (digits.str.len().astype("string"))
    )
    reps = frame.sort_values("digits").groupby("shape", sort=False)["raw"].agg(["first", "last"])
    transforms: dict[str, tuple[str, int] | None] = {}  # shape -> (prefix, k); None = all impossible
    slow_shapes: list[str] = []
    for shape, first, last in reps.itertuples():
        e_first, e_last = _e164(first, region), _e164(last, region)
        if e_first is None and e_last is None:
            transforms[shape] = None  # impossible numbers of this shape stay null
            continue
        tf = _shape_transform(first.lstrip("+"), e_first)
        if tf is None or _shape_transform(last.lstrip("+"), e_last) != tf:
            slow_shapes.append(shape)
        else:
            transforms[shape] = tf
    result = pd.Series(pd.NA, index=plain.index, dtype="string")
    known = {sh: tf for sh, tf in transforms.items() if tf is not None}
    prefix = frame["shape"].map({sh: tf[0] for sh, tf in known.items()})
    cut = frame["shape"].map({sh: tf[1] for sh, tf in known.items()})
    for k in cut.dropna().unique():
        mask = cut == k
        result[mask] = "+" + prefix[mask] + frame.loc[mask, "digits"].str[int(k) :]
    if slow_shapes:
        mask = frame["shape"].isin(slow_shapes)
        result[mask] = _map_distinct(frame.loc[mask, "raw"], lambda v: _e164(v, region))
    return result


def standardize_phone(values: pd.Series, *, default_region: str | None = None) -> pd.Series:
    """E.164 via `phonenumbers`; numbers without a country code use `default_region`. Unparseable -> null.

    Plain numbers go through the verified per-shape path (`_phones_by_shape`), the rest (letters,
    parentheses, extensions) through phonenumbers one distinct value at a time.
    """
    s = _null_empty(_text(values))
    plain_mask = s.str.fullmatch(_PLAIN_PHONE, na=False)
    out = pd.Series(pd.NA, index=s.index, dtype="string")
    if plain_mask.any():
        plain = s[plain_mask]
        compact = plain.str.replace(r"[\s.\-/]", "", regex=True)
        uniq = pd.Series(compact.unique(), dtype="string")
        mapped = _phones_by_shape(uniq, default_region)
        lookup = dict(zip(uniq.tolist(), mapped.tolist(), strict=True))
        out[plain_mask] = compact.map(lookup)
    other = s[~plain_mask & s.notna()]
    if len(other):
        out[other.index] = _map_distinct(other, lambda v: _e164(v, default_region))
    return _null_empty(out)


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
