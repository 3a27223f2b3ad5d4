-- Upgrades an invoices_finalized table made before periods other than calendar months: the
-- period's bounds (rows stored before hold a month name, YYYY-MM, which the defaults read).
-- (IF NOT EXISTS makes this a no-op on a table that has them.)
ALTER TABLE invoices_finalized
    ADD COLUMN IF NOT EXISTS period_start DateTime64(3, 'UTC') DEFAULT toDateTime64(concat(period, '-01 00:00:00'), 3, 'UTC'),
    ADD COLUMN IF NOT EXISTS period_end DateTime64(3, 'UTC') DEFAULT addMonths(period_start, 1)
