#!/bin/sh
# Generate the secret files deploy/docker-compose.yml reads, with fresh random values.
#
#   deploy/make-secrets.sh [DIR]      DIR defaults to deploy/secrets; existing files are kept
#
# Then `export HAFLOW_SECRETS_DIR=DIR` if DIR is not deploy/secrets. Passwords are hex so they
# need no escaping inside the URLs. Compose bind-mounts each file into the containers with the
# host file's mode, and the containers run as other users (haflow uid 10001, postgres, rabbitmq),
# so the files are 0644 inside a 0700 directory: other host users cannot reach them.
set -eu

dir=${1:-$(dirname "$0")/secrets}
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

write() {  # write NAME VALUE: create $dir/NAME unless it exists
    if [ -e "$dir/$1" ]; then
        echo "kept      $dir/$1"
        return
    fi
    printf '%s\n' "$2" > "$dir/$1"
    chmod 0644 "$dir/$1"
    echo "generated $dir/$1"
}

# The URL files embed the passwords: reuse existing passwords so the files stay consistent.
pg_password=$(cat "$dir/postgres_password" 2>/dev/null || random_hex 24)
mq_password=$(sed -n 's/^default_pass *= *//p' "$dir/rabbitmq.conf" 2>/dev/null || true)
[ -n "$mq_password" ] || mq_password=$(random_hex 24)

write postgres_password "$pg_password"
write sql_alchemy_conn "postgresql://haflow:$pg_password@postgres:5432/haflow"
write rabbitmq.conf "$(printf 'default_user = haflow\ndefault_pass = %s' "$mq_password")"
write broker_url "amqp://haflow:$mq_password@rabbitmq:5672//"
# deploy/compose.ha.yml: the metastore's Patroni members in one libpq multi-host URL (libpq
# connects to the one accepting writes), and every RabbitMQ node as Celery's failover list.
write sql_alchemy_conn.ha \
    "postgresql://haflow:$pg_password@/haflow?host=postgres:5432&host=postgres2:5432&target_session_attrs=read-write"
write broker_url.ha "$(for n in rabbitmq rabbitmq2 rabbitmq3; do
    printf 'amqp://haflow:%s@%s:5672//;' "$mq_password" "$n"; done | sed 's/;$//')"
# The RabbitMQ nodes' shared Erlang cookie (deploy/compose.ha.yml): what lets them cluster.
write erlang_cookie "$(random_hex 20)"
write secret_key "$(random_hex 32)"
# A Fernet key: 32 random bytes, url-safe base64.
write fernet_key "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_')"
write admin_password "$(random_hex 12)"
write grafana_admin_password "$(random_hex 12)"
# ZooKeeper digest credentials: haflow's election and worker nodes get an ACL for this user.
write zk_auth "haflow:$(random_hex 16)"

# haproxy's TLS certificate and key in one PEM file (its format): self-signed for the names in
# HAFLOW_TLS_NAMES (default localhost, and 127.0.0.1); replace it with your CA's certificate.
if [ -e "$dir/tls.pem" ]; then
    echo "kept      $dir/tls.pem"
else
    names=${HAFLOW_TLS_NAMES:-localhost}
    san="IP:127.0.0.1"
    for n in $(echo "$names" | tr ',' ' '); do san="$san,DNS:$n"; done
    tmp=$(mktemp -d)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
        -subj "/CN=$(echo "$names" | cut -d, -f1)/O=haflow" -addext "subjectAltName=$san" \
        -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
    cat "$tmp/cert.pem" "$tmp/key.pem" > "$dir/tls.pem"
    rm -rf "$tmp"
    chmod 0644 "$dir/tls.pem"
    echo "generated $dir/tls.pem (self-signed for $names)"
fi
