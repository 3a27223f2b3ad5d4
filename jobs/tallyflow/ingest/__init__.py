"""Getting usage into the pipeline: the producer library and CLI (JSON events in, validated,
Confluent-framed Avro out) and credit grants (top-ups)."""
