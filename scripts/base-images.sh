#!/usr/bin/env bash
# Builds stand-ins for the public base images (debian:trixie-slim, python:3.13-slim-trixie,
# postgres:17, redis:8) from Debian trixie packages, for sites with no container registry.
# Each image is built only when it is missing and cannot be pulled: re-importing the rootfs
# would give it a new id and invalidate every cached layer above it. With a registry in
# reach this pulls the real images and builds nothing.
set -euo pipefail

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
DEBIAN_IMAGE=${DEBIAN_IMAGE:-debian:trixie-slim}
PYTHON_IMAGE=${PYTHON_BASE_IMAGE:-python:3.13-slim-trixie}
POSTGRES_IMAGE=${POSTGRES_IMAGE:-postgres:17}
REDIS_IMAGE=${REDIS_IMAGE:-redis:8}
HERE=$(cd "$(dirname "$0")/.." && pwd)

log() { printf 'base-images: %s\n' "$*" >&2; }

# usage: image_exists TAG
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# usage: image_available TAG  (present, or pulled now)
image_available() {
	image_exists "$1" && return 0
	if timeout 120 docker pull --quiet "$1" >/dev/null 2>&1; then
		log "pulled $1"
		return 0
	fi
	log "$1 is not present and cannot be pulled; building a stand-in from Debian packages"
	return 1
}

# usage: ensure_debootstrap
ensure_debootstrap() {
	command -v debootstrap >/dev/null 2>&1 && return
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "installing debootstrap"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
		return
	fi
	cat >&2 <<-'MSG'
		base-images: error: debootstrap is missing, and the base images can be neither found nor pulled.
		             fix: install debootstrap (apt-get install debootstrap, as root) and run
		             `make base-images` as root, or make the images in README "Base images" pullable.
	MSG
	exit 1
}

# usage: build_debian_rootfs
# A minbase trixie trimmed like the official slim images: no docs, man pages, locales or apt lists.
build_debian_rootfs() {
	image_exists "$DEBIAN_IMAGE" && return
	ensure_debootstrap
	local rootfs
	rootfs=$(mktemp -d /tmp/rootfs-trixie.XXXXXX)
	trap 'rm -rf "$rootfs"; trap - RETURN' RETURN
	log "debootstrap $SUITE into $rootfs (about a minute)"
	debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >/dev/null
	cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<-'CFG'
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/locale/*
		path-exclude /usr/share/lintian/*
	CFG
	cat > "$rootfs/etc/apt/apt.conf.d/docker-slim" <<-'CFG'
		APT::Install-Recommends "false";
		APT::Install-Suggests "false";
		Acquire::Languages "none";
	CFG
	find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/lib/apt/lists/* \
		"$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
	tar -C "$rootfs" --numeric-owner -c . | docker import \
		--change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$DEBIAN_IMAGE" >/dev/null
	log "imported $DEBIAN_IMAGE"
}

# usage: build_on_debian TAG DIR
build_on_debian() {
	local tag=$1 dir=$2
	image_available "$tag" && return
	build_debian_rootfs
	log "building $tag from $dir"
	docker build --quiet --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t "$tag" "$dir" >/dev/null
}

build_on_debian "$PYTHON_IMAGE" "$HERE/base-images/python"
build_on_debian "$POSTGRES_IMAGE" "$HERE/base-images/postgres"
build_on_debian "$REDIS_IMAGE" "$HERE/base-images/redis"
