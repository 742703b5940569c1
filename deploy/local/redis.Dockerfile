# haflow-local/redis: Debian's Redis 7.0, for a Redis broker ([celery] broker_url redis://...;
# the chaos harness's clusters use it). The compose cluster uses RabbitMQ and does not need it.
ARG BASE=haflow-local/base
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/var/lib/redis"]
