-- catalog_applied: one row each time `tallyflow run` or `tallyflow catalog apply` applies a
-- catalog. The catalog in force is the most recently applied digest; older digests stay, so what
-- priced a past invoice is kept. document: the catalog's canonical JSON (`catalog show`).
-- Engine: MergeTree, a small append-only log; ORDER BY applied_at; no partitioning (tiny).
CREATE TABLE IF NOT EXISTS catalog_applied
(
    catalog_digest String,
    applied_at     DateTime64(3, 'UTC'),
    source         String,
    document       String
)
ENGINE = MergeTree
ORDER BY applied_at
