-- Upgrades an invoice_lines_finalized table made before discounts, taxes and periods other than
-- calendar months: the coupon or tax a line is ('' for the others), and the start of the period
-- a line belongs to or corrects (rows stored before name a month, YYYY-MM, which the default reads).
-- (IF NOT EXISTS makes this a no-op on a table that has them.)
ALTER TABLE invoice_lines_finalized
    ADD COLUMN IF NOT EXISTS ref String DEFAULT '',
    ADD COLUMN IF NOT EXISTS billed_start DateTime64(3, 'UTC')
        DEFAULT toDateTime64(concat(if(corrected_period = '', period, corrected_period), '-01 00:00:00'), 3, 'UTC')
