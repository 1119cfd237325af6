"""Event payloads of every service, grouped by the service that produces them."""
