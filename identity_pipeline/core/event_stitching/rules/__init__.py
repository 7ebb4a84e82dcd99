"""One small module per protection of the spec's per-event decision (see docs/event-stitching.md)."""
