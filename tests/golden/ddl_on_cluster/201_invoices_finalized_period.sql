ALTER TABLE invoices_finalized ON CLUSTER `billing`
    ADD COLUMN IF NOT EXISTS period_start DateTime64(3, 'UTC') DEFAULT toDateTime64(concat(period, '-01 00:00:00'), 3, 'UTC'),
    ADD COLUMN IF NOT EXISTS period_end DateTime64(3, 'UTC') DEFAULT addMonths(period_start, 1)
