"""tallyflow: usage-based billing on Kafka, PyFlink and ClickHouse."""

__version__ = "0.1.0"
