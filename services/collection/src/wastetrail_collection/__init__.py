"""wastetrail_collection."""
