"""Landing the job's committed output in ClickHouse exactly once in effect (the loader), the
ClickHouse access and migrations, and the applied catalog's tables."""
