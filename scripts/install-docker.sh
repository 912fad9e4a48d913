#!/usr/bin/env bash
# Installs Docker Engine, the Compose v2 and buildx plugins from Debian trixie on a
# Debian bookworm (or newer) host, then starts dockerd in the background.
# Bookworm's own docker.io (20.10) and docker-compose (v1) are too old for BuildKit
# secrets and `start_interval`, so trixie's packages are pinned low and asked for by name.
# Idempotent: does nothing that is already done.
set -euo pipefail

log() { printf 'install-docker: %s\n' "$*" >&2; }

# usage: have_compose_v2
have_compose_v2() { docker compose version >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1; }

# usage: install_packages
install_packages() {
	if command -v dockerd >/dev/null 2>&1 && have_compose_v2; then
		return
	fi
	if [ "$(id -u)" != 0 ]; then
		log "Docker is missing and installing it needs root: run this script as root, or install Docker Engine >= 25 with the compose and buildx plugins yourself."
		exit 1
	fi
	log "installing docker.io, docker-compose (v2) and docker-buildx from Debian trixie"
	cat > /etc/apt/sources.list.d/trixie.sources <<-'SRC'
		Types: deb
		URIs: http://deb.debian.org/debian
		Suites: trixie
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	SRC
	cat > /etc/apt/preferences.d/trixie-low <<-'PIN'
		Package: *
		Pin: release n=trixie
		Pin-Priority: 100
	PIN
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t trixie \
		docker.io docker-cli docker-compose docker-buildx >/dev/null
}

# usage: start_daemon
start_daemon() {
	if docker info >/dev/null 2>&1; then
		return
	fi
	log "starting dockerd (log: /var/log/dockerd.log)"
	nohup dockerd >/var/log/dockerd.log 2>&1 &
	local deadline=$((SECONDS + 60))
	until docker info >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "dockerd did not answer within 60 s; its log follows"
			tail -n 50 /var/log/dockerd.log >&2 || true
			exit 1
		fi
		sleep 1
	done
}

install_packages
start_daemon
docker version --format 'install-docker: engine {{.Server.Version}}' >&2
docker compose version >&2
