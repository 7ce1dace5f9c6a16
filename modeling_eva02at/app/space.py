"""A Hugging Face Space of the app (`modeling_eva02at.app`): assemble its repo folder, push it in one commit.

The folder is self-contained, so the Space runs without this package being published anywhere:

    README.md           the Space card: YAML front matter (sdk gradio, app_file, python_version, models) and a text
    app.py              the launcher: sets the app's model, index and examples (the Space's variables win), then runs
                        the app of the vendored package
    requirements.txt    this package's runtime requirements (gradio comes with the Space's sdk)
    modeling_eva02at/   a copy of this package's Python files
    index/, videos/     a copy of a search index whose clips point at the copied videos by relative paths
                        (`copy_index_with_videos`), when an index is given
    examples/           example videos for the first tab, when given

The model is a Hub model id, loaded from the Hub when the Space starts (a local folder is refused: the Space could not
read it; push it first with examples/push_to_hub.py). An index is checked against it here when the model is in the
local Hub cache (`model_fingerprint`), and again by the app at start-up.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

from huggingface_hub import CommitOperationAdd, HfApi

from ..hub.assemble import check_repo_id
from ..hub.push import resolve_token
from ..utils.files import staged_folder


logger = logging.getLogger(__name__)

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_GRADIO_VERSION = "6.31.0"
"""The Space's `sdk_version` when gradio is not installed here (the newest 6.x when this was written)."""
SPACE_FILES = ("README.md", "app.py", "requirements.txt")

LAUNCHER = '''"""Hugging Face Space entry point: the EVA02-AT app (modeling_eva02at/app, copied here) with this Space's
model, index and example videos. The Space's variables EVA02AT_MODEL, EVA02AT_INDEX and EVA02AT_EXAMPLES win."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
for name, value, local in {settings}:
    if value is not None:
        os.environ.setdefault(name, os.path.join(HERE, value) if local else value)

from modeling_eva02at.app.cli import AppArguments, launch_app  # noqa: E402
from modeling_eva02at.utils.cli import parse_arguments, run_script  # noqa: E402

run_script(lambda: launch_app(*parse_arguments((AppArguments,))))
'''


def runtime_requirements() -> list[str]:
    """This package's requirements without the optional extras, as pip reads them (with environment markers)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        requirements = requires("modeling-eva02at") or []
    except PackageNotFoundError:
        import tomllib

        pyproject = os.path.join(os.path.dirname(PACKAGE_DIR), "pyproject.toml")
        if not os.path.isfile(pyproject):
            raise FileNotFoundError(
                "cannot tell this package's requirements: it is not installed (pip install -e .) "
                f"and {pyproject} does not exist"
            ) from None
        with open(pyproject, "rb") as handle:
            requirements = tomllib.load(handle)["project"]["dependencies"]
    return [line for line in requirements if "extra ==" not in line]


def gradio_version() -> str:
    try:
        from importlib.metadata import version

        return version("gradio")
    except Exception:  # not installed here: the Space installs the version its card names
        return DEFAULT_GRADIO_VERSION


def check_space_model(model: str) -> str:
    """`model` if it is a Hub model id ("owner/name"), which is how a Space loads its model; else ValueError saying to
    push the model first. A local folder is refused even though it loads here: its path would be written into the
    Space's app.py, where nothing is at that path."""
    push_first = (
        f"push it first (python examples/push_to_hub.py --model {model} --repo-id OWNER/NAME) and give its id "
        "(--model OWNER/NAME)"
    )
    if os.path.exists(model):
        raise ValueError(
            f"the Space's model {model} is a local folder, and a Space loads its model from the Hub: {push_first}"
        )
    try:
        check_repo_id(model)
    except ValueError as error:
        raise ValueError(
            f"the Space's model must be a Hub model id: {error}; for a local model, {push_first}"
        ) from None
    return model


def space_card(space_id: str, model: str, *, title: str | None, with_index: bool, sdk_version: str) -> str:
    name = title or space_id.split("/")[-1]
    metadata = {
        "title": name,
        "emoji": "🎬",
        "colorFrom": "blue",
        "colorTo": "green",
        "sdk": "gradio",
        "sdk_version": sdk_version,
        "python_version": "3.11",
        "app_file": "app.py",
        "pinned": False,
        "short_description": "Zero-shot video classification and text-to-video search with EVA02-AT",
        "models": [model],
    }
    front = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in metadata.items())
    model_line = f"[{model}](https://huggingface.co/{model})"
    search = (
        "a second tab searches the videos of this Space's index"
        if with_index
        else "the search tab needs an index (examples/push_space.py --index)"
    )
    return (
        f"---\n{front}\n---\n\n# {name}\n\n"
        f"Zero-shot video classification with the EVA02-AT model {model_line}: upload a video, type labels, see the "
        f"scores; {search}. EVA02-AT is an egocentric video-language dual encoder (arXiv 2506.14356).\n\n"
        "Made with `examples/push_space.py` of the modeling_eva02at package; the app is "
        "`modeling_eva02at/app/ui.py`. The variables EVA02AT_MODEL, EVA02AT_INDEX and EVA02AT_EXAMPLES of the Space's "
        "settings override the model, index and example folders set in app.py.\n"
    )


def assemble_space_folder(
    output_dir: str,
    space_id: str,
    model: str,
    *,
    index: str | None = None,
    examples: str | None = None,
    title: str | None = None,
    sdk_version: str | None = None,
    overwrite: bool = False,
) -> list[str]:
    """Write the repo folder of a Space that runs the app for `model` to `output_dir`, atomically (built beside it and
    swapped in).

    Args:
        output_dir: the folder to write; it must not exist or be empty, unless `overwrite`.
        space_id: the Space ("owner/name"), for its card.
        model: what the Space loads: a Hub model id, e.g. the repo of examples/push_to_hub.py (a local folder is
            refused, see :func:`check_space_model`).
        index: a search index (examples/index_videos.py) made with this model: copied with its videos.
        examples: a folder of example videos for the first tab (the first 12, as the app shows them).
        title: the Space's title (default: its name). sdk_version: gradio's (default: the installed one).

    Returns:
        The folder's files, relative and sorted.

    Raises:
        IndexMismatchError: `index` was made with another model than `model` (checked when `model` is in the local
            Hub cache; a model that cannot be checked here is logged, and the app checks at start-up).
        FileNotFoundError / FileExistsError / ValueError: a missing input, a non-empty `output_dir`, a bad Space id,
            a model that is not a Hub id.
    """
    from ..evaluation.fingerprint import model_fingerprint
    from ..search.build import copy_index_with_videos
    from ..search.sources import VideoFolder
    from ..search.store import VideoIndex

    check_repo_id(space_id)
    check_space_model(model)
    output_dir = os.path.abspath(output_dir)
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise FileExistsError(
            f"output folder {output_dir} is not empty: choose another, or overwrite it (--overwrite / overwrite=True)"
        )
    loaded_index = VideoIndex.load(index) if index else None
    if loaded_index is not None:
        fingerprint = model_fingerprint(model)
        if isinstance(fingerprint["model"], dict):
            loaded_index.check_model(fingerprint, what=f"the Space's model {model}")
        else:
            logger.warning(
                f"the model {model} is not in the local Hub cache: the index {index} "
                "cannot be checked against it here (the app checks at start-up)"
            )
    example_paths = VideoFolder(examples).video_paths()[:12] if examples else []
    if examples and not example_paths:
        raise FileNotFoundError(f"no videos in the examples folder {examples}")

    with staged_folder(output_dir) as staging:
        shutil.copytree(
            PACKAGE_DIR,
            os.path.join(staging, "modeling_eva02at"),
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        settings = [("EVA02AT_MODEL", model, False)]
        if loaded_index is not None:
            copy_index_with_videos(loaded_index, os.path.join(staging, "index"), os.path.join(staging, "videos"))
            settings.append(("EVA02AT_INDEX", "index", True))
        if example_paths:
            os.makedirs(os.path.join(staging, "examples"))
            for number, path in enumerate(example_paths):
                shutil.copy2(path, os.path.join(staging, "examples", f"{number:02d}-{os.path.basename(path)}"))
            settings.append(("EVA02AT_EXAMPLES", "examples", True))
        with open(os.path.join(staging, "app.py"), "w") as handle:
            handle.write(LAUNCHER.format(settings=repr(settings)))
        with open(os.path.join(staging, "requirements.txt"), "w") as handle:
            handle.write("\n".join(runtime_requirements()) + "\n")
        with open(os.path.join(staging, "README.md"), "w", encoding="utf-8") as handle:
            handle.write(
                space_card(
                    space_id,
                    model,
                    title=title,
                    with_index=loaded_index is not None,
                    sdk_version=sdk_version or gradio_version(),
                )
            )
    return space_files(output_dir)


def space_files(folder: str) -> list[str]:
    """Every file of a Space folder, relative to it, sorted."""
    return sorted(
        os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder) for name in names
    )


def push_space(
    folder: str,
    space_id: str,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str = "Upload the EVA02-AT app",
):
    """Create the gradio Space `space_id` if needed and upload the Space folder `folder` in ONE commit; refuses an
    incomplete folder, a bad id or a missing token before any network call. Returns huggingface_hub's `CommitInfo`."""
    check_repo_id(space_id)
    missing = [
        name for name in (*SPACE_FILES, "modeling_eva02at/app/cli.py") if not os.path.isfile(os.path.join(folder, name))
    ]
    if missing:
        raise FileNotFoundError(
            f"not uploading {folder}: it lacks {', '.join(missing)}. Assemble it with "
            f"examples/push_space.py --dry-run --output {folder}"
        )
    token = resolve_token(token)
    api = HfApi(token=token)
    api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.path.join(folder, name))
        for name in space_files(folder)
    ]
    return api.create_commit(space_id, repo_type="space", operations=operations, commit_message=commit_message)


__all__ = ["assemble_space_folder", "check_space_model", "push_space", "runtime_requirements", "space_files"]
