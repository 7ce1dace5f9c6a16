"""Upload an assembled repo folder to the Hub in one commit, refusing before any network call when it cannot work."""

from __future__ import annotations

import os
import tempfile

from huggingface_hub import CommitOperationAdd, HfApi, get_token

from .assemble import assemble_repo_folder, check_repo_folder, check_repo_id, repo_files


DEFAULT_COMMIT_MESSAGE = "Upload EVA02-AT model, processor, pipeline, handler and model card"


def resolve_token(token: str | None = None) -> str:
    """`token`, else the one `hf auth login` stored or HF_TOKEN; PermissionError saying how to log in if none."""
    token = token or get_token()
    if not token:
        raise PermissionError(
            "no Hugging Face token: log in with `hf auth login`, set HF_TOKEN, or pass --token "
            "(a token with write access, from https://huggingface.co/settings/tokens)"
        )
    return token


def push_to_hub(
    folder: str,
    repo_id: str,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
):
    """Upload the repo folder `folder` (:func:`~modeling_eva02at.hub.assemble.assemble_repo_folder`) to `repo_id`.

    Everything is checked first, with no network call: the repo id, the folder's completeness, and that a token is
    available (`token`, else the one `hf auth login` stored or `HF_TOKEN`). Then the repo is created if needed
    (`private` applies to a new repo only), the branch `revision` too, and the files of :func:`repo_files` go up in
    ONE commit, so the repo is never seen with half the files.

    Returns:
        huggingface_hub's `CommitInfo` of the commit.
    """
    check_repo_id(repo_id)
    problems = check_repo_folder(folder)
    if problems:
        raise FileNotFoundError(
            f"not uploading {folder}: {'; '.join(problems)}. Assemble it with "
            f"examples/push_to_hub.py --dry-run --output {folder}"
        )
    token = resolve_token(token)
    files = repo_files(folder)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.path.join(folder, name)) for name in files]
    return api.create_commit(
        repo_id, operations=operations, commit_message=commit_message or DEFAULT_COMMIT_MESSAGE, revision=revision
    )


def push_checkpoint(
    checkpoint_dir: str,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    eval_json=None,
):
    """Assemble `checkpoint_dir` (a model folder or a Trainer checkpoint) into a temporary repo folder and push it:
    the Trainer's pushes go through here, so each one is a complete, loadable repo. `eval_json`: eval reports for
    the card, each of which must have measured this checkpoint (:func:`~modeling_eva02at.hub.card.read_eval_reports`).
    Returns the `CommitInfo`."""
    check_repo_id(repo_id)
    token = resolve_token(token)  # before the assembly, which takes a while
    with tempfile.TemporaryDirectory(prefix="eva02at-hub-") as staging:
        folder = os.path.join(staging, "repo")
        assemble_repo_folder(checkpoint_dir, folder, repo_id, eval_json)
        return push_to_hub(
            folder, repo_id, token=token, private=private, revision=revision, commit_message=commit_message
        )


__all__ = ["DEFAULT_COMMIT_MESSAGE", "push_checkpoint", "push_to_hub", "resolve_token"]
