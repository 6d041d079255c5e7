#!/usr/bin/env bash
# Builds the container images the compose recipe and the container tests run,
# from what is already on this machine: no registry is needed, nothing is
# pulled or downloaded.
#
#   images/build.sh --envoy BIN --native SO --cli BIN [--out DIR]
#
#   base    the machine's own bash, dash, coreutils, grep, sed and the shared
#           libraries `ldd` says they need, on an empty file system
#           (`docker import` of a tar: no FROM image to pull)
#   envoy   base + the pinned Envoy binary, mesh-audit's native module (`make
#           native`) at /usr/local/lib/mesh-audit/libmesh_audit.so, and the
#           libraries both need
#   sink    the runtime stage of examples/docker-compose/Dockerfile.sink on
#           base, plus the natively built `mesh-audit` CLI
#   client  base + curl and openssl and their libraries (workload traffic,
#           the one-shot PKI step)
#
# Each image is tagged mesh-audit-local/<name>:<hash of everything it is made
# of>; an image whose tag exists is not rebuilt. DIR/images.env names the
# tags in the variables docker-compose.yaml reads.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
envoy_bin= native_so= cli_bin= out=$root/target/images
while (($#)); do
  case $1 in
    --envoy) envoy_bin=$2; shift 2 ;;
    --native) native_so=$2; shift 2 ;;
    --cli) cli_bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "images/build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for bin in "$envoy_bin" "$native_so" "$cli_bin"; do
  [[ -n $bin && -x $bin ]] || { echo "images/build.sh: usage: --envoy BIN --native SO --cli BIN (got '$bin')" >&2; exit 2; }
done
envoy_bin=$(readlink -f "$envoy_bin")
native_so=$(readlink -f "$native_so")
cli_bin=$(readlink -f "$cli_bin")
# Docker 23+ clients default to BuildKit through buildx, which Debian's engine
# packages lack; the classic builder needs nothing beyond the engine.
export DOCKER_BUILDKIT=0

mkdir -p "$out"
stage=$(mktemp -d "$out/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Copies each program and every library ldd resolves for it into DIR, at the
# same paths (symlinks resolved, so the tree holds plain files).
# Paths under /bin, /lib, /lib64 and /sbin go under /usr: the base has
# Debian's merged /usr, where those four are links.
with_libraries() { # DIR PROGRAM...
  local dir=$1 file lib
  shift
  for file in "$@"; do
    install -D -m 755 "$(readlink -f "$file")" "$dir$(usr_path "$file")"
    # A static program has no libraries: ldd says so and fails.
    for lib in $(ldd "$file" 2>/dev/null | grep -o '/[^ )]*' || true); do
      lib=$(usr_path "$lib")
      # The mode is kept: the dynamic loader must stay executable.
      [[ -e $dir$lib ]] || install -D -m "$(stat -L -c %a "$lib")" "$(readlink -f "$lib")" "$dir$lib"
    done
  done
}

# PROGRAM and its libraries into DIR, the program itself as DIR/DEST.
program_at() { # DIR PROGRAM DEST
  with_libraries "$1" "$2"
  install -D -m 755 "$1$(usr_path "$2")" "$1$3"
  rm "$1$(usr_path "$2")"
  find "$1" -depth -type d -empty -delete
}

usr_path() { # PATH
  case $1 in
    /bin/* | /lib/* | /lib64/* | /sbin/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}

# The hash of a tree: every path, mode and content.
tree_hash() { # DIR
  (cd "$1" && find . -print0 | LC_ALL=C sort -z | xargs -0 stat -c '%n %a %F' && \
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

have() { docker image inspect "$1" >/dev/null 2>&1; }

report() { # NAME TAG HOW
  printf '%-7s %s (%s)\n' "$1" "$2" "$3"
}

# --- base -----------------------------------------------------------------
base=$stage/base
mkdir -p "$base"/{etc,tmp,root,usr/local/bin}
chmod 1777 "$base/tmp"
tools=(/usr/bin/bash /usr/bin/dash /usr/bin/cat /usr/bin/ls /usr/bin/mkdir /usr/bin/chown
  /usr/bin/chmod /usr/bin/sleep /usr/bin/env /usr/bin/id /usr/bin/rm /usr/bin/mv /usr/bin/cp
  /usr/bin/tr /usr/bin/od /usr/bin/mktemp /usr/bin/dirname /usr/bin/touch /usr/bin/grep
  /usr/bin/sed /usr/bin/head /usr/bin/tail /usr/bin/wc /usr/bin/date /usr/bin/test
  /usr/bin/true /usr/bin/false /usr/bin/ln /usr/bin/stat /usr/bin/sort /usr/bin/cut)
with_libraries "$base" "${tools[@]}"
for d in bin lib lib64 sbin; do
  mkdir -p "$base/usr/$d"
  ln -s "usr/$d" "$base/$d"
done
ln -s dash "$base/usr/bin/sh"
printf '%s\n' 'root:x:0:0:root:/root:/bin/bash' 'envoy:x:101:101::/nonexistent:/usr/sbin/nologin' \
  'mesh-audit:x:10001:10001::/data:/usr/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' \
  >"$base/etc/passwd"
printf '%s\n' 'root:x:0:' 'envoy:x:101:' 'mesh-audit:x:10001:' 'nogroup:x:65534:' >"$base/etc/group"
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$base/etc/nsswitch.conf"
base_tag=mesh-audit-local/base:$( { tree_hash "$base"; sha256sum <"$0"; } | sha256sum | cut -c1-16)
if have "$base_tag"; then
  report base "$base_tag" cached
else
  tar --numeric-owner --owner=0 --group=0 -C "$base" -c . |
    docker import --change 'ENV PATH=/usr/local/bin:/usr/bin' --change 'CMD ["/bin/bash"]' - "$base_tag" >/dev/null
  report base "$base_tag" built
fi

# Builds NAME from DOCKERFILE with CONTEXT on base, unless its tag exists.
# The tag hashes the context, the Dockerfile, the base and this script.
image() { # NAME CONTEXT DOCKERFILE [BUILD-ARGS...]
  local name=$1 context=$2 dockerfile=$3 tag
  shift 3
  tag=mesh-audit-local/$name:$( { tree_hash "$context"; sha256sum <"$dockerfile"; echo "$base_tag $*"; sha256sum <"$0"; } | sha256sum | cut -c1-16)
  if have "$tag"; then
    report "$name" "$tag" cached
  else
    if ! docker build --force-rm --build-arg "BASE=$base_tag" "$@" -f "$dockerfile" -t "$tag" "$context" >"$stage/$name.log" 2>&1; then
      cat "$stage/$name.log" >&2
      echo "images/build.sh: building $name failed" >&2
      exit 1
    fi
    report "$name" "$tag" built
  fi
  printf -v "${name//-/_}_tag" '%s' "$tag"
}

# --- envoy ----------------------------------------------------------------
program_at "$stage/envoy/root" "$envoy_bin" /usr/local/bin/envoy
# Where ENVOY_DYNAMIC_MODULES_SEARCH_PATH finds it as `name: mesh_audit`.
program_at "$stage/envoy/root" "$native_so" /usr/local/lib/mesh-audit/libmesh_audit.so
image envoy "$stage/envoy" "$here/envoy.Dockerfile"

# --- client ---------------------------------------------------------------
mkdir -p "$stage/client/root"
with_libraries "$stage/client/root" /usr/bin/curl /usr/bin/openssl
# `openssl req` reads the default configuration from OPENSSLDIR.
install -D -m 644 /etc/ssl/openssl.cnf "$stage/client/root/etc/ssl/openssl.cnf"
mkdir -p "$stage/client/root/usr/lib/ssl"
ln -s /etc/ssl/openssl.cnf "$stage/client/root/usr/lib/ssl/openssl.cnf"
image client "$stage/client" "$here/client.Dockerfile"

# --- sink -----------------------------------------------------------------
# The shipped Dockerfile's runtime stage (user, volume, entrypoint) on base,
# then the CLI built on this machine: no crate is fetched inside a container.
mkdir -p "$stage/sink-runtime" "$stage/sink"
image sink-runtime "$stage/sink-runtime" "$root/examples/docker-compose/Dockerfile.sink" \
  --build-arg "RUNTIME=$base_tag" --target runtime
program_at "$stage/sink/root" "$cli_bin" /usr/local/bin/mesh-audit
base_tag=$sink_runtime_tag image sink "$stage/sink" "$here/sink.Dockerfile"

# Older builds of these images are of no further use.
for name in base envoy client sink-runtime sink; do
  var=${name//-/_}_tag
  current=${!var}
  docker images "mesh-audit-local/$name" --format '{{.Repository}}:{{.Tag}}' | grep -vxF "$current" |
    xargs -r docker rmi >/dev/null 2>&1 || true
done

cat >"$out/images.env" <<ENV
# Written by images/build.sh: the locally built images, for docker-compose.yaml.
MESH_AUDIT_ENVOY_IMAGE=$envoy_tag
MESH_AUDIT_SINK_IMAGE=$sink_tag
MESH_AUDIT_CLIENT_IMAGE=$client_tag
ENV
echo "images.env: $out/images.env"
