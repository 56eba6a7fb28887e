# PostgreSQL 15 with pg_auto_failover 2.0, for docker-compose.ha.yml: the monitor and the
# nodes all run this image (pg_autoctl supervises PostgreSQL inside the container).
# The official image already has the PGDG apt repository that ships the extension.
FROM postgres:15
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15-auto-failover \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data/pgdata \
    XDG_CONFIG_HOME=/var/lib/postgresql/data/config \
    XDG_DATA_HOME=/var/lib/postgresql/data/share
USER postgres
WORKDIR /var/lib/postgresql
