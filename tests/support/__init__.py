"""Real processes, a real PostgreSQL of a test's own and real sockets, for the system tests
and the fault tests (loopback only)."""
