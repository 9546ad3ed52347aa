"""Auto-tagging: heads, calibration, validation, the report, and tag suggestions."""
