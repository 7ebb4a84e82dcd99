"""The synthetic profile generator: deterministic, sample-shaped, with a usable config and truth."""

from __future__ import annotations

import duckdb
import pandas as pd

from identity_pipeline.config import load_config
from identity_pipeline.core.profile_resolution.pipeline import run_all, validate_sources
from identity_pipeline.generators.profiles import generate, write
from identity_pipeline_tests.profile_resolution_shell.conftest import DATA


def test_deterministic_and_seed_sensitive():
    a_frames, a_truth = generate(3000, seed=3)
    b_frames, b_truth = generate(3000, seed=3)
    c_frames, _ = generate(3000, seed=4)
    for name, df in a_frames.items():
        pd.testing.assert_frame_equal(df, b_frames[name])
    pd.testing.assert_frame_equal(a_truth, b_truth)
    assert not a_frames["crm_contacts"].equals(c_frames["crm_contacts"])


def test_same_columns_as_sample_and_truth_covers_every_row():
    frames, truth = generate(3000, seed=1)
    assert sum(len(df) for df in frames.values()) == 3000 == len(truth)
    for name, df in frames.items():
        sample = pd.read_csv(DATA / "profiles" / f"{name}.csv", nrows=0)
        assert list(df.columns) == list(sample.columns), name
    assert list(truth.columns) == ["source", "record_id", "person_id"]


def test_written_config_validates_and_resolves_well(tmp_path):
    paths = write(4000, tmp_path, seed=2, fmt="csv")
    cfg = load_config(paths["config"])
    con = duckdb.connect(str(tmp_path / "g.duckdb"))
    validate_sources(con, cfg)
    run_all(con, cfg)
    con.execute(f"create table truth as select * from read_csv('{paths['truth']}', all_varchar = true)")
    # pairwise precision/recall on resolved records, by group sizes
    tp, pred, true = con.execute(
        """
        with j as (
            select t.person_id, l.dinmo_id
            from identity_lookup l join truth t using (source, record_id)
        )
        select (select sum(n*(n-1)/2) from (select count(*) n from j group by person_id, dinmo_id)),
               (select sum(n*(n-1)/2) from (select count(*) n from j group by dinmo_id)),
               (select sum(n*(n-1)/2) from (select count(*) n from j group by person_id))
        """
    ).fetchone()
    assert tp / pred > 0.97 and tp / true > 0.9
