"""What travels on Kafka: Avro with the Confluent framing (schema ids pinned in schemas/ or from
a registry), the grant records, and the pipeline's topics with their admin calls."""
