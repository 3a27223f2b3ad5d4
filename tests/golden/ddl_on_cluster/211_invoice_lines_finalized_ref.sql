ALTER TABLE invoice_lines_finalized ON CLUSTER `billing`
    ADD COLUMN IF NOT EXISTS ref String DEFAULT '',
    ADD COLUMN IF NOT EXISTS billed_start DateTime64(3, 'UTC')
        DEFAULT toDateTime64(concat(if(corrected_period = '', period, corrected_period), '-01 00:00:00'), 3, 'UTC')
