-- get_idempotency_key: the stored outcome of an earlier request with this key.
-- @returns one
-- :route  the POST route
-- :key    the client's Idempotency-Key header
SELECT k.request_hash, k.status, k.body, k.location
FROM idempotency_keys AS k
WHERE k.route = :route
  AND k.key = :key
