"""One module per benchmark phase; each returns a dictionary of figures."""
