#!/usr/bin/env python3
"""Deterministic OCI layer and image-layout builder for the rcompose test bed.

Standard library only. Called by testbed.sh; every output is a pure function of
its inputs and SOURCE_DATE_EPOCH, so digests stay stable across rebuilds.

Subcommands:
  layer ROOT OUT.tar.gz             layer holding everything under ROOT
  diff BASE ROOT OUT.tar.gz         layer turning rootfs BASE into rootfs ROOT
                                    (changed/new entries plus whiteouts)
  layout SPEC.json OUTDIR           OCI image layout for one image (see SPEC below)
  flatten OUT.tar LAYER.tar.gz...   root-filesystem tar of the layers applied in order

SPEC.json: {"ref": "7", "layers": [{"path": ..., "comment": ...}], "config":
{...image config...}, "index": false}. With "index": true the tag points at an
OCI image index with one linux/<arch> entry, so clients exercise manifest-list
handling.
"""

import copy
import datetime
import gzip
import hashlib
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1700000000"))
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def die(msg):
    print(f"oci.py: {msg}", file=sys.stderr)
    sys.exit(1)


def walk(root):
    """Relative paths of every entry under root, sorted, directories included."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + sorted(filenames):
            out.append(name if rel == "." else f"{rel}/{name}")
    out.sort()
    return out


def tarinfo_for(root, rel, st):
    """A TarInfo with fixed mtime and numeric owners, or None for sockets."""
    ti = tarfile.TarInfo(rel)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = EPOCH
    m = st.st_mode
    if stat.S_ISDIR(m):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISREG(m):
        ti.type = tarfile.REGTYPE
        ti.size = st.st_size
    elif stat.S_ISLNK(m):
        ti.type = tarfile.SYMTYPE
        ti.linkname = os.readlink(os.path.join(root, rel))
    elif stat.S_ISFIFO(m):
        ti.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(m) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return None
    return ti


class LayerWriter:
    """Writes a gzip'd tar with a fixed gzip header (no name, mtime 0)."""

    def __init__(self, out):
        self.out = out
        self.tmp = out + ".tmp"
        self.raw = open(self.tmp, "wb")
        self.gz = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0, compresslevel=6)
        self.tar = tarfile.open(fileobj=self.gz, mode="w", format=tarfile.PAX_FORMAT)
        self.links = {}  # (dev, ino) -> first arcname in this layer

    def add(self, root, rel, st=None):
        st = st or os.lstat(os.path.join(root, rel))
        ti = tarinfo_for(root, rel, st)
        if ti is None:
            return
        key = (st.st_dev, st.st_ino)
        if ti.type == tarfile.REGTYPE and st.st_nlink > 1:
            if key in self.links:
                ti.type, ti.size, ti.linkname = tarfile.LNKTYPE, 0, self.links[key]
                self.tar.addfile(ti)
                return
            self.links[key] = rel
        if ti.type == tarfile.REGTYPE:
            with open(os.path.join(root, rel), "rb") as f:
                self.tar.addfile(ti, f)
        else:
            self.tar.addfile(ti)

    def whiteout(self, rel):
        parent, name = os.path.split(rel)
        ti = tarfile.TarInfo(os.path.join(parent, WHITEOUT + name))
        ti.mode, ti.mtime, ti.uname, ti.gname = 0o644, EPOCH, "", ""
        self.tar.addfile(ti)

    def close(self):
        self.tar.close()
        self.gz.close()
        self.raw.close()
        os.replace(self.tmp, self.out)


def cmd_layer(root, out):
    if not os.path.isdir(root):
        die(f"layer root {root} is not a directory")
    w = LayerWriter(out)
    for rel in walk(root):
        w.add(root, rel)
    w.close()


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def differs(base, root, rel):
    """True when ROOT/rel is new or differs from BASE/rel in type, metadata or content."""
    try:
        sb = os.lstat(os.path.join(base, rel))
    except FileNotFoundError:
        return True
    sr = os.lstat(os.path.join(root, rel))
    if (sb.st_mode, sb.st_uid, sb.st_gid) != (sr.st_mode, sr.st_uid, sr.st_gid):
        return True
    if stat.S_ISLNK(sr.st_mode):
        return os.readlink(os.path.join(base, rel)) != os.readlink(os.path.join(root, rel))
    if stat.S_ISREG(sr.st_mode):
        return sb.st_size != sr.st_size or not same_file(os.path.join(base, rel), os.path.join(root, rel))
    if stat.S_ISCHR(sr.st_mode) or stat.S_ISBLK(sr.st_mode):
        return sb.st_rdev != sr.st_rdev
    return False


def is_real_dir(path):
    return stat.S_ISDIR(os.lstat(path).st_mode)


def cmd_diff(base, root, out):
    for d in (base, root):
        if not os.path.isdir(d):
            die(f"diff input {d} is not a directory")
    new = walk(root)
    newset = set(new)
    changed = set()
    for rel in new:
        if differs(base, root, rel):
            changed.add(rel)
            # Parent directories go in too, so the layer extracts on its own.
            parent = os.path.dirname(rel)
            while parent and parent not in changed:
                changed.add(parent)
                parent = os.path.dirname(parent)
    # Whiteouts only for the topmost removed path: its parent is still a directory.
    removed = []
    for rel in walk(base):
        parent = os.path.dirname(rel)
        if rel in newset:
            continue
        if parent == "" or (parent in newset and is_real_dir(os.path.join(root, parent))):
            removed.append(rel)
    for rel in removed:
        parent = os.path.dirname(rel)
        while parent and parent not in changed:
            changed.add(parent)
            parent = os.path.dirname(parent)
    w = LayerWriter(out)
    entries = sorted([(rel, False) for rel in changed] + [(rel, True) for rel in removed])
    for rel, is_whiteout in entries:
        if is_whiteout:
            w.whiteout(rel)
        else:
            w.add(root, rel)
    w.close()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def diff_id(path):
    h = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Blobs:
    def __init__(self, outdir):
        self.dir = os.path.join(outdir, "blobs", "sha256")
        os.makedirs(self.dir, exist_ok=True)

    def put_bytes(self, data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.dir, digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def put_file(self, path, media_type):
        digest = sha256_file(path)
        dest = os.path.join(self.dir, digest)
        if not os.path.exists(dest):
            # Hard links keep the shared Debian base layer on disk once.
            try:
                os.link(path, dest)
            except OSError:
                shutil.copyfile(path, dest)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": os.path.getsize(path)}


def goarch():
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


def cmd_layout(spec_path, outdir):
    with open(spec_path) as f:
        spec = json.load(f)
    created = datetime.datetime.fromtimestamp(EPOCH, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    tmp = outdir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    blobs = Blobs(tmp)
    layers, diff_ids, history = [], [], []
    for layer in spec["layers"]:
        if not os.path.isfile(layer["path"]):
            die(f"layer {layer['path']} missing")
        layers.append(blobs.put_file(layer["path"], MT_LAYER))
        diff_ids.append(diff_id(layer["path"]))
        history.append({"created": created, "created_by": layer.get("comment", "rcompose testbed")})
    config = {
        "created": created,
        "architecture": goarch(),
        "os": "linux",
        "config": spec["config"],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    cfg_desc = blobs.put_bytes(canonical(config), MT_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cfg_desc, "layers": layers}
    man_desc = blobs.put_bytes(canonical(manifest), MT_MANIFEST)
    man_desc["platform"] = {"architecture": goarch(), "os": "linux"}
    top = man_desc
    if spec.get("index"):
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [man_desc]}
        top = blobs.put_bytes(canonical(index), MT_INDEX)
    top = dict(top)
    top["annotations"] = {"org.opencontainers.image.ref.name": spec["ref"]}
    with open(os.path.join(tmp, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(tmp, "index.json"), "wb") as f:
        f.write(canonical({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [top]}))
    shutil.rmtree(outdir, ignore_errors=True)
    os.replace(tmp, outdir)
    print(top["digest"])


def strip_dot(name):
    name = name.rstrip("/")
    return name[2:] if name.startswith("./") else name


def cmd_flatten(out, layer_paths):
    """Apply layers (whiteouts included) and write the resulting rootfs as one tar."""
    with tempfile.TemporaryDirectory() as tmpd:
        raw_paths, entries = [], {}
        for i, lp in enumerate(layer_paths):
            raw = os.path.join(tmpd, f"{i}.tar")
            with gzip.open(lp, "rb") as src, open(raw, "wb") as dst:
                shutil.copyfileobj(src, dst)
            raw_paths.append(raw)
        tars = [tarfile.open(p, "r:") for p in raw_paths]
        for i, t in enumerate(tars):
            for m in t.getmembers():
                name = strip_dot(m.name)
                parent, base = os.path.split(name)
                if base == OPAQUE:
                    prefix = parent + "/"
                    for k in [k for k in entries if k.startswith(prefix)]:
                        del entries[k]
                    continue
                if base.startswith(WHITEOUT):
                    gone = os.path.join(parent, base[len(WHITEOUT):])
                    for k in [k for k in entries if k == gone or k.startswith(gone + "/")]:
                        del entries[k]
                    continue
                old = entries.get(name)
                if old is not None and not (m.isdir() and old[1].isdir()):
                    for k in [k for k in entries if k.startswith(name + "/")]:
                        del entries[k]
                entries[name] = (i, m)
        tmp_out = out + ".tmp"
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as dst:
            for name in sorted(entries):
                i, m = entries[name]
                m = copy.copy(m)
                m.name = name
                src = tars[i], m
                if m.islnk():
                    # Sorted output may put a link before its target: store a copy instead.
                    target = strip_dot(m.linkname)
                    if target not in entries:
                        die(f"{layer_paths[i]}: hard link {name} -> {m.linkname} has no target")
                    j, tm = entries[target]
                    src = tars[j], tm
                    m.type, m.size, m.linkname = tarfile.REGTYPE, tm.size, ""
                if m.isreg():
                    dst.addfile(m, src[0].extractfile(src[1]))
                else:
                    dst.addfile(m)
        for t in tars:
            t.close()
        os.replace(tmp_out, out)


def main(argv):
    if len(argv) == 3 and argv[0] == "layer":
        cmd_layer(argv[1], argv[2])
    elif len(argv) == 4 and argv[0] == "diff":
        cmd_diff(argv[1], argv[2], argv[3])
    elif len(argv) == 3 and argv[0] == "layout":
        cmd_layout(argv[1], argv[2])
    elif len(argv) >= 3 and argv[0] == "flatten":
        cmd_flatten(argv[1], argv[2:])
    else:
        die("usage: oci.py layer ROOT OUT | diff BASE ROOT OUT | layout SPEC OUTDIR | flatten OUT LAYER...")


if __name__ == "__main__":
    main(sys.argv[1:])
