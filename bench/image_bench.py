"""Benchmark ``kascan image`` on a real multi-layer image in an OCI layout, against the floor of
decompressing its layers into ripgrep.

    python bench/image_bench.py [--mb 240] [--runs 3]

Builds ``bench/.corpus/image/`` (once): an OCI image layout whose gzip layers hold real files of
this machine's distribution (``/usr/lib/x86_64-linux-gnu``, ``/usr/share``, Python's stdlib), about
``--mb`` MB uncompressed over 4 layers, plus one planted key in a file of the last layer. Then it
times, whole process, wall clock (the best of ``--runs``):

- ``tar -xzOf LAYER | rg -a -F -c ka_live_`` for every layer: the cost of inflating and searching;
- ``kascan image oci:DIR`` (archives and decoders on, the default);
- ``kascan image --no-archives --no-base64 --no-utf16 oci:DIR``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import string
import subprocess
import sys
import sysconfig
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / ".corpus" / "image"
ROOTS = ["/usr/lib/x86_64-linux-gnu", "/usr/share", sysconfig.get_paths()["stdlib"]]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _files(limit: int) -> list[Path]:
    out: list[Path] = []
    total = 0
    for root in ROOTS:
        for dirpath, _dirs, names in os.walk(root):
            for n in sorted(names):
                p = Path(dirpath) / n
                if p.is_symlink() or not p.is_file():
                    continue
                size = p.stat().st_size
                if size > 32 << 20:
                    continue
                out.append(p)
                total += size
                if total >= limit:
                    return out
    return out


def build(mb: int) -> Path:
    marker = CORPUS / "built.json"
    if marker.exists() and json.loads(marker.read_text()).get("mb") == mb:
        return CORPUS
    shutil.rmtree(CORPUS, ignore_errors=True)
    blobs = CORPUS / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    files = _files(mb << 20)
    parts = [files[i::4] for i in range(4)]
    key = (
        "ka_"
        + "live_"
        + "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=32))
    )
    descs, diff_ids, total = [], [], 0
    for i, part in enumerate(parts):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for p in part:
                try:
                    tf.add(str(p), arcname=str(p).lstrip("/"), recursive=False)
                except OSError:
                    continue
            if i == 3:
                data = f"KUBEADAPT_API_KEY={key}\n".encode()
                info = tarfile.TarInfo("srv/app/.env")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        tar = buf.getvalue()
        total += len(tar)
        gz = gzip.compress(tar, compresslevel=6, mtime=0)
        d = _digest(gz)
        (blobs / d.split(":")[1]).write_bytes(gz)
        diff_ids.append(_digest(tar))
        descs.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": d,
                "size": len(gz),
            }
        )
    config = json.dumps(
        {"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    cd = _digest(config)
    (blobs / cd.split(":")[1]).write_bytes(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cd,
                "size": len(config),
            },
            "layers": descs,
        }
    ).encode()
    md = _digest(manifest)
    (blobs / md.split(":")[1]).write_bytes(manifest)
    (CORPUS / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (CORPUS / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": md,
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": "bench"},
                    }
                ],
            }
        )
    )
    marker.write_text(
        json.dumps({"mb": mb, "bytes": total, "layers": [d["digest"] for d in descs]})
    )
    return CORPUS


def best(cmd: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(
            cmd, shell=True, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=240)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    layout = build(args.mb)
    info = json.loads((layout / "built.json").read_text())
    blobs = [layout / "blobs" / "sha256" / d.split(":")[1] for d in info["layers"]]
    compressed = sum(b.stat().st_size for b in blobs)
    print(
        f"image: 4 layers, {info['bytes'] / 1e6:.0f} MB uncompressed, "
        f"{compressed / 1e6:.0f} MB gzip"
    )
    rg = shutil.which("rg")
    floor = " ; ".join(f"tar -xzOf {b} | {rg or 'grep'} -a -F -c ka_live_" for b in blobs)
    kascan = f"{sys.executable} -m kascan image -q"
    rows = [
        ("tar -xzOf | rg -a -F (floor)", floor),
        ("kascan image (default)", f"{kascan} oci:{layout}:bench"),
        ("kascan image --no-archives --no-base64 --no-utf16",
         f"{kascan} --no-archives --no-base64 --no-utf16 oci:{layout}:bench"),
    ]  # fmt: skip
    check = subprocess.run(
        f"{kascan} -f json oci:{layout}:bench",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    found = len(json.loads(check.stdout)["findings"]) if check.stdout else 0
    print(f"kascan finds {found} key(s) (1 planted)")
    for name, cmd in rows:
        t = best(cmd, args.runs)
        print(f"{name:55s} {t:6.2f} s  {info['bytes'] / 1e6 / t:6.0f} MB/s")


if __name__ == "__main__":
    main()
