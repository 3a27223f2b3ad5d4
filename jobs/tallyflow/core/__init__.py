"""Pure billing logic: the catalog and its validation, meter aggregations, pricing, plan
versions and periods, rating and the credit drawdown, event validation. No Flink, Kafka or
ClickHouse here: everything is a function of its arguments, and the stream, the invoice SQL and
`tallyflow quote` are held to it by the shared vectors in tests/vectors/."""
