"""Publishing is all-or-nothing: a failure while replacing tables leaves the old tables as they were."""

import duckdb
import pandas as pd
import pytest

from identity_pipeline.core.storage import replace_tables, table_exists


def test_replace_tables_is_atomic():
    con = duckdb.connect()
    replace_tables(con, {"a": pd.DataFrame({"x": [1, 2]}), "s.b": "select 42 as y"})
    assert table_exists(con, "a") and table_exists(con, "b", schema="s")
    with pytest.raises(duckdb.Error):
        replace_tables(con, {"a": pd.DataFrame({"x": [9]}), "s.b": "select * from missing_table"})
    assert con.execute("select list(x order by x) from a").fetchone()[0] == [1, 2]
    assert con.execute("select y from s.b").fetchone()[0] == 42


def test_read_frame_gives_the_dtypes_and_values_of_df():
    import duckdb
    import pandas as pd

    from identity_pipeline.core.storage import read_frame

    con = duckdb.connect()
    sql = (
        "select * from (values (true, 1::INT, 2::BIGINT, 'a', timestamp '2026-11-01 10:00:00', 1.5), "
        "(NULL, NULL, NULL, NULL, NULL, NULL)) t(b, i, j, s, ts, f)"
    )
    for q in (sql, sql + " where b", sql + " limit 0"):
        pd.testing.assert_frame_equal(read_frame(con, q), con.execute(q).df())
    assert read_frame(con, "select ?::INT as x", [7])["x"].tolist() == [7]
