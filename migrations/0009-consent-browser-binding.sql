-- consents.browser_hash: SHA-256 of the random browser id (the `__Host-mcp-browser` cookie) of
-- the browser that clicked Approve (CONS-02, CONS-16). A remembered consent skips the page only
-- in that browser (src/flow/4-consent.ts). Rows written before this migration have NULL: they
-- never skip the page, so the first authorization after the upgrade asks once more.
ALTER TABLE consents ADD COLUMN browser_hash TEXT;
