#!/usr/bin/env python3
"""Writes seeds for the image fuzz targets: image-layout (config, manifest,
index separated by NUL bytes, digests as placeholders), docker-archive (a
docker save tarball) and layer (tar layers with links, whiteouts, an opaque
directory, a path that climbs out, gzip).

usage: make-image-seeds.py CORPUS_DIRECTORY
"""
import gzip, hashlib, io, json, os, sys, tarfile

out = sys.argv[1]
def save(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)

def tar(entries):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as t:
        for kind, name, extra in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "file":
                info.size = len(extra); info.mode = 0o755
                t.addfile(info, io.BytesIO(extra))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE; info.mode = 0o750
                t.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE; info.linkname = extra
                t.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE; info.linkname = extra
                t.addfile(info)
    return buffer.getvalue()

base = tar([("dir", "etc", None), ("file", "etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            ("dir", "app", None), ("file", "app/entry.sh", b"#!/bin/sh\necho hi\n"),
            ("hardlink", "app/again.sh", "app/entry.sh"), ("symlink", "app/link", "/etc/passwd"),
            ("dir", "gone", None), ("file", "gone/file", b"x")])
upper = tar([("file", ".wh.gone", b""), ("dir", "app", None), ("file", "app/.wh..wh..opq", b""),
             ("file", "app/new.txt", b"new\n")])
escape = tar([("symlink", "out", "/"), ("file", "out/tmp/escaped", b"x"), ("file", "../../escaped", b"x"),
              ("hardlink", "h", "../../etc/passwd")])
save("layer", "base.tar", base)
save("layer", "whiteouts.tar", upper)
save("layer", "escape.tar", escape)
save("layer", "base.tar.gz", gzip.compress(base, mtime=0))

config = {"architecture": "amd64", "os": "linux",
          "config": {"Entrypoint": ["/app/entry.sh"], "Cmd": ["a"], "Env": ["PATH=/bin"], "WorkingDir": "/app", "User": "1000"},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(base).hexdigest(), "sha256:" + hashlib.sha256(upper).hexdigest()]}}
config_bytes = json.dumps(config).encode()
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "CONFIG_DIGEST", "size": 12345},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + hashlib.sha256(base).hexdigest(), "size": len(base)}]}
index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "MANIFEST_DIGEST",
                                            "size": 54321, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
manifest_text = json.dumps(manifest).replace("12345", "CONFIG_SIZE").encode()
index_text = json.dumps(index).replace("54321", "MANIFEST_SIZE").encode()
save("image-layout", "one-layer", config_bytes + b"\0" + manifest_text + b"\0" + index_text)
nested = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "MANIFEST_DIGEST", "size": 1}]}
save("image-layout", "nested-index", config_bytes + b"\0" + manifest_text + b"\0" + json.dumps(nested).replace('"size": 1', '"size": MANIFEST_SIZE').encode())

buffer = io.BytesIO()
with tarfile.open(fileobj=buffer, mode="w") as t:
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    members = [(config_name, config_bytes), ("layer1/layer.tar", base), ("layer2/layer.tar", upper),
               ("manifest.json", json.dumps([{"Config": config_name, "RepoTags": ["fuzz:latest"],
                                              "Layers": ["layer1/layer.tar", "layer2/layer.tar"]}]).encode())]
    for name, data in members:
        info = tarfile.TarInfo(name); info.size = len(data); info.mtime = 0
        t.addfile(info, io.BytesIO(data))
save("docker-archive", "two-layers.tar", buffer.getvalue())
