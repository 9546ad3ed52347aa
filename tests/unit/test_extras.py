"""needs_extra: a missing optional package becomes MissingExtra (one line naming the
pip command); anything else propagates as it is."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lookalike.indexer.errors import MissingExtra, ModelUnavailable, needs_extra
from lookalike.webapp.errors import status_of


def test_a_missing_package_names_the_extra_and_the_pip_command():
    with pytest.raises(MissingExtra) as caught:
        with needs_extra("clip", "the CLIP model openclip:X"):
            import lookalike_no_such_package  # noqa: F401
    err = caught.value
    assert (err.extra, err.module) == ("clip", "lookalike_no_such_package")
    assert str(err) == (
        "the CLIP model openclip:X needs the clip extra (lookalike_no_such_package is not "
        'installed): pip install "lookalike[clip]"'
    )
    assert status_of(err) == 503  # the web app: this server lacks it


def test_a_missing_first_party_module_is_a_bug_not_an_extra():
    with pytest.raises(ModuleNotFoundError):
        with needs_extra("gpu", "--device cuda"):
            import lookalike.indexer.no_such_module  # noqa: F401


def test_other_errors_pass_through():
    with pytest.raises(ModelUnavailable):
        with needs_extra("gpu", "--device cuda"):
            raise ModelUnavailable("not an import problem")


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("auto", "cpu"),  # no torch, no GPU to use
        ("cuda", 'MissingExtra --device cuda needs the gpu extra (torch is not installed): '
                 'pip install "lookalike[gpu]"'),
    ],
)  # fmt: skip
def test_devices_without_torch(device, expected):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from lookalike.indexer.errors import MissingExtra\n"
        "from lookalike.indexer.models.device import resolve_device\n"
        f"try: print(resolve_device({device!r}))\n"
        "except MissingExtra as e: print('MissingExtra', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected
