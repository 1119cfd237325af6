"""wastetrail_treatment."""
