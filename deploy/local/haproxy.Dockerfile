# haflow-local/haproxy: Debian's haproxy 2.6, standing in for the haproxy:2.6 image: the
# configuration at /usr/local/etc/haproxy/haproxy.cfg, run as the user haproxy.
ARG BASE=haflow-local/base
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* \
 && install -d /usr/local/etc/haproxy
USER haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
