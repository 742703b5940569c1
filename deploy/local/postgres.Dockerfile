# haflow-local/postgres: Debian's PostgreSQL 15, standing in for the postgres:15 image with the
# part of its interface deploy/docker-compose.yml uses: $POSTGRES_USER, $POSTGRES_DB and
# $POSTGRES_PASSWORD_FILE on first start, the data in /var/lib/postgresql/data, pg_isready.
ARG BASE=haflow-local/base
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
COPY postgres-entrypoint /usr/local/bin/
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
CMD ["postgres-entrypoint"]
