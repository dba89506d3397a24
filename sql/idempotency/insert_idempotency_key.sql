-- insert_idempotency_key: claim a (route, key) for this request, inside its transaction.
-- @returns scalar
-- Returns: the route when the key is new; NULL when the key was already used (a
-- concurrent request with the same key waits here until the first one commits).
-- :route         the POST route, e.g. "POST /api/users"
-- :key           the client's Idempotency-Key header
-- :request_hash  sha256 of the request body
INSERT INTO idempotency_keys (route, key, request_hash)
VALUES (:route, :key, :request_hash)
ON CONFLICT (route, key) DO NOTHING
RETURNING route
