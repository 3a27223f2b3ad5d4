"""Running the pipeline: `tallyflow run` (the job and the loader in one process), the local
Kafka broker (`tallyflow stack`)."""
