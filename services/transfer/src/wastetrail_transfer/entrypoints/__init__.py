"""The transfer service's entrypoints: HTTP API and Kafka consumers."""
