"""Profile Resolution config (placeholder: owned and completed by the Profile Resolution work)."""

from identity_pipeline.config.sources import StrictModel


class ProfileResolutionConfig(StrictModel):
    pass
