#!/usr/bin/env bash
# Installs a built flashcheck checkout (after `npm ci`) on a gateway, or stages it under --destdir for an
# image or a package. Idempotent: a second run leaves the same files. Never overwrites configuration an
# operator edited.
#
#   deploy/install.sh [--prefix DIR] [--destdir DIR] [--bindir DIR] [--unitdir DIR] [--node PATH]
#                     [--arch x64|arm64] [--no-enable] [--uninstall]
#
#   --prefix   where the package goes (default /opt/flashcheck): package.json, dist/, the production part of
#              node_modules/, the native addon, rules docs, share/ (defaults, drop-ins, broker config, docs, status page, dashboard)
#   --destdir  staging root prepended to every path; nothing outside it is touched and systemctl is not run
#   --bindir   where the `flashcheck` command is linked (default /usr/local/bin)
#   --unitdir  where the unit goes (default /usr/lib/systemd/system; drop-ins belong in /etc/systemd/system)
#   --node     node binary written into the unit and the command wrapper (default: `command -v node`)
#   --arch     platform whose prebuilt binaries in node_modules are kept (default: this machine's)
#   --no-enable  install, but do not enable the unit
#   --uninstall  remove what the installer put down; keeps edited files under /etc/flashcheck, the state in
#              /var/lib/flashcheck and the system user, and says so
#
# /etc/flashcheck/config.json is written only when absent; example rules go to /etc/flashcheck/rules only when
# that directory does not exist yet (a rule an operator deleted stays deleted). When the shipped config
# differs from an existing one, the new default is written next to it as config.json.dist.
set -euo pipefail

src="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/flashcheck
destdir=""
bindir=/usr/local/bin
unitdir=/usr/lib/systemd/system
node=""
arch=""
enable=1
uninstall=0

die() { echo "install.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a DIR}"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --destdir) destdir="${2:?--destdir needs a DIR}"; shift 2 ;;
    --destdir=*) destdir="${1#*=}"; shift ;;
    --bindir) bindir="${2:?--bindir needs a DIR}"; shift 2 ;;
    --unitdir) unitdir="${2:?--unitdir needs a DIR}"; shift 2 ;;
    --node) node="${2:?--node needs a PATH}"; shift 2 ;;
    --arch) arch="${2:?--arch needs x64 or arm64}"; shift 2 ;;
    --no-enable) enable=0; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
case "$prefix" in /*) ;; *) die "--prefix must be absolute: $prefix" ;; esac
[ -z "$destdir" ] || destdir="$(mkdir -p "$destdir" && cd "$destdir" && pwd)"
prefix="${prefix%/}"
[ -n "$prefix" ] || die "--prefix / is not a package directory"

etc=/etc/flashcheck
state=/var/lib/flashcheck
sysusers=/usr/lib/sysusers.d/flashcheck.conf
tmpfiles=/usr/lib/tmpfiles.d/flashcheck.conf
unit="$unitdir/flashcheck.service"
link="$bindir/flashcheck"
D() { printf '%s%s' "$destdir" "$1"; }
# systemctl only for a live install on a machine booted with systemd.
live() { [ -z "$destdir" ] && [ -d /run/systemd/system ]; }
say() { echo "install.sh: $*"; }

# Removes a file under /etc/flashcheck when it is identical to the shipped default; reports it otherwise.
remove_if_default() {
  local target="$1" default="$2"
  [ -e "$(D "$target")" ] || return 0
  if [ -f "$default" ] && cmp -s "$(D "$target")" "$default"; then
    rm -f "$(D "$target")"
  else
    say "kept $target (edited or added locally)"
  fi
}

# The prefix is replaced and removed whole, so it must be flashcheck's own directory: empty, absent, or
# holding a flashcheck package.json. This keeps `--prefix /usr` from deleting /usr/bin.
is_ours() { [ ! -e "$1" ] || [ -z "$(ls -A "$1")" ] || grep -qs '"name": "flashcheck"' "$1/package.json"; }
is_ours "$(D "$prefix")" || die "$prefix exists and holds no flashcheck package; refusing to replace it"

if [ "$uninstall" = 1 ]; then
  if live && systemctl list-unit-files flashcheck.service >/dev/null 2>&1; then
    systemctl disable --now flashcheck.service >/dev/null 2>&1 || true
  fi
  defaults="$(D "$prefix")/share/defaults"
  remove_if_default "$etc/config.json" "$defaults/config.json"
  rm -f "$(D "$etc")/config.json.dist"
  if [ -d "$(D "$etc")/rules" ]; then
    for f in "$(D "$etc")"/rules/* "$(D "$etc")"/rules/.[!.]*; do
      [ -e "$f" ] || continue
      remove_if_default "$etc/rules/$(basename "$f")" "$defaults/rules/$(basename "$f")"
    done
    rmdir "$(D "$etc")/rules" 2>/dev/null || true
  fi
  rmdir "$(D "$etc")" 2>/dev/null || say "kept $etc (holds files the installer did not put there, or edited ones)"
  # Only our own link: a flashcheck command from somewhere else stays.
  if [ -L "$(D "$link")" ] && [ "$(readlink "$(D "$link")")" = "$prefix/bin/flashcheck" ]; then rm -f "$(D "$link")"; fi
  rm -f "$(D "$unit")" "$(D "$sysusers")" "$(D "$tmpfiles")"
  rm -rf "$(D "$prefix")"
  live && systemctl daemon-reload || true
  say "removed $prefix, $unit, $link, $sysusers, $tmpfiles"
  say "kept $state (state and models) and the system user flashcheck; remove them by hand if wanted"
  exit 0
fi

# --- install -------------------------------------------------------------------------------------------------
[ -f "$src/dist/daemon/cli/main.js" ] || die "$src is not built: run npm ci first"
addon="$src/native/build/Release/flashcheck_kernel.node"
[ -f "$addon" ] || die "native addon missing ($addon): run npm ci first"
if [ -z "$node" ]; then node="$(command -v node || true)"; fi
[ -n "$node" ] || die "node not found on PATH; pass --node PATH"
case "$node" in /*) ;; *) die "--node must be an absolute path: $node" ;; esac
if [ -z "$arch" ]; then
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
fi

P="$(D "$prefix")"
mkdir -p "$P"
# The package itself is ours: replace it whole so that files of an older version do not linger.
rm -rf "$P/dist" "$P/node_modules" "$P/native" "$P/rules" "$P/share" "$P/bin"
install -m 0644 "$src/package.json" "$src/package-lock.json" "$src/README.md" "$P/"
mkdir -p "$P/dist"
cp -R "$src/dist/daemon" "$P/dist/daemon"
install -D -m 0755 "$addon" "$P/native/build/Release/flashcheck_kernel.node"
mkdir -p "$P/rules"
cp -R "$src/rules/." "$P/rules/"

# Production dependencies only (no tap, no typescript): the list npm itself resolves from the lockfile.
mkdir -p "$P/node_modules"
(cd "$src" && npm ls --omit=dev --all --parseable 2>/dev/null || true) | while IFS= read -r dir; do
  rel="${dir#"$src"/}"
  case "$rel" in node_modules/*) ;; *) continue ;; esac
  mkdir -p "$P/$(dirname "$rel")"
  [ -e "$P/$rel" ] || cp -R "$dir" "$P/$rel"
done
rm -rf "$P/node_modules/.bin" "$P/node_modules/.package-lock.json"
# Prebuilt binaries for other platforms are dead weight on a gateway (onnxruntime-node ships five).
for napi in "$P"/node_modules/*/bin/napi-v* "$P"/node_modules/@*/*/bin/napi-v*; do
  [ -d "$napi" ] || continue
  for os in "$napi"/*; do
    [ -d "$os" ] || continue
    if [ "$(basename "$os")" != linux ]; then rm -rf "$os"; continue; fi
    for a in "$os"/*; do [ "$(basename "$a")" = "$arch" ] || rm -rf "$a"; done
  done
done

# The command on PATH: a wrapper naming the node binary, so root's PATH need not contain it (nvm installs).
mkdir -p "$P/bin"
printf '#!/bin/sh\nexec %s %s "$@"\n' "$node" "$prefix/dist/daemon/cli/main.js" > "$P/bin/flashcheck"
chmod 0755 "$P/bin/flashcheck"
mkdir -p "$(D "$bindir")"
ln -sfn "$prefix/bin/flashcheck" "$(D "$link")"

# Shipped defaults (what uninstall compares /etc against), drop-in examples, broker config, docs.
install -D -m 0644 "$src/deploy/config.json" "$P/share/defaults/config.json"
mkdir -p "$P/share/defaults/rules" "$P/share/systemd" "$P/share/mosquitto" "$P/share/doc"
install -m 0644 "$src"/rules/examples/*.yaml "$P/share/defaults/rules/"
install -m 0644 "$src/systemd/jetson-gpu.conf" "$src/systemd/cpu-affinity.conf" "$P/share/systemd/"
install -m 0644 "$src"/deploy/mosquitto/* "$P/share/mosquitto/"
install -m 0644 "$src/deploy/README.md" "$src/deploy/JETSON.md" "$P/share/doc/"
# The status page's static files (served from share/view by an installed daemon) and the Grafana dashboard.
install -d "$P/share/view" "$P/share/grafana"
install -m 0644 "$src"/daemon/view/page/* "$P/share/view/"
install -m 0644 "$src/deploy/grafana/flashcheck.json" "$P/share/grafana/"

# systemd: the unit with this prefix and node, the system user, tmpfiles for secrets and state.
install -d "$(D "$unitdir")"
sed -e "s#/opt/flashcheck#$prefix#g" -e "s#/usr/bin/node#$node#g" "$src/systemd/flashcheck.service" > "$(D "$unit").tmp"
chmod 0644 "$(D "$unit").tmp"
mv -f "$(D "$unit").tmp" "$(D "$unit")"
install -D -m 0644 "$src/systemd/flashcheck.sysusers" "$(D "$sysusers")"
install -D -m 0644 "$src/systemd/flashcheck.tmpfiles" "$(D "$tmpfiles")"

# Configuration: written when absent, never overwritten.
install -d -m 0755 "$(D "$etc")"
if [ ! -e "$(D "$etc")/config.json" ]; then
  install -m 0644 "$src/deploy/config.json" "$(D "$etc")/config.json"
  say "wrote $etc/config.json"
elif cmp -s "$(D "$etc")/config.json" "$src/deploy/config.json"; then
  rm -f "$(D "$etc")/config.json.dist"
else
  install -m 0644 "$src/deploy/config.json" "$(D "$etc")/config.json.dist"
  say "kept $etc/config.json (edited); this version's default is in $etc/config.json.dist"
fi
if [ ! -d "$(D "$etc")/rules" ]; then
  install -d -m 0755 "$(D "$etc")/rules"
  install -m 0644 "$src"/rules/examples/*.yaml "$(D "$etc")/rules/"
  say "wrote the example rules to $etc/rules"
fi

if live; then
  systemd-sysusers "$sysusers"
  systemd-tmpfiles --create "$tmpfiles"
  systemctl daemon-reload
  if [ "$enable" = 1 ]; then systemctl enable flashcheck.service >/dev/null 2>&1 && say "enabled flashcheck.service"; fi
fi
say "installed into ${destdir:+$destdir}$prefix"
if [ -z "$destdir" ] && [ ! -e "$etc/mqtt.password" ]; then
  say "next: put the broker password of user flashcheck into $etc/mqtt.password (mode 0640, group flashcheck),"
  say "      run 'flashcheck doctor', then 'systemctl start flashcheck'"
fi
