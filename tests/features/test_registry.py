"""Extractor names and optional packages are checked without importing librosa."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A meta-path finder that makes a package absent, as on a machine without the extra.
HIDE = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Hide())
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_spec_validation_imports_no_extractor_or_librosa() -> None:
    code = (
        "import sys\n"
        "from features._registry import ALL_EXTRACTORS, VOICE_EXTRACTORS\n"
        "from features.config import FeaturesSpec\n"
        "FeaturesSpec(extractors=[*ALL_EXTRACTORS, *VOICE_EXTRACTORS], beat_level=True)\n"
        "banned = ('librosa', 'numba', 'parselmouth', 'opensmile')\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in banned\n"
        "         or m.startswith('features.extractors')]\n"
        "assert not heavy, heavy\n"
    )
    # features/__init__ imports the engine; validation reads features.config directly.
    result = _python("import sys; sys.modules.pop('features', None)\n" + _bare(code))
    assert result.returncode == 0, result.stderr


def _bare(code: str) -> str:
    """Import features.config without running features/__init__.py (the engine)."""
    return (
        "import importlib.util, sys, types\n"
        "pkg = types.ModuleType('features'); pkg.__path__ = ['features']\n"
        "sys.modules['features'] = pkg\n" + code
    )


def test_extractor_without_its_package_fails_validation_with_install_command(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: voice\ndata: {source: folder, root: data}\nfeatures: {extractors: [mfcc, praat]}\n"
    )
    code = HIDE.format(hidden={"parselmouth"}) + (
        f"from runner.cli import main\nraise SystemExit(main(['validate', {str(spec)!r}]))\n"
    )
    result = _python(code)
    assert result.returncode == 2, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "features.extractors" in out and "praat" in out
    assert "praat-parselmouth" in out and 'pip install "audioml[voice]"' in out


def test_unknown_extractor_lists_the_choices() -> None:
    import pytest
    from pydantic import ValidationError

    from features.config import FeaturesSpec

    with pytest.raises(
        ValidationError, match=r"features\.extractors: 'loudness' is not one of .*egemaps.*tonnetz"
    ):
        FeaturesSpec(extractors=["loudness"])


def test_dask_executor_without_dask_fails_validation_with_install_command() -> None:
    code = HIDE.format(hidden={"distributed"}) + (
        "from runner.cli import main\n"
        "raise SystemExit(main(['validate', 'demo', '--executor', 'dask']))\n"
    )
    result = _python(code)
    assert result.returncode == 2, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "features.executor" in out and "pip install 'audioml[dask]'" in out


def test_a_second_batch_form_of_one_extractor_is_refused() -> None:
    import pytest

    from features._registry import FEATURES, register_batched, register_feature
    from features.errors import FeatureError

    register_feature("twice_batched_for_test")(lambda ctx: {"x": 0.0})
    try:
        register_batched("twice_batched_for_test")(lambda ctxs: [{"x": 0.0} for _ in ctxs])
        with pytest.raises(FeatureError) as twice:
            register_batched("twice_batched_for_test")(lambda ctxs: [])
        assert str(twice.value) == (
            "extractor: 'twice_batched_for_test' already has a batch form registered"
        )
    finally:
        del FEATURES["twice_batched_for_test"]
