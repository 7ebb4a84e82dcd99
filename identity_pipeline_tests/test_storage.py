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
