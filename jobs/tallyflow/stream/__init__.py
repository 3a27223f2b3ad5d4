"""The Flink job: the environment, the Kafka tables, the job graph (decode, dedup, lateness,
windows, rating, credit drawdown), the Python operator functions it runs per window or per
micro-batch, and the checkpoints a run continues from. The per-event work is in jobs/jvm."""
