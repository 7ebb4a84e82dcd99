"""The one exception type a user sees for a bad config or bad source layout."""


class ConfigError(ValueError):
    """Raised before anything is written; the message names the file, place, value and what was expected."""
