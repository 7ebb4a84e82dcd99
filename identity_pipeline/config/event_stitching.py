"""Event Stitching config (placeholder: owned and completed by the Event Stitching work)."""

from identity_pipeline.config.sources import StrictModel


class EventStitchingConfig(StrictModel):
    pass
