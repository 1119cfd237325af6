"""WasteTrail command line and developer tooling."""
