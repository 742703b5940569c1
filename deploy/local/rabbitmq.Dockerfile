# haflow-local/rabbitmq: Debian's RabbitMQ 3.10 with the management plugin, standing in for the
# rabbitmq:3-management image: configuration files in /etc/rabbitmq/conf.d (compose mounts the
# credentials there), data in /var/lib/rabbitmq, logs on the console.
ARG BASE=haflow-local/base
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o rabbitmq -g rabbitmq /etc/rabbitmq/conf.d /var/lib/rabbitmq \
 && rabbitmq-plugins enable --offline rabbitmq_management >/dev/null \
 && chown rabbitmq:rabbitmq /etc/rabbitmq/enabled_plugins
ENV RABBITMQ_LOGS=- RABBITMQ_CONFIG_FILES=/etc/rabbitmq/conf.d HOME=/var/lib/rabbitmq
USER rabbitmq
EXPOSE 5672 15672
CMD ["rabbitmq-server"]
