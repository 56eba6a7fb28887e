"""PostgreSQL: the schema, its migrations, and every query the service runs."""
