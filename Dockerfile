# One image for every process of the service: docker-compose.yml runs the API, the
# workers, beat, Flower and the one-shot migration from it with different commands.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    WALLET_DATA_DIR=/data \
    PROMETHEUS_MULTIPROC_DIR=/data/metrics \
    PORT=8000 \
    FLOWER_PORT=5555

WORKDIR /app

# The runtime requirements only: PostgreSQL and Redis are services of their own here, so
# the embedded servers (and the test tools) of requirements-dev.txt stay out of the image.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code belongs to root and is read-only to the service; the service writes only to
# /data (beat's schedule, the metrics of the worker processes).
RUN useradd --system --create-home --uid 10001 wallet \
    && mkdir -p /data/metrics \
    && chown -R wallet:wallet /data
COPY . .
USER wallet

EXPOSE 8000 5555
CMD ["gunicorn", "-c", "gunicorn.conf.py", "api:create_app()"]
