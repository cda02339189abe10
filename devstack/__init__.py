"""The embedded stack for one machine: broker, PostgreSQL and Redis as child processes."""
