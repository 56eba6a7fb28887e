"""Process orchestration: `python -m stack run` starts the whole service on a fresh machine.

Modules: `embedded` (PostgreSQL and Redis from PyPI wheels), `secrets` (generated
development secrets), `supervisor` (prefixed output, restarts, clean stop), `commands`
(the command line of every process, shared with docker-compose.yml).
"""
