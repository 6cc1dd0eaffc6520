-- siaga call records, schema 2: the number the caller first dialled (as
-- migrations/sqlite/0002).
--
-- A call that reached siaga retargeted or diverted (a number mapped to 112 by the telco, a
-- call forwarded by another PSAP) names the number first dialled in History-Info (RFC 7044)
-- or Diversion (RFC 5806). NULL when the INVITE carried neither, and for calls recorded
-- before this migration.

ALTER TABLE calls ADD COLUMN original_called TEXT; -- number first dialled, or NULL
