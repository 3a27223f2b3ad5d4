"""What finance and customers read from ClickHouse: invoices (drafts, finalization, corrections,
settlement), reconciliation, credit balances, quotes and shadow pricing."""
