"""wastetrail_transfer."""
