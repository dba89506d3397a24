-- update_idempotency_key: store the response of the request that claimed the key.
-- @returns none
-- @optional-params location
-- :route     the POST route
-- :key       the client's Idempotency-Key header
-- :status    the HTTP status sent
-- :body      the JSON body sent
-- :location  the Location header sent, or NULL
UPDATE idempotency_keys
SET status = :status, body = :body, location = :location
WHERE route = :route
  AND key = :key
