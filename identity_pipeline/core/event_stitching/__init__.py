"""Event Stitching engine: events -> event profile graph, following docs/event-stitching.md.

Pure Python/pandas, no Dagster: `observations.extract_observations`, `engine.stitch_window`,
`state.GraphState`. Persistence lives in `store/`.
"""
