"""wastetrail_audit."""
