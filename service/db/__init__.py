"""The database layer, one concern per module:

- pool.py: the asyncpg pool, opened with start-up backoff, and its session settings;
- statements.py: the Executor generated functions run on; timing, metrics, log lines;
- session.py: the Session a handler gets as `conn` (retries, transactions) and the
  dependency that lends its connection and takes it back;
- failures.py: what a database failure means (retry / unavailable / client error).
- replicas.py: read replicas (RAWPOST_REPLICA_URLS): their pools, pollers and lag, which
  requests may read from one, and the Consistency-Token.
"""
