"""wastetrail_contracts."""
