"""Entry points of the billing service: HTTP API, household web page, Kafka consumers."""
