-- The admin overview lists recent denials and errors, and the audit page filters by outcome:
-- an index on (outcome, seq) keeps both fast on a large log.
CREATE INDEX audit_log_outcome ON audit_log (outcome, seq);
