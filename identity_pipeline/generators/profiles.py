"""Deterministic synthetic profile sources with ground truth, at any size (vectorised numpy + pandas).

    python -m identity_pipeline.generators.profiles --records 1000000 --out DIR --seed 7 \
        [--format parquet|csv]

Writes, in DIR: `crm_contacts`, `shop_customers`, `app_users` (same columns as the bundled sample in
`data/profiles/`), `truth.csv` (source, record_id, person_id) and `config.yaml` (same rules as
`data/config.yaml`, guardrails sized for the volume). The same (records, seed) always gives the same files.

Model: ~1 person per 1.7 records. A person has a first/last name, a unique email and mobile phone, a postal
code and a CRM customer number; 6 % of persons live with the previous person (same last name, postal code,
home phone; 10 % of those also share the household email). Each record copies its person through a source
(CRM 45 %, shop 35 %, app 20 %) with noise: email case / spaces / alternative address / missing, phone
formats (06 .., +33 6 .., 0033 .., dots) or missing, first-name typos, accents dropped, upper-case last
names, placeholders (test@test.com, 0000000000, n/a), records without any identifier, null and duplicate
primary keys.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from unidecode import unidecode

SOURCES = ("crm_contacts", "shop_customers", "app_users")
SOURCE_SHARE = (0.45, 0.35, 0.20)
RECORDS_PER_PERSON = 1.7


def _words(text: str) -> list[str]:
    return text.split()


FIRST_NAMES = _words(
    "Marie Jean Pierre Michel Philippe Alain Nathalie Isabelle Sylvie Catherine Françoise Christophe "
    "Stéphane Patrick Nicolas Christine Frédéric Laurent Sandrine Valérie David Éric Julien Céline Sébastien "
    "Thomas Camille Léa Chloé Manon Emma Inès Lucas Hugo Louis Gabriel Arthur Jules Raphaël Léo Adam Maël "
    "Zoé Louise Alice Lina Rose Anna Ambre Juliette Hélène Noémie Agnès Aurélie Mélanie Jérôme Grégoire "
    "Benoît Joël Loïc Gaëlle Anaïs Maëlys Clément Théo Mathéo Timothée Océane Élodie Émilie Amélie "
    "Antoine Baptiste Benjamin Charles Damien Denis Dominique Edouard Fabien Florian Guillaume Henri "
    "Jacques Jonathan Kevin Laurence Lucie Margaux Martine Mathilde Maxime Mickaël Nadia Olivier Pascal "
    "Paul Quentin Romain Sabrina Samuel Simon Sophie Sarah Thierry Vincent Virginie Xavier Yann Yasmine "
    "Yanis Karim Mohamed Fatima Leïla Sofiane Nour Ibrahim Aïcha Mehdi Rayan Salomé Victor Victoire "
    "Jean-Pierre Jean-Luc Marie-Claire Anne-Sophie Paul-Henri"
)
LAST_SYLLABLES_1 = _words(
    "Ber Du Mar Le Ro Fon Gi Mo Bo La Pe Gar Fa Ri Dan Ver Mer Cha Bla Lam Ha Del Bre Lu"
)
LAST_SYLLABLES_2 = _words("nard pont tin roy ux taine rard reau net bert tit cia ure chard ton dier cier let")
LAST_SYLLABLES_3 = ["", "", "", "eau", "ier", "on", "in", "et", "and", "ot", "ès", "elle"]
EMAIL_DOMAINS = np.array(
    ["gmail.com", "orange.fr", "free.fr", "sfr.fr", "hotmail.fr", "laposte.net", "yahoo.fr"]
)
ALT_DOMAINS = np.array(["outlook.com", "wanadoo.fr", "icloud.com", "proton.me"])


def _last_names() -> np.ndarray:
    a, b, c = np.meshgrid(
        np.array(LAST_SYLLABLES_1), np.array(LAST_SYLLABLES_2), np.array(LAST_SYLLABLES_3), indexing="ij"
    )
    names = pd.Series(a.ravel()) + pd.Series(b.ravel()) + pd.Series(c.ravel())
    return names.drop_duplicates().to_numpy(dtype=object)


def _ascii_key(values: np.ndarray) -> np.ndarray:
    return np.array([unidecode(v).lower().replace(" ", "").replace("-", "") for v in values], dtype=object)


def _chain_root(household: np.ndarray) -> np.ndarray:
    """For each person, the first person of its household chain (itself when not a household member)."""
    src = np.arange(len(household))
    hh = np.flatnonzero(household)
    src[hh] = hh - 1
    for _ in range(64):
        nxt = src[src]
        if np.array_equal(nxt, src):
            break
        src = nxt
    return src


def _draw(records: int, seed: int) -> dict[str, pd.DataFrame]:
    """Every random draw (numpy, seeded): persons, records and the small lookup tables, all numeric."""
    rng = np.random.default_rng(seed)
    n = int(records)
    n_persons = max(1, int(round(n / RECORDS_PER_PERSON)))
    first_pool = np.array(FIRST_NAMES, dtype=object)
    last_pool = _last_names()

    first_idx = rng.integers(0, len(first_pool), n_persons)
    last_idx = rng.integers(0, len(last_pool), n_persons)
    postal = rng.integers(1000, 96000, n_persons)
    # unique 8-digit subscriber numbers: an affine permutation of person ids (multiplier coprime to 10^8)
    phone_num = (np.arange(n_persons, dtype=np.int64) * 48_271_003 + int(rng.integers(0, 10**8))) % 10**8
    mobile = np.where(rng.random(n_persons) < 0.7, 6, 7)
    household = rng.random(n_persons) < 0.06
    household[0] = False
    root = _chain_root(household)
    # a household member shares last name, postal code and home phone with the first person of its chain
    last_idx, postal, phone_num, mobile = last_idx[root], postal[root], phone_num[root], mobile[root]
    same_first = household & (first_idx == first_idx[root])
    first_idx[same_first] = (first_idx[same_first] + 7) % len(first_pool)
    shared_email = household & (rng.random(n_persons) < 0.10)
    email_owner = np.where(shared_email, root, np.arange(n_persons))
    persons = pd.DataFrame(
        {
            "pid": np.arange(n_persons, dtype=np.int64),
            "first_idx": first_idx,
            "last_idx": last_idx,
            "postal": postal,
            "phone_num": phone_num,
            "mobile": mobile,
            "email_owner": email_owner,
            "dom": rng.integers(0, len(EMAIL_DOMAINS), n_persons),
            "alt_dom": rng.integers(0, len(ALT_DOMAINS), n_persons),
        }
    )

    person = np.concatenate([np.arange(n_persons), rng.integers(0, n_persons, max(0, n - n_persons))])[:n]
    person = person[rng.permutation(n)]
    u = rng.random((16, n))
    records_df = pd.DataFrame(
        {
            "rec": np.arange(n, dtype=np.int64),
            "person": person,
            "source": rng.choice(3, size=n, p=SOURCE_SHARE),
            "phone_fmt": rng.integers(0, 6, n),
            "ts_a": rng.integers(0, 4 * 365 * 86400, n),
            "ts_b": rng.integers(0, 4 * 365 * 86400, n),
            **{f"u{i}": u[i] for i in range(16)},
        }
    )
    first = pd.DataFrame(
        {
            "idx": np.arange(len(first_pool)),
            "name": first_pool,
            "plain": [unidecode(v) for v in first_pool],
            "key": _ascii_key(first_pool),
        }
    )
    last = pd.DataFrame({"idx": np.arange(len(last_pool)), "name": last_pool, "key": _ascii_key(last_pool)})
    domains = pd.DataFrame({"idx": np.arange(len(EMAIL_DOMAINS)), "domain": EMAIL_DOMAINS})
    alt_domains = pd.DataFrame({"idx": np.arange(len(ALT_DOMAINS)), "domain": ALT_DOMAINS})
    return {
        "_g_persons": persons,
        "_g_records": records_df,
        "_g_first": first,
        "_g_last": last,
        "_g_dom": domains,
        "_g_alt_dom": alt_domains,
    }


# Record-level string building, in DuckDB (vectorised, multi-threaded, deterministic: no randomness in SQL).
_RECORDS_SQL = """
create or replace temp table _g_rows as
with p as (
    select p.pid, p.postal, p.phone_num, p.mobile, f.name as first_name, f.plain as first_plain,
           l.name as last_name,
           ef.key || '.' || el.key || cast(p.email_owner as varchar) || '@' || d.domain as email,
           left(f.key, 1) || l.key || cast(p.pid as varchar) || '@' || ad.domain as alt_email
    from _g_persons p
    join _g_first f on f.idx = p.first_idx
    join _g_last l on l.idx = p.last_idx
    join _g_persons o on o.pid = p.email_owner
    join _g_first ef on ef.idx = o.first_idx
    join _g_last el on el.idx = o.last_idx
    join _g_dom d on d.idx = p.dom
    join _g_alt_dom ad on ad.idx = p.alt_dom
), r0 as (
    select r.*, p.*,
           case when r.u0 < 0.3 then p.first_plain else p.first_name end as fn0,
           '0' || cast(p.mobile as varchar) || lpad(cast(p.phone_num as varchar), 8, '0') as digits,
           case when r.u3 < 0.08 then p.alt_email else p.email end as em0,
           r.u11 < 0.001 as empty_record,
           row_number() over (partition by r.source order by r.rec) as seq
    from _g_records r join p on p.pid = r.person
), r1 as (
    select *,
        -- typo: drop or double one interior character
        case when u1 < 0.04 and length(fn0) >= 3 then (
            case when u13 < 0.5
                 then substr(fn0, 1, 1 + cast(floor(u12 * (length(fn0) - 2)) as integer))
                      || substr(fn0, 3 + cast(floor(u12 * (length(fn0) - 2)) as integer))
                 else substr(fn0, 1, 2 + cast(floor(u12 * (length(fn0) - 2)) as integer))
                      || substr(fn0, 2 + cast(floor(u12 * (length(fn0) - 2)) as integer))
            end) else fn0 end as fn1,
        case when u2 < 0.1 then upper(last_name) else last_name end as ln1,
        case when u4 < 0.08 then upper(em0)
             when u4 < 0.18 then upper(left(em0, 1)) || substr(em0, 2)
             else em0 end as em1,
        substr(digits, 1, 2) as d1, substr(digits, 3, 2) as d2, substr(digits, 5, 2) as d3,
        substr(digits, 7, 2) as d4, substr(digits, 9, 2) as d5,
        lpad(cast(postal as varchar), 5, '0') as pc0
    from r0
)
select rec, person, source, seq, u14, u15, empty_record,
    case when empty_record then '' else fn1 end as first_name,
    case when empty_record then '' else ln1 end as last_name,
    case when empty_record then ''
         when u7 < 0.005 then 'test@test.com'
         when u7 < 0.01 then 'n/a'
         when u6 < [0.05, 0.05, 0.02][source + 1] then ''
         when u5 < 0.05 then ' ' || em1 || ' '
         else em1 end as email,
    case when empty_record then ''
         when u9 < 0.005 then '0000000000'
         when u8 < [0.2, 0.15, 0.4][source + 1] then ''
         when phone_fmt = 0 then digits
         when phone_fmt = 1 then concat_ws(' ', d1, d2, d3, d4, d5)
         when phone_fmt = 2 then concat_ws('.', d1, d2, d3, d4, d5)
         when phone_fmt = 3 then concat_ws(' ', '+33', substr(d1, 2), d2, d3, d4, d5)
         when phone_fmt = 4 then '0033' || substr(digits, 2)
         else '+33' || substr(digits, 2) end as phone,
    case when empty_record then ''
         when u10 < 0.05 then substr(pc0, 1, 2) || ' ' || substr(pc0, 3)
         else pc0 end as postal_code,
    case when empty_record then '' else 'CN-' || lpad(cast(person as varchar), 8, '0') end as customer_number,
    strftime(timestamp '2021-01-01' + to_seconds(least(ts_a, ts_b)), '%Y-%m-%d %H:%M:%S') as created,
    strftime(timestamp '2021-01-01' + to_seconds(greatest(ts_a, ts_b)), '%Y-%m-%d %H:%M:%S') as updated,
    -- primary key noise: duplicate of the previous key, or blank
    case when u15 < 0.0005 and seq > 1 then seq - 1 else seq end as key_seq,
    u15 >= 0.0005 and u15 < 0.001 as null_key
from r1
"""

_KEY_SQL = {
    "crm_contacts": "'C' || lpad(cast(key_seq as varchar), 8, '0')",
    "shop_customers": "cast(10000000 + key_seq as varchar)",
    "app_users": "'U-' || lpad(cast(key_seq as varchar), 8, '0')",
}
_SOURCE_SELECT = {
    "crm_contacts": """{key} as contact_id, email as email_address, phone, first_name, last_name,
        postal_code as zip, customer_number, updated as last_modified""",
    "shop_customers": """{key} as customer_id, email, phone as mobile, first_name as fname,
        last_name as lname, postal_code as postcode,
        case when u14 < 0.3 then customer_number else '' end as crm_customer_number, created, updated""",
    "app_users": """{key} as user_id,
        trim(case when u14 < 0.03 then lower(first_name || ' ' || last_name)
                  when u14 < 0.05 then first_name || '  ' || last_name
                  else first_name || ' ' || last_name end) as full_name,
        email as mail, phone as phone_number, created as signed_up_at""",
}


def _source_sql(name: str) -> str:
    key = f"case when null_key then '' else {_KEY_SQL[name]} end"
    cols = _SOURCE_SELECT[name].format(key=key)
    return f"select {cols} from _g_rows where source = {SOURCES.index(name)} order by seq"


def _truth_sql() -> str:
    parts = [
        f"select '{name}' as source, case when null_key then '' else {_KEY_SQL[name]} end as record_id, "
        f"person as person_id, seq from _g_rows where source = {SOURCES.index(name)}"
        for name in SOURCES
    ]
    return f"select source, record_id, person_id from ({' union all '.join(parts)}) order by source, seq"


def _build(con, records: int, seed: int) -> None:
    for name, df in _draw(records, seed).items():
        con.register(name, df)
    con.execute(_RECORDS_SQL)


def generate(records: int, seed: int = 7) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """(frames per source, truth) in memory for `records` rows in total; deterministic for (records, seed)."""
    import duckdb

    con = duckdb.connect()
    try:
        _build(con, records, seed)
        frames = {name: con.execute(_source_sql(name)).df() for name in SOURCES}
        truth = con.execute(_truth_sql()).df()
    finally:
        con.close()
    return frames, truth


def config_dict(fmt: str, *, duckdb_path: str = "generated.duckdb") -> dict:
    ext = "parquet" if fmt == "parquet" else "csv"
    split_first = "nullif(split_part(trim(full_name), ' ', 1), '')"
    split_last = "nullif(trim(substr(trim(full_name), length(split_part(trim(full_name), ' ', 1)) + 1)), '')"
    return {
        "duckdb_path": duckdb_path,
        "profile_resolution": {
            "sources": [
                {
                    "name": "crm_contacts",
                    "path": f"crm_contacts.{ext}",
                    "primary_key": "contact_id",
                    "priority": 1,
                    "order_by": "updated_at",
                    "fields": {
                        "email": "email_address",
                        "phone": "phone",
                        "first_name": "first_name",
                        "last_name": "last_name",
                        "postal_code": "zip",
                        "customer_number": "customer_number",
                        "updated_at": "last_modified",
                    },
                },
                {
                    "name": "shop_customers",
                    "path": f"shop_customers.{ext}",
                    "primary_key": "customer_id",
                    "priority": 2,
                    "order_by": "updated_at",
                    "fields": {
                        "email": "email",
                        "phone": "mobile",
                        "first_name": "fname",
                        "last_name": "lname",
                        "postal_code": "postcode",
                        "customer_number": "crm_customer_number",
                        "created_at": "created",
                        "updated_at": "updated",
                    },
                },
                {
                    "name": "app_users",
                    "path": f"app_users.{ext}",
                    "primary_key": "user_id",
                    "priority": 3,
                    "order_by": "updated_at",
                    "fields": {
                        "first_name": {"sql": split_first},
                        "last_name": {"sql": split_last},
                        "email": "mail",
                        "phone": "phone_number",
                        "updated_at": "signed_up_at",
                    },
                },
            ],
            "identifiers": {
                "email": {
                    "standardizer": "email",
                    "blocked_values": ["test@test.com", "noemail@noemail.com"],
                    "blocked_patterns": ["^noreply@", "^no-reply@"],
                    "max_records_per_value": 50,
                },
                "phone": {
                    "standardizer": "phone",
                    "default_region": "FR",
                    "blocked_values": ["0000000000"],
                    "max_records_per_value": 50,
                },
                "customer_number": {"standardizer": "exact", "max_values_per_profile": 1},
                "first_name": {"standardizer": "name"},
                "last_name": {"standardizer": "name"},
                "postal_code": {"standardizer": "postal_code"},
            },
            "rules": [
                {"name": "same_email", "conditions": [{"exact": "email"}]},
                {"name": "same_customer_number", "conditions": [{"exact": "customer_number"}]},
                {
                    "name": "phone_and_first_name",
                    "conditions": [
                        {"exact": "phone"},
                        {"fuzzy": {"field": "first_name", "scorer": "jaro_winkler", "threshold": 0.9}},
                    ],
                },
                {
                    "name": "name_and_postal_code",
                    "conditions": [
                        {"exact": "last_name"},
                        {"exact": "postal_code"},
                        {"fuzzy": {"field": "first_name", "scorer": "jaro_winkler", "threshold": 0.92}},
                    ],
                },
            ],
            "max_cluster_size": 50,
            "golden_record": {
                "default_strategy": "source_priority",
                "fields": {
                    "email": "most_recent",
                    "phone": "most_recent",
                    "first_name": "most_frequent",
                    "created_at": "first_non_null",
                },
            },
        },
    }


def write(records: int, out: str | Path, seed: int = 7, fmt: str = "parquet") -> dict[str, Path]:
    """Generate and write the three sources, `truth.csv` and `config.yaml` into `out`; returns the paths."""
    import duckdb

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    ext = "parquet" if fmt == "parquet" else "csv"
    opts = "(format parquet, compression zstd)" if fmt == "parquet" else "(header, delimiter ',')"
    con = duckdb.connect()
    try:
        _build(con, records, seed)
        for name in SOURCES:
            paths[name] = out / f"{name}.{ext}"
            con.execute(f"copy ({_source_sql(name)}) to '{paths[name]}' {opts}")
        paths["truth"] = out / "truth.csv"
        con.execute(f"copy ({_truth_sql()}) to '{paths['truth']}' (header, delimiter ',')")
    finally:
        con.close()
    paths["config"] = out / "config.yaml"
    header = (
        f"# generated by identity_pipeline.generators.profiles --records {records} --seed {seed} "
        f"--format {fmt}\n"
    )
    paths["config"].write_text(header + yaml.safe_dump(config_dict(fmt), sort_keys=False, allow_unicode=True))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="total records across the 3 sources")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    paths = write(args.records, args.out, args.seed, args.format)
    print(f"wrote {args.records} records to {Path(args.out).resolve()} in {time.perf_counter() - t0:.1f}s")
    for k, p in paths.items():
        print(f"  {k}: {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
