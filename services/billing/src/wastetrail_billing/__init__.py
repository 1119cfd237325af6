"""wastetrail_billing."""
