"""Air-gap image archives: which files of `<data-dir>/agent/images/` are imported,
and compressed archives reaching `ctr images import` decompressed.

`ctr` is a stand-in script that records its arguments and the bytes it was given
(its file argument, or standard input for ``-``), so these tests need no containerd;
the real import of a compressed archive is in tests/e2e/test_kubelet_user.py.
"""
from __future__ import annotations

import bz2
import gzip
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from pyk8s.kubelet import images

ARCHIVE = b"pretend this is a docker-save tar\n" * 1000

FAKE_CTR = """#!/bin/sh
# record argv, then what the archive argument holds (stdin for -)
out={out}
printf '%s\\n' "$@" > "$out.args"
for last; do :; done
if [ "$last" = "-" ]; then cat > "$out.data"; else cat "$last" > "$out.data"; fi
[ -n "$FAIL" ] && {{ echo "ctr: failed to import: $FAIL"; exit 1; }}
echo "unpacking example.com/x:1 (sha256:abc)...done"
"""


@pytest.fixture
def ctr(tmp_path) -> tuple[str, Path]:
    record = tmp_path / "ctr-record"
    script = tmp_path / "ctr"
    script.write_text(FAKE_CTR.format(out=record))
    script.chmod(0o755)
    return str(script), record


def drop_dir(data_dir: Path) -> Path:
    _, d = images.data_paths(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    return d


def compress(path: Path, data: bytes) -> Path:
    name = path.name
    if name.endswith((".tar.gz", ".tgz")):
        path.write_bytes(gzip.compress(data))
    elif name.endswith((".tar.bz2", ".tbz")):
        path.write_bytes(bz2.compress(data))
    elif name.endswith((".tar.zst", ".tzst")):
        path.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=data, check=True,
                                        capture_output=True).stdout)
    elif name.endswith(".tar.lz4"):
        path.write_bytes(subprocess.run(["lz4", "-q", "-c"], input=data, check=True,
                                        capture_output=True).stdout)
    else:
        path.write_bytes(data)
    return path


def test_the_drop_dir_takes_k3s_archive_kinds_and_says_what_it_skips(tmp_path, caplog):
    d = drop_dir(tmp_path)
    for name in ("a.tar", "b.tar.gz", "c.tgz", "d.tar.zst", "e.tar.lz4", "f.tar.bz2",
                 "g.TAR.GZ", "notes.txt", "h.tar.xz", "i.zip"):
        (d / name).write_bytes(b"x")
    (d / "sub.tar").mkdir()
    with caplog.at_level(logging.INFO, logger="pyk8s.kubelet.images"):
        found = [p.name for p in images.airgap_archives(tmp_path)]
    expected = ["a.tar", "b.tar.gz", "c.tgz", "f.tar.bz2", "g.TAR.GZ"]
    if shutil.which("zstd"):
        expected.append("d.tar.zst")
    if shutil.which("lz4"):
        expected.append("e.tar.lz4")
    assert sorted(found) == sorted(expected)
    skipped = "\n".join(r.getMessage() for r in caplog.records)
    for name in ("notes.txt", "h.tar.xz", "i.zip"):
        assert f"skipping {d / name}: not an image archive" in skipped


def test_a_zstd_archive_without_zstd_is_skipped_with_a_warning_naming_it(tmp_path, caplog,
                                                                         monkeypatch):
    d = drop_dir(tmp_path)
    (d / "big.tar.zst").write_bytes(b"x")
    (d / "ok.tar").write_bytes(b"x")
    real_which = shutil.which
    monkeypatch.setattr(images.shutil, "which",
                        lambda tool, *a, **k: None if tool == "zstd" else real_which(tool))
    with caplog.at_level(logging.INFO, logger="pyk8s.kubelet.images"):
        assert [p.name for p in images.airgap_archives(tmp_path)] == ["ok.tar"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"skipping {d / 'big.tar.zst'}" in w and "`zstd`" in w for w in warnings), \
        warnings


async def test_import_of_a_missing_zstd_tool_names_the_file(tmp_path, ctr, monkeypatch):
    path = tmp_path / "x.tar.zst"
    path.write_bytes(b"x")
    monkeypatch.setattr(images.shutil, "which", lambda tool, *a, **k: None)
    with pytest.raises(images.ImageImportError, match=r"x\.tar\.zst.*`zstd`"):
        await images.import_archive(path, address="/run/c.sock", ctr=ctr[0])


@pytest.mark.parametrize("name", ["plain.tar", "a.tar.gz", "b.tgz", "c.tar.bz2",
                                  "d.tar.zst", "e.tar.lz4"])
async def test_each_kind_reaches_ctr_decompressed(tmp_path, ctr, name):
    if name.endswith(".zst") and not shutil.which("zstd") or \
            name.endswith(".lz4") and not shutil.which("lz4"):
        pytest.skip(f"no tool for {name}")
    script, record = ctr
    path = compress(tmp_path / name, ARCHIVE)
    out = await images.import_archive(path, address="unix:///run/c.sock", ctr=script)
    assert "unpacking example.com/x:1" in out
    assert Path(str(record) + ".data").read_bytes() == ARCHIVE
    args = Path(str(record) + ".args").read_text().split("\n")
    assert args[:8] == ["-a", "/run/c.sock", "-n", "k8s.io", "images", "import",
                        "--snapshotter", "overlayfs"]
    assert args[8] == (str(path) if name == "plain.tar" else "-")


async def test_a_corrupt_gzip_archive_fails_naming_the_file(tmp_path, ctr):
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(gzip.compress(ARCHIVE)[:-12])  # no end of stream
    with pytest.raises(images.ImageImportError,
                       match=r"cannot import .*broken\.tar\.gz: decompressing gzip failed"):
        await images.import_archive(path, address="/run/c.sock", ctr=ctr[0])


async def test_a_corrupt_zstd_archive_fails_naming_the_file(tmp_path, ctr):
    if not shutil.which("zstd"):
        pytest.skip("zstd is not installed")
    path = tmp_path / "broken.tar.zst"
    path.write_bytes(b"not zstd at all" * 10)
    with pytest.raises(images.ImageImportError,
                       match=r"cannot import .*broken\.tar\.zst: decompressing zstd failed"):
        await images.import_archive(path, address="/run/c.sock", ctr=ctr[0])


async def test_ctr_failing_on_a_compressed_archive_says_so(tmp_path, ctr, monkeypatch):
    monkeypatch.setenv("FAIL", "not a tar")
    path = compress(tmp_path / "a.tar.gz", ARCHIVE)
    with pytest.raises(images.ImageImportError,
                       match=r"ctr images import .*a\.tar\.gz failed: .*not a tar"):
        await images.import_archive(path, address="/run/c.sock", ctr=ctr[0])
