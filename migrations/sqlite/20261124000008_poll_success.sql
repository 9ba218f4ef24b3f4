-- When each poll flow last read its source successfully: what its poll lag is measured from.
ALTER TABLE poll_state ADD COLUMN last_succeeded_at INTEGER;
UPDATE poll_state SET last_succeeded_at = last_polled_at WHERE failures = 0;
