# haflow-local/prometheus: Debian's Prometheus 2.42, standing in for the prom/prometheus image:
# the configuration at /etc/prometheus/prometheus.yml, data in /prometheus, wget for the health
# check.
ARG BASE=haflow-local/base
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o prometheus -g prometheus /prometheus
USER prometheus
EXPOSE 9090
CMD ["prometheus", "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
