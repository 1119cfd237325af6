"""Control of the local infrastructure (Kafka, PostgreSQL, topics) for dev, tests and demo."""
