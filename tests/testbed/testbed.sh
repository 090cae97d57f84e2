#!/usr/bin/env bash
# rcompose image test bed: small real OCI images built from Debian packages (no docker),
# served by Debian's docker-registry on loopback. See README.md next to this file.
set -euo pipefail
umask 022

# Bump a layer's version when its recipe below changes: that layer (and every image using
# it) is rebuilt on the next `build`. IMAGES_VERSION covers image configs and tags.
RECIPE_VERSION=1
declare -A LAYER_VERSION=([busybox]=1 [alpine]=1 [nginx]=1 [debian]=1 [redis]=1 [python]=1)
IMAGES_VERSION=1

export SOURCE_DATE_EPOCH=1700000000
SUITE=bookworm
CACHE=${RCOMPOSE_TESTBED:-/var/cache/rcompose-testbed}
PORT=${RCOMPOSE_TESTBED_PORT:-5043}
AUTH_PORT=$((PORT + 1))
AUTH_USER=rcompose
AUTH_PASSWORD=testbed
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OCI_PY="$HERE/oci.py"
# The Debian python, not whatever a version manager put first on PATH.
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=python3

PATH_ENV=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PACKAGES=(busybox-static debootstrap docker-registry skopeo apache2-utils curl python3 util-linux nftables iproute2)
MT_ACCEPT="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.docker.distribution.manifest.v2+json"

# name|tag|layers (comma separated)|index (1: tag points at an OCI index)|config JSON
IMAGES=(
    "busybox|latest|busybox|0|{\"Env\":[\"PATH=$PATH_ENV\"],\"Cmd\":[\"sh\"]}"
    "alpine|latest|busybox,alpine|0|{\"Env\":[\"PATH=$PATH_ENV\"],\"Cmd\":[\"/bin/sh\"]}"
    "alpine|3|busybox,alpine|1|{\"Env\":[\"PATH=$PATH_ENV\"],\"Cmd\":[\"/bin/sh\"]}"
    "nginx|alpine|busybox,alpine,nginx|0|{\"Env\":[\"PATH=$PATH_ENV\"],\"Cmd\":[\"httpd\",\"-f\",\"-v\",\"-p\",\"80\",\"-h\",\"/usr/share/nginx/html\"],\"ExposedPorts\":{\"80/tcp\":{}},\"WorkingDir\":\"/usr/share/nginx/html\"}"
    "debian|bookworm|debian|0|{\"Env\":[\"PATH=$PATH_ENV\",\"LANG=C.UTF-8\"],\"Cmd\":[\"bash\"]}"
    "redis|7|debian,redis|0|{\"Env\":[\"PATH=$PATH_ENV\",\"LANG=C.UTF-8\"],\"Cmd\":[\"redis-server\",\"--protected-mode\",\"no\"],\"ExposedPorts\":{\"6379/tcp\":{}},\"WorkingDir\":\"/data\",\"Volumes\":{\"/data\":{}}}"
    "python|3|debian,python|1|{\"Env\":[\"PATH=$PATH_ENV\",\"LANG=C.UTF-8\"],\"Cmd\":[\"python3\"]}"
)

log() { printf 'testbed: %s\n' "$*" >&2; }
die() {
    printf 'testbed: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<EOF
usage: $0 COMMAND

  install   apt-get install the tools the test bed needs (only missing ones)
  build     build the OCI image layouts into \$RCOMPOSE_TESTBED (default /var/cache/rcompose-testbed)
  serve     start registries on 127.0.0.1:$PORT (open) and 127.0.0.1:$AUTH_PORT (basic auth
            $AUTH_USER/$AUTH_PASSWORD), push every image, write registries.conf and auth.json
  env       print export lines for eval: CONTAINERS_REGISTRIES_CONF, RCOMPOSE_TESTBED_*
  tars      export every image as a rootfs tar, an OCI archive and a docker archive
  status    registries and images
  stop      stop the registries started by serve
  all       install + build + serve
EOF
}

need_root() { [[ $EUID -eq 0 ]] || die "$1 needs root"; }

# Serialises concurrent runs sharing one cache (several test suites on one machine).
lock_cache() {
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
}

cmd_install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        log "all packages present"
        return
    fi
    need_root "installing ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

require_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || die "$t not found; run: $0 install"
    done
}

# The Debian mirror the machine already uses for $SUITE (deb822 or one-line sources).
find_mirror() {
    if [[ -n ${RCOMPOSE_TESTBED_MIRROR:-} ]]; then
        echo "$RCOMPOSE_TESTBED_MIRROR"
        return
    fi
    local found="" f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f && -z $found ]] || continue
        found=$(awk -v s="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
            { uri = ""; ok = 0
              for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/) { split($i, a, " "); uri = a[2] }
                if ($i ~ /^Suites:/) { n = split($i, b, " "); for (j = 2; j <= n; j++) if (b[j] == s) ok = 1 }
              }
              if (ok && uri != "" && !done) { print uri; done = 1 } }' "$f")
    done
    if [[ -z $found ]]; then
        found=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            sed -E 's/\[[^]]*\]//' | awk -v s="$SUITE" '$1 == "deb" && $3 == s && !done { print $2; done = 1 }')
    fi
    echo "${found:-http://deb.debian.org/debian}"
}

layer_path() { echo "$CACHE/layers/$1.tar.gz"; }
layer_stamp() { echo "$RECIPE_VERSION.${LAYER_VERSION[$1]}"; }
layer_fresh() { [[ -f $(layer_path "$1") && $(cat "$CACHE/layers/$1.recipe" 2>/dev/null) == "$(layer_stamp "$1")" ]]; }
layer_done() { layer_stamp "$1" >"$CACHE/layers/$1.recipe"; }

# Unmounts anything debootstrap left mounted below a work dir (after an interruption).
release_rootfs() {
    local dir=$1 m
    [[ -d $dir ]] || return 0
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
    rm -rf --one-file-system "$dir"
}

# Drops what varies between runs or belongs to the runtime, so layers are reproducible.
normalize_rootfs() {
    local r=$1
    rm -rf "$r"/dev/* "$r"/proc/* "$r"/sys/* "$r"/run/* "$r"/tmp/* "$r"/var/tmp/* "$r"/debootstrap
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*
    mkdir -p "$r"/var/lib/apt/lists/partial "$r"/var/cache/apt/archives/partial
    find "$r"/var/log -type f -delete
    rm -f "$r"/var/cache/ldconfig/aux-cache "$r"/var/lib/dpkg/*-old "$r"/var/cache/debconf/*-old \
        "$r"/etc/hostname "$r"/etc/resolv.conf "$r"/etc/machine-id
    # Password ages are "days since epoch" of the build day.
    local day=$((SOURCE_DATE_EPOCH / 86400))
    [[ -f $r/etc/shadow ]] && sed -i -E "s/^([^:]*:[^:]*:)[0-9]+:/\1$day:/" "$r/etc/shadow"
    find "$r" -name '*.pyc' -path '*/__pycache__/*' -delete
    return 0
}

debootstrap_rootfs() {
    local dir=$1 include=$2 mirror
    mirror=$(find_mirror)
    release_rootfs "$dir"
    log "debootstrap $SUITE (${include:-minbase}) from $mirror"
    local args=(--variant=minbase --cache-dir="$CACHE/debs")
    [[ -n $include ]] && args+=(--include="$include")
    if ! debootstrap "${args[@]}" "$SUITE" "$dir" "$mirror" >"$dir.log" 2>&1; then
        tail -n 20 "$dir.log" >&2
        die "debootstrap of $dir failed (full log: $dir.log)"
    fi
    normalize_rootfs "$dir"
}

build_busybox_layer() {
    local r=$CACHE/work/busybox app
    release_rootfs "$r"
    mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,home,var/www,dev,proc,sys}
    cp /bin/busybox "$r/bin/busybox"
    for app in $(/bin/busybox --list-full); do
        [[ -e $r/$app || -L $r/$app ]] || ln -s /bin/busybox "$r/$app"
    done
    chmod 1777 "$r/tmp"
    chmod 700 "$r/root"
    cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$r/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
tty:x:5:
www-data:x:33:
users:x:100:
nogroup:x:65534:
EOF
    chown -R 0:0 "$r"
    "$PYTHON" "$OCI_PY" layer "$r" "$(layer_path busybox)"
}

build_alpine_layer() {
    local r=$CACHE/work/alpine
    release_rootfs "$r"
    mkdir -p "$r/etc"
    cat >"$r/etc/os-release" <<'EOF'
NAME="rcompose testbed busybox"
ID=rcompose-testbed
PRETTY_NAME="rcompose testbed: busybox standing in for alpine"
EOF
    chown -R 0:0 "$r"
    "$PYTHON" "$OCI_PY" layer "$r" "$(layer_path alpine)"
}

build_nginx_layer() {
    local r=$CACHE/work/nginx
    release_rootfs "$r"
    mkdir -p "$r/usr/share/nginx/html"
    cat >"$r/usr/share/nginx/html/index.html" <<'EOF'
<!DOCTYPE html>
<html><head><title>Welcome to rcompose testbed nginx</title></head>
<body><h1>Welcome to rcompose testbed nginx</h1><p>busybox httpd standing in for nginx.</p></body></html>
EOF
    chown -R 0:0 "$r"
    "$PYTHON" "$OCI_PY" layer "$r" "$(layer_path nginx)"
}

cmd_build() {
    require_tools debootstrap skopeo flock
    [[ -x /bin/busybox ]] || die "/bin/busybox missing; run: $0 install"
    need_root "build (debootstrap)"
    lock_cache
    mkdir -p "$CACHE"/{layers,oci,debs,work}
    if [[ $(cat "$CACHE/oci/.recipe" 2>/dev/null) == "$RECIPE_VERSION.$IMAGES_VERSION.$(layer_versions)" ]] && layouts_present && layers_fresh; then
        log "images up to date in $CACHE/oci"
        return
    fi
    trap 'release_rootfs "$CACHE/work/debian"; release_rootfs "$CACHE/work/redis"; release_rootfs "$CACHE/work/python"' EXIT
    local l
    for l in busybox alpine nginx; do
        if ! layer_fresh "$l"; then
            log "building layer $l"
            "build_${l}_layer"
            layer_done "$l"
        fi
    done
    if ! layer_fresh debian || ! layer_fresh redis || ! layer_fresh python; then
        # The base rootfs is needed to diff the others against, so it is rebuilt with them.
        debootstrap_rootfs "$CACHE/work/debian" ""
        if ! layer_fresh debian; then
            "$PYTHON" "$OCI_PY" layer "$CACHE/work/debian" "$(layer_path debian)"
            layer_done debian
        fi
        local spec
        for spec in "redis:redis-server" "python:python3,python3-redis,python-is-python3"; do
            l=${spec%%:*}
            layer_fresh "$l" && continue
            debootstrap_rootfs "$CACHE/work/$l" "${spec#*:}"
            log "building layer $l (diff against the debian base)"
            # The redis image's WorkingDir and volume, as in the official image.
            [[ $l == redis ]] && mkdir -p "$CACHE/work/$l/data"
            "$PYTHON" "$OCI_PY" diff "$CACHE/work/debian" "$CACHE/work/$l" "$(layer_path "$l")"
            layer_done "$l"
            release_rootfs "$CACHE/work/$l"
        done
        release_rootfs "$CACHE/work/debian"
    fi
    local entry name tag layers index config specfile digest
    for entry in "${IMAGES[@]}"; do
        IFS='|' read -r name tag layers index config <<<"$entry"
        specfile=$CACHE/work/$name-$tag.json
        {
            printf '{"ref":"%s","index":%s,"config":%s,"layers":[' "$tag" "$([[ $index == 1 ]] && echo true || echo false)" "$config"
            local first=1 l
            for l in ${layers//,/ }; do
                ((first)) || printf ','
                first=0
                printf '{"path":"%s","comment":"rcompose testbed layer %s v%s"}' "$(layer_path "$l")" "$l" "$(layer_stamp "$l")"
            done
            printf ']}'
        } >"$specfile"
        digest=$("$PYTHON" "$OCI_PY" layout "$specfile" "$CACHE/oci/$name-$tag")
        rm -f "$specfile"
        log "library/$name:$tag $digest"
    done
    rm -rf "$CACHE/work"
    echo "$RECIPE_VERSION.$IMAGES_VERSION.$(layer_versions)" >"$CACHE/oci/.recipe"
    trap - EXIT
}

layer_versions() {
    local l out=""
    for l in busybox alpine nginx debian redis python; do out+="${LAYER_VERSION[$l]}"; done
    echo "$out"
}

layers_fresh() {
    local l
    for l in busybox alpine nginx debian redis python; do
        layer_fresh "$l" || return 1
    done
}

layouts_present() {
    local entry name tag rest
    for entry in "${IMAGES[@]}"; do
        IFS='|' read -r name tag rest <<<"$entry"
        [[ -f $CACHE/oci/$name-$tag/index.json ]] || return 1
    done
}

layout_digest() {
    "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$1/index.json"
}

registry_dir() { echo "$CACHE/registry"; }

write_registry_config() {
    local port=$1 auth=$2 dir
    dir=$(registry_dir)
    mkdir -p "$dir/storage"
    {
        cat <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: rcompose-testbed-$port
EOF
        if [[ $auth == 1 ]]; then
            cat <<EOF
auth:
  htpasswd:
    realm: rcompose-testbed
    path: $dir/htpasswd
EOF
        fi
    } >"$dir/config-$port.yml"
}

pid_alive() {
    local pidfile=$1 pid
    [[ -f $pidfile ]] || return 1
    pid=$(cat "$pidfile")
    [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q docker-registry
}

# HTTP status of GET /v2/ (000 when nothing answers).
v2_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true
}

start_registry() {
    local port=$1 auth=$2 dir pidfile want code i
    dir=$(registry_dir)
    pidfile=$dir/registry-$port.pid
    want=200
    [[ $auth == 1 ]] && want=401
    if pid_alive "$pidfile"; then
        code=$(v2_status "http://127.0.0.1:$port/v2/")
        [[ $code == "$want" ]] && return 0
        die "registry pid $(cat "$pidfile") on port $port answers $code, expected $want; run: $0 stop"
    fi
    code=$(v2_status "http://127.0.0.1:$port/v2/")
    [[ $code == 000 ]] || die "port $port is already in use by something else (GET /v2/ -> $code); set RCOMPOSE_TESTBED_PORT"
    write_registry_config "$port" "$auth"
    # fd 9 is the cache lock: the daemon must not inherit (and so hold) it.
    setsid docker-registry serve "$dir/config-$port.yml" >"$dir/registry-$port.log" 2>&1 </dev/null 9>&- &
    echo $! >"$pidfile"
    for ((i = 0; i < 300; i++)); do
        code=$(v2_status "http://127.0.0.1:$port/v2/")
        [[ $code == "$want" ]] && return 0
        if ! pid_alive "$pidfile"; then
            tail -n 20 "$dir/registry-$port.log" >&2
            die "registry on port $port exited (log: $dir/registry-$port.log)"
        fi
        sleep 0.1
    done
    die "registry on port $port did not answer /v2/ within 30s (log: $dir/registry-$port.log)"
}

remote_digest() {
    curl -s -I --max-time 10 -H "Accept: $MT_ACCEPT" "http://127.0.0.1:$PORT/v2/library/$1/manifests/$2" |
        awk -F': ' 'tolower($1) == "docker-content-digest" { gsub(/\r/, "", $2); print $2 }'
}

write_policy() {
    cat >"$CACHE/policy.json" <<'EOF'
{"default":[{"type":"insecureAcceptAnything"}]}
EOF
}

cmd_serve() {
    require_tools docker-registry skopeo htpasswd curl flock
    layouts_present || die "images not built; run: $0 build"
    lock_cache
    local dir
    dir=$(registry_dir)
    mkdir -p "$dir"
    [[ -f $dir/htpasswd ]] || htpasswd -Bbn "$AUTH_USER" "$AUTH_PASSWORD" >"$dir/htpasswd" 2>/dev/null
    write_policy
    start_registry "$PORT" 0
    # Same storage, so the auth registry serves the same images without a second push.
    start_registry "$AUTH_PORT" 1
    local entry name tag rest local_digest remote
    for entry in "${IMAGES[@]}"; do
        IFS='|' read -r name tag rest <<<"$entry"
        local_digest=$(layout_digest "$CACHE/oci/$name-$tag")
        remote=$(remote_digest "$name" "$tag")
        if [[ $remote == "$local_digest" ]]; then
            continue
        fi
        log "pushing library/$name:$tag"
        skopeo --policy "$CACHE/policy.json" copy --quiet --all --preserve-digests --dest-tls-verify=false \
            "oci:$CACHE/oci/$name-$tag:$tag" "docker://127.0.0.1:$PORT/library/$name:$tag"
        remote=$(remote_digest "$name" "$tag")
        [[ $remote == "$local_digest" ]] || die "library/$name:$tag: registry has digest '$remote', expected $local_digest"
    done
    cat >"$CACHE/registries.conf.tmp" <<EOF
# Written by tests/testbed/testbed.sh: the test bed registry mirrors docker.io.
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "127.0.0.1:$PORT"
insecure = true

[[registry]]
location = "127.0.0.1:$PORT"
insecure = true

[[registry]]
location = "127.0.0.1:$AUTH_PORT"
insecure = true
EOF
    mv "$CACHE/registries.conf.tmp" "$CACHE/registries.conf"
    printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}\n' "$AUTH_PORT" \
        "$(printf '%s:%s' "$AUTH_USER" "$AUTH_PASSWORD" | base64 -w0)" >"$CACHE/auth.json"
    log "serving on 127.0.0.1:$PORT and 127.0.0.1:$AUTH_PORT (auth $AUTH_USER/$AUTH_PASSWORD)"
}

cmd_env() {
    [[ -f $CACHE/registries.conf ]] || log "warning: $CACHE/registries.conf missing; run: $0 serve"
    cat <<EOF
export CONTAINERS_REGISTRIES_CONF=$CACHE/registries.conf
export RCOMPOSE_TESTBED_REGISTRY=127.0.0.1:$PORT
export RCOMPOSE_TESTBED_AUTH_REGISTRY=127.0.0.1:$AUTH_PORT
export RCOMPOSE_TESTBED_AUTH_USER=$AUTH_USER
export RCOMPOSE_TESTBED_AUTH_PASSWORD=$AUTH_PASSWORD
export RCOMPOSE_TESTBED_AUTH_FILE=$CACHE/auth.json
export RCOMPOSE_TESTBED_DIR=$CACHE
EOF
}

stop_registry() {
    local port=$1 pidfile pid i
    pidfile=$(registry_dir)/registry-$port.pid
    if pid_alive "$pidfile"; then
        pid=$(cat "$pidfile")
        kill "$pid"
        for ((i = 0; i < 100; i++)); do
            [[ -d /proc/$pid ]] || break
            sleep 0.1
        done
        [[ -d /proc/$pid ]] && kill -9 "$pid"
        log "stopped registry on port $port (pid $pid)"
    fi
    rm -f "$pidfile"
}

cmd_stop() {
    lock_cache
    stop_registry "$PORT"
    stop_registry "$AUTH_PORT"
}

cmd_status() {
    local port pidfile entry name tag rest dir size
    for port in "$PORT" "$AUTH_PORT"; do
        pidfile=$(registry_dir)/registry-$port.pid
        if pid_alive "$pidfile"; then
            echo "registry 127.0.0.1:$port running (pid $(cat "$pidfile"))"
        else
            echo "registry 127.0.0.1:$port stopped"
        fi
    done
    for entry in "${IMAGES[@]}"; do
        IFS='|' read -r name tag rest <<<"$entry"
        dir=$CACHE/oci/$name-$tag
        if [[ -f $dir/index.json ]]; then
            size=$(du -sh --apparent-size "$dir/blobs" | cut -f1)
            echo "library/$name:$tag $(layout_digest "$dir") $size"
        else
            echo "library/$name:$tag not built"
        fi
    done
}

cmd_tars() {
    require_tools skopeo flock
    layouts_present || die "images not built; run: $0 build"
    lock_cache
    write_policy
    mkdir -p "$CACHE/tars"
    local entry name tag layers rest digest out l paths
    for entry in "${IMAGES[@]}"; do
        IFS='|' read -r name tag layers rest <<<"$entry"
        digest=$(layout_digest "$CACHE/oci/$name-$tag")
        out=$CACHE/tars/$name-$tag
        [[ $(cat "$out.digest" 2>/dev/null) == "$digest" ]] && continue
        log "exporting library/$name:$tag"
        paths=()
        for l in ${layers//,/ }; do paths+=("$(layer_path "$l")"); done
        "$PYTHON" "$OCI_PY" flatten "$out.rootfs.tar" "${paths[@]}"
        rm -f "$out.oci.tar" "$out.docker.tar"
        skopeo --policy "$CACHE/policy.json" copy --quiet --all "oci:$CACHE/oci/$name-$tag:$tag" \
            "oci-archive:$out.oci.tar:docker.io/library/$name:$tag"
        skopeo --policy "$CACHE/policy.json" copy --quiet "oci:$CACHE/oci/$name-$tag:$tag" \
            "docker-archive:$out.docker.tar:docker.io/library/$name:$tag"
        echo "$digest" >"$out.digest"
    done
    log "archives in $CACHE/tars"
}

main() {
    local cmd=${1:-}
    case $cmd in
    install) cmd_install ;;
    build) cmd_build ;;
    serve) cmd_serve ;;
    env) cmd_env ;;
    tars) cmd_tars ;;
    status) cmd_status ;;
    stop) cmd_stop ;;
    all)
        cmd_install
        cmd_build
        cmd_serve
        ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
