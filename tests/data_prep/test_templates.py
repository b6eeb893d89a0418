from __future__ import annotations

import importlib.util
import zipfile

import pytest

from data_prep import templates
from mridiff.data.nifti import read_nifti
from mridiff.errors import InputError


@pytest.mark.skipif(importlib.util.find_spec("nilearn") is None, reason="nilearn not installed")
def test_nilearn_template_is_found_and_readable():
    path = templates.nilearn_mni152_2009a()
    assert path is not None and path.name == "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    vol = read_nifti(path)
    assert vol.data.shape == (197, 233, 189) and vol.zooms == (1.0, 1.0, 1.0)


def test_colin27_from_env(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / templates.COLIN27_NAME).write_bytes(b"x")
    monkeypatch.setenv("MRIDIFF_SHARED", str(tmp_path))
    assert templates.colin27() == tmp_path / "data" / templates.COLIN27_NAME
    monkeypatch.setenv("MRIDIFF_SHARED", str(tmp_path / "data"))
    assert templates.colin27() == tmp_path / "data" / templates.COLIN27_NAME
    monkeypatch.setenv("MRIDIFF_SHARED", str(tmp_path / "elsewhere"))
    assert templates.colin27() is None


def fake_wheel(tmp_path, payload=b"nifti bytes"):
    wheel = tmp_path / "nimare-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(templates.NIMARE_TEMPLATE_MEMBER, payload)
        zf.writestr("nimare/__init__.py", "")
    return wheel


def test_extract_from_wheel(tmp_path):
    wheel = fake_wheel(tmp_path, b"\x1f\x8b template")
    out = templates.extract_from_wheel(wheel, templates.NIMARE_TEMPLATE_MEMBER, tmp_path / "x" / "t.nii.gz")
    assert out.read_bytes() == b"\x1f\x8b template"
    with pytest.raises(InputError, match="already exists"):
        templates.extract_from_wheel(wheel, templates.NIMARE_TEMPLATE_MEMBER, out)
    with pytest.raises(InputError, match="no member"):
        templates.extract_from_wheel(wheel, "nimare/missing.nii.gz", tmp_path / "y.nii.gz")
    bad = tmp_path / "bad.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable wheel"):
        templates.extract_from_wheel(bad, templates.NIMARE_TEMPLATE_MEMBER, tmp_path / "z.nii.gz")
    assert not (tmp_path / "y.nii.gz").exists() and not (tmp_path / "z.nii.gz").exists()


def test_nimare_template_from_cached_wheel_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(templates, "_package_dir", lambda name: None)
    monkeypatch.setattr(templates, "download_nimare_wheel", lambda *a, **k: pytest.fail("must not download"))
    cache = tmp_path / "cache"
    assert templates.nimare_mni152_nlin6asym(cache) is None
    cache.mkdir()
    fake_wheel(cache)
    path = templates.nimare_mni152_nlin6asym(cache)
    assert path is not None and path.read_bytes() == b"nifti bytes"
    assert templates.nimare_mni152_nlin6asym(cache) == path  # reuses the extracted file
