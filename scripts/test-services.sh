#!/usr/bin/env bash
# Make sure the servers the integration tests need are installed and running on 127.0.0.1.
# Installs with apt when root and a server is missing; starts a stopped one. Bounded in time.
set -uo pipefail

log() { echo "[services] $*"; }
as_root() { [ "$(id -u)" = 0 ]; }
apt_install() {
  as_root || { log "not root: cannot install $*"; return 1; }
  [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq >/dev/null && APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
wait_for() {  # wait_for NAME CMD...: up to 30 s
  local name=$1; shift
  for _ in $(seq 60); do "$@" >/dev/null 2>&1 && { log "$name is up"; return 0; }; sleep 0.5; done
  log "$name did not come up"; return 1
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }
if ! command -v pg_isready >/dev/null; then apt_install postgresql; fi
if ! pg_up; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
fi
wait_for PostgreSQL pg_up

my_up() { mariadb -h 127.0.0.1 -u root -e 'select 1' >/dev/null 2>&1; }
if ! command -v mariadbd >/dev/null; then apt_install mariadb-server mariadb-client; fi
if ! my_up; then
  log "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
wait_for MariaDB my_up

# ZooKeeper: only the Debian package is needed; tests run their own ensemble (tests/zkensemble.py),
# so a system service the package may have started is stopped again.
zk_installed() { [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null; }
if ! zk_installed; then
  log "installing ZooKeeper (package only, no service)"
  apt_install zookeeper
  if command -v systemctl >/dev/null && systemctl is-active --quiet zookeeper 2>/dev/null; then
    systemctl disable --now zookeeper >/dev/null 2>&1 || true
  fi
  service zookeeper stop >/dev/null 2>&1 || true
fi
zk_installed && log "ZooKeeper package is installed" || log "ZooKeeper package is missing"

redis_up() { redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; }
if ! command -v redis-server >/dev/null; then apt_install redis-server redis-tools; fi
if ! redis_up; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
wait_for Redis redis_up

rabbit_up() { rabbitmqctl -q status >/dev/null 2>&1; }
if ! command -v rabbitmq-server >/dev/null; then apt_install rabbitmq-server; fi
if ! rabbit_up; then
  log "starting RabbitMQ"
  rabbitmq-server -detached || true
  for _ in $(seq 60); do rabbit_up && break; sleep 1; done
fi
wait_for RabbitMQ rabbit_up

# Tools the tests drive (no service of their own): headless Chromium for the browser tests,
# haproxy in front of webservers, Prometheus and promtool, and the validators of deploy/.
need_pkgs=()
command -v chromium >/dev/null || need_pkgs+=(chromium)
command -v haproxy >/dev/null || need_pkgs+=(haproxy)
command -v promtool >/dev/null || need_pkgs+=(prometheus)
command -v docker-compose >/dev/null || need_pkgs+=(docker-compose)
command -v systemd-analyze >/dev/null || need_pkgs+=(systemd)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt_install "${need_pkgs[@]}" || log "could not install ${need_pkgs[*]}"
fi
# The Debian packages may start their own daemons; the tests start their own instances.
for svc in haproxy prometheus; do service "$svc" stop >/dev/null 2>&1 || true; done
exit 0
