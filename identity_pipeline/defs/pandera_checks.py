"""Turn a pandera schema into a Dagster asset check (dagster-pandera is beta and fails steps instead).

The check loads the table (or one window of it), validates lazily, and reports the failure cases as
markdown so a reviewer sees which rows broke which rule.
"""

from collections.abc import Callable

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from dagster_duckdb import DuckDBResource


def validate_frame(df: pd.DataFrame, schema: pa.DataFrameSchema) -> dg.AssetCheckResult:
    """Validate `df` against `schema`; failures become check metadata rather than exceptions."""
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        return dg.AssetCheckResult(
            passed=False,
            metadata={
                "failure_count": len(cases),
                "failure_cases": dg.MetadataValue.md(cases.head(20).to_markdown(index=False)),
            },
        )
    return dg.AssetCheckResult(passed=True, metadata={"rows_validated": len(df)})


def pandera_table_check(
    *,
    asset: "dg.AssetKey | str",
    schema: pa.DataFrameSchema,
    load: Callable[[dg.AssetCheckExecutionContext, DuckDBResource], pd.DataFrame],
    name: str | None = None,
    blocking: bool = True,
) -> dg.AssetChecksDefinition:
    """Asset check `<name>` that validates the frame returned by `load(context, duckdb)` against `schema`."""
    asset_key = dg.AssetKey.from_coercible(asset)
    check_name = name or f"{asset_key.path[-1]}_schema"

    @dg.asset_check(
        asset=asset_key, name=check_name, blocking=blocking, description=f"pandera: {schema.name}"
    )
    def _check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        return validate_frame(load(context, duckdb), schema)

    return _check
