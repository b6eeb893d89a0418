"""Locate the real MRI volumes available without a data download, and record where they came from.

* ``mni152_2009a``: the MNI ICBM152 2009a nonlinear symmetric T1 template that ships inside the nilearn wheel
  (``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``, uint8, brain-masked); a population
  average.
* ``mni152_nlin6asym``: FSL's MNI152NLin6Asym T1 template (1 mm, with skull) in TemplateFlow naming, shipped inside
  the nimare wheel (``nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz``). nimare is not a
  dependency: the file is read out of a wheel fetched with ``pip download nimare --no-deps`` (never installed).
* ``colin27``: one subject (27 averaged scans), brain-extracted, in ``../shared/data/colin27_t1_1mm.nii.gz``
  beside the repository checkout, or under ``$MRIDIFF_SHARED``. Test only: never trained on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mridiff.errors import InputError
from mridiff.io.atomic import atomic_path

NILEARN_MNI_MEMBER = "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
NIMARE_TEMPLATE_MEMBER = "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz"
COLIN27_NAME = "colin27_t1_1mm.nii.gz"
# The checkout that holds the package (``mridiff/prep/templates.py`` -> the repository root); in an installed copy
# this is site-packages' parent, where no ``../shared/data`` exists, and ``$MRIDIFF_SHARED`` must say where it is.
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Template:
    """A source volume with its provenance.

    Attributes:
        key: Short name used for output files (e.g. ``"mni152_2009a"``).
        path: The NIfTI file.
        role: ``"train"`` or ``"test"``.
        description: What the volume is.
        source: Where the file came from.
        licence: Terms of use, in brief.
    """

    key: str
    path: Path
    role: str
    description: str
    source: str
    licence: str


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(name: str) -> Path | None:
    # find_spec locates the package without importing it (nilearn's import is slow and pulls in sklearn).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def nilearn_mni152_2009a() -> Path | None:
    """Path of the MNI152 2009a T1 template inside the installed nilearn, or ``None``."""
    pkg = _package_dir("nilearn")
    if pkg is None:
        return None
    path = pkg / NILEARN_MNI_MEMBER
    return path if path.is_file() else None


def shared_data_dir() -> Path:
    """The shared data: ``$MRIDIFF_SHARED/data`` (or ``$MRIDIFF_SHARED``), else ``../shared/data`` by the checkout.

    The fallback is found from the package's location, not the working directory, so the tools work from anywhere.
    """
    env = os.environ.get("MRIDIFF_SHARED")
    if env:
        base = Path(env).expanduser()
        return base / "data" if (base / "data").is_dir() else base
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def colin27() -> Path | None:
    """Path of the Colin27 T1 volume in the shared data directory, or ``None``."""
    path = shared_data_dir() / COLIN27_NAME
    return path if path.is_file() else None


def extract_from_wheel(wheel_path: str | Path, member: str, out: str | Path, overwrite: bool = False) -> Path:
    """Copy one file out of a wheel (a zip archive) without installing it.

    Args:
        wheel_path: The ``.whl`` file.
        member: Path of the file inside the archive, e.g. :data:`NIMARE_TEMPLATE_MEMBER`.
        out: Where to write it (atomically).
        overwrite: Replace an existing output.

    Returns:
        The written path.

    Raises:
        InputError: If the wheel is missing or not a zip archive, or lacks ``member``.
    """
    wheel = Path(wheel_path)
    if not wheel.is_file():
        raise InputError(wheel, "wheel not found")
    try:
        with zipfile.ZipFile(wheel) as zf:
            if member not in zf.namelist():
                raise InputError(wheel, f"wheel has no member {member}")
            with atomic_path(out, overwrite) as tmp, zf.open(member) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise InputError(wheel, f"not a readable wheel/zip archive ({exc})") from None
    return Path(out)


def download_nimare_wheel(dest_dir: str | Path, version: str | None = None) -> Path:
    """Fetch the nimare wheel with ``pip download --no-deps`` (no install) and return its path.

    Args:
        dest_dir: Directory for the wheel.
        version: Optional exact version, e.g. ``"0.22.1"``.

    Returns:
        The downloaded ``.whl``.

    Raises:
        InputError: If pip fails (e.g. no network).
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    requirement = "nimare" if version is None else f"nimare=={version}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), requirement]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("nimare-*.whl"))
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(dest, f"pip download nimare failed: {last}", "pass --nimare-wheel PATH instead")
    return wheels[-1]


def nimare_mni152_nlin6asym(
    cache_dir: str | Path, wheel: str | Path | None = None, download: bool = False
) -> Path | None:
    """Return the MNI152NLin6Asym T1 template, from an installed nimare, a given wheel, or a downloaded one.

    Args:
        cache_dir: Where the extracted template (and a downloaded wheel) are kept.
        wheel: A nimare wheel already on disk.
        download: Fetch the wheel with pip when neither nimare nor ``wheel`` is available.

    Returns:
        The template path, or ``None`` when it is not available and ``download`` is false.
    """
    pkg = _package_dir("nimare")
    if pkg is not None and (pkg.parent / NIMARE_TEMPLATE_MEMBER).is_file():
        return pkg.parent / NIMARE_TEMPLATE_MEMBER
    cache = Path(cache_dir)
    target = cache / Path(NIMARE_TEMPLATE_MEMBER).name
    if target.is_file():
        return target
    if wheel is None:
        cached = sorted(cache.glob("nimare-*.whl"))
        if cached:
            wheel = cached[-1]
        elif download:
            wheel = download_nimare_wheel(cache)
        else:
            return None
    return extract_from_wheel(wheel, NIMARE_TEMPLATE_MEMBER, target)


def default_templates(
    cache_dir: str | Path,
    nimare_wheel: str | Path | None = None,
    download_nimare: bool = False,
    sources_dir: str | Path | None = None,
) -> list[Template]:
    """The default dataset's sources: MNI templates for training, Colin27 for testing.

    Args:
        cache_dir: Where nimare's template is extracted.
        nimare_wheel: Optional nimare wheel to read the MNI152NLin6Asym template from.
        download_nimare: Fetch the nimare wheel with pip if needed.

        sources_dir: A folder holding copies of the three files under their usual names (for machines without
            nilearn, e.g. a GPU box); used instead of the package locations.

    Returns:
        The available templates (nimare's only when found or fetched).

    Raises:
        InputError: If the nilearn template or Colin27 is missing.
    """
    if sources_dir is not None:
        src = Path(sources_dir)
        mni, col = src / Path(NILEARN_MNI_MEMBER).name, src / COLIN27_NAME
        cache_dir = src  # the extracted nimare template is looked up here first
        for needed in (mni, col):
            if not needed.is_file():
                raise InputError(needed, "template copy not found in --sources-dir")
    else:
        found_mni, found_col = nilearn_mni152_2009a(), colin27()
        if found_mni is None:
            raise InputError(None, "nilearn's MNI152 template not found", "pip install 'mridiff[data]' (nilearn)")
        if found_col is None:
            raise InputError(shared_data_dir() / COLIN27_NAME, "Colin27 volume not found", "set MRIDIFF_SHARED")
        mni, col = found_mni, found_col
    out = [
        Template(
            key="mni152_2009a",
            path=mni,
            role="train",
            description="MNI ICBM152 2009a nonlinear symmetric T1 template (population average, brain-masked)",
            source="nilearn wheel: nilearn/" + NILEARN_MNI_MEMBER,
            licence="MNI ICBM152 licence: free use with attribution (Fonov et al. 2011; Copyright McConnell Brain "
            "Imaging Centre); nilearn itself is BSD-3-Clause",
        )
    ]
    nim = nimare_mni152_nlin6asym(cache_dir, nimare_wheel, download_nimare)
    if nim is not None:
        out.append(
            Template(
                key="mni152_nlin6asym",
                path=nim,
                role="train",
                description="FSL MNI152NLin6Asym T1 template, 1 mm (population average, with skull)",
                source="nimare wheel (MIT): " + NIMARE_TEMPLATE_MEMBER + " (TemplateFlow naming)",
                licence="MNI152 template terms as redistributed by FSL/TemplateFlow: use with attribution "
                "(Grabner et al. 2006; Evans et al. 2012)",
            )
        )
    out.append(
        Template(
            key="colin27",
            path=col,
            role="test",
            description="Colin27 T1 (one subject, 27 scans averaged, brain-extracted); test only",
            source="ANTsPy repository (ANTsX/ANTsPy @0cf1e566, data/ch2.nii.gz), via ../shared/data",
            licence="Apache-2.0 (ANTsPy); MNI research use with attribution (Holmes et al. 1998)",
        )
    )
    return out
