"""Query: the read API over Redis rankings, with PostgreSQL as the fallback."""
