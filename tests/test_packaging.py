"""The package as users install it: a plain (non-editable) `pip install` into a fresh virtual environment that has the
core dependencies only (none of the `train` extra), run from outside the source checkout: the Hub assembly finds its
card template (package data) and an evaluation runs end to end.

The fresh environment borrows this environment's installed packages through a folder of links, leaving out this
package and the `train` extra's packages, so no download is needed. `linked_venv` and `installed_with_dependencies`
build such environments for other tests too (tests/test_seams_install.py: a Hub repo's install line).
"""

import json
import os
import re
import shutil
import site
import subprocess
import venv
from importlib.metadata import distribution, requires

import pytest
from packaging.requirements import Requirement

from modeling_eva02at.demo.ek100 import make_demo_dataset

from .conftest import REPO_ROOT


TRAIN_EXTRA = ("accelerate", "datasets", "evaluate", "pyarrow", "pytorch-optimizer")
SITE_PACKAGES = site.getsitepackages()[0]


def distribution_name(requirement: str) -> str:
    return re.split(r"[ <>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_core_dependencies_are_what_inference_needs_and_the_extras_the_rest():
    requirements = requires("modeling-eva02at")
    core = {distribution_name(r) for r in requirements if "extra ==" not in r}
    assert core == {
        "torch",
        "transformers",
        "safetensors",
        "huggingface-hub",
        "numpy",
        "pandas",
        "pillow",
        "decord",
        "av",
        "tqdm",
    }
    train = {distribution_name(r) for r in requirements if 'extra == "train"' in r}
    assert train == set(TRAIN_EXTRA)
    assert {distribution_name(r) for r in requirements if 'extra == "app"' in r} == {"gradio"}


def excluded(name: str) -> bool:
    """Site-packages entries the fresh environment must not see: this package and the train extra's packages."""
    stem = re.split(r"[-.]", name, maxsplit=1)[0].lower().replace("-", "_")
    blocked = {"modeling_eva02at", "__editable__", "__editable___modeling_eva02at_0_1_0_finder"}
    blocked |= {package.replace("-", "_") for package in TRAIN_EXTRA}
    return stem in blocked or name.startswith("__editable__")


def linked_venv(root, entries) -> str:
    """A new virtual environment in `root` that sees the `entries` (names) of this environment's site-packages through
    a folder of links, so nothing is downloaded or copied; returns its python."""
    view = root / "linked-packages"
    view.mkdir()
    for name in entries:
        os.symlink(os.path.join(SITE_PACKAGES, name), view / name)
    environment = root / "venv"
    venv.EnvBuilder(with_pip=False).create(environment)
    python = str(environment / "bin" / "python")
    target = subprocess.run(
        [python, "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with open(os.path.join(target, "linked-packages.pth"), "w") as handle:
        handle.write(str(view) + "\n")
    return python


def installed_with_dependencies(requirements) -> set[str]:
    """The site-packages entries (packages, modules, .dist-info and .libs folders) of the distributions that
    `requirements` name and of everything they require, as pip would install them here: markers evaluated for this
    machine, requested extras followed."""
    todo = [Requirement(line) for line in requirements]
    seen, entries = set(), set()
    while todo:
        requirement = todo.pop()
        key = (requirement.name.lower().replace("_", "-"), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        found = distribution(requirement.name)
        for line in found.requires or []:
            needed = Requirement(line)
            extras = ("", *requirement.extras)
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append(needed)
        # RECORD's first path parts; scripts (../../bin) and .pth files are not packages.
        entries |= {path.parts[0] for path in found.files or [] if path.parts[0] != ".."}
    return {name for name in entries if not name.endswith(".pth") and name != "__pycache__"}


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory):
    """A new virtual environment with the package installed from the source tree, non-editable, no extras."""
    root = tmp_path_factory.mktemp("fresh")
    core = [name for name in os.listdir(SITE_PACKAGES) if not excluded(name) and not name.endswith(".pth")]
    python = linked_venv(root, core)
    # A clean copy of the source: a build/ or *.egg-info left by an earlier build would hand setuptools its old file
    # list, and package data missing from pyproject.toml would go unnoticed.
    tree = root / "source"
    shutil.copytree(
        REPO_ROOT, tree, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "outputs")
    )
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    return python, root


def run(python, *argv, cwd):
    return subprocess.run(
        [python, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""},
    )


def test_the_import_contracts_cover_every_remote_code_file():
    """A remote-code file left out of pyproject's contracts would be free to import the package's subpackages."""
    import tomllib

    from modeling_eva02at import REMOTE_CODE_FILES

    with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as handle:
        contracts = {c["name"]: c for c in tomllib.load(handle)["tool"]["importlinter"]["contracts"]}
    modules = {f"modeling_eva02at.{name[:-3]}" for name in REMOTE_CODE_FILES}
    assert set(contracts["the remote-code files import only each other"]["source_modules"]) == modules
    remote_layer = next(layer for layer in contracts["layers"]["layers"] if "pipeline_eva02at" in layer)
    assert {module.strip() for module in remote_layer.split(":")} == modules


def test_the_installed_package_is_a_copy_without_the_train_extra(fresh_python):
    python, root = fresh_python
    probe = (
        "import importlib.util, os, modeling_eva02at, modeling_eva02at.hub.card as card\n"
        "print(modeling_eva02at.__file__)\n"
        "print(card.TEMPLATE.is_file())\n"
        "from modeling_eva02at.training.setup import REPOSITORY_PROCESSOR\n"
        "print(os.path.isfile(os.path.join(REPOSITORY_PROCESSOR, 'tokenizer.json')), REPOSITORY_PROCESSOR)\n"
        "print([name for name in ('accelerate', 'datasets', 'evaluate', 'pyarrow', 'pytorch_optimizer')\n"
        "       if importlib.util.find_spec(name)])"
    )
    result = run(python, "-c", probe, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    path, template, processor, extras = result.stdout.split("\n")[:4]
    assert "site-packages" in path and not path.startswith(REPO_ROOT), path
    # the processor a model without one trains with (the demo's): installed with the package, not read from the checkout
    assert processor.startswith("True ") and "site-packages" in processor, processor
    assert template == "True" and extras == "[]"


def test_the_packages_listed_in_pyproject_are_the_source_tree():
    """pyproject.toml lists the packages by hand (to install hub_configs/ inside the package): a new subpackage left
    out of the list would be missing from every non-editable install."""
    import tomllib

    with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as handle:
        setuptools = tomllib.load(handle)["tool"]["setuptools"]
    in_tree = {
        os.path.relpath(folder, REPO_ROOT).replace(os.sep, ".")
        for folder, _, files in os.walk(os.path.join(REPO_ROOT, "modeling_eva02at"))
        if "__pycache__" not in folder and any(name.endswith(".py") for name in files)
    }
    assert set(setuptools["packages"]) == in_tree | {"modeling_eva02at.hub_configs"}
    assert setuptools["package-dir"] == {"modeling_eva02at.hub_configs": "hub_configs"}


def test_push_dry_run_and_an_evaluation_from_the_installed_package(fresh_python, tmp_path, mir_processor):
    from .conftest import tiny_mir_model

    python, root = fresh_python
    model = tmp_path / "model"
    tiny_mir_model(seed=5).save_pretrained(model)
    mir_processor.save_pretrained(model)

    repo = tmp_path / "repo"
    push = run(
        python,
        os.path.join(REPO_ROOT, "examples", "push_to_hub.py"),
        "--model",
        str(model),
        "--repo-id",
        "someone/eva02at-tiny",
        "--dry-run",
        "--output",
        str(repo),
        cwd=root,
    )
    assert push.returncode == 0, push.stderr[-3000:]
    card = (repo / "README.md").read_text()
    assert card.startswith("---") and "someone/eva02at-tiny" in card and "custom_code" in card
    assert {"handler.py", "pipeline_eva02at.py", "model.safetensors"} <= set(os.listdir(repo))

    demo = make_demo_dataset(tmp_path / "demo", num_train=8, num_test=8)
    report = tmp_path / "ek100_mir.json"
    evaluation = run(
        python,
        os.path.join(REPO_ROOT, "examples", "eval_ek100_mir.py"),
        "--model",
        str(model),
        "--test-csv",
        demo.test_csv,
        "--sentence-csv",
        demo.test_sentence_csv,
        "--video-root",
        demo.video_root,
        "--num-workers",
        "0",
        "--dtype",
        "float32",
        "--no-progress",
        "--output-json",
        str(report),
        cwd=root,
    )
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    metrics = json.loads(report.read_text())["metrics"]
    assert 0 <= metrics["avg_mAP"] <= 1 and "EK-100 MIR (percent)" in evaluation.stdout
