"""wastetrail_runtime."""
