"""Hub repos of EVA02-AT checkpoints: assemble the complete folder, render the model card, push in one commit.

`assemble` builds and checks the folder (weights, config with `auto_map` and `custom_pipelines`, processor files,
the remote-code files, the Inference Endpoints `handler.py`, README.md), `card` renders README.md from the package's
`model_card.md`, `push` uploads with huggingface_hub. `handler.py` is the handler's source, copied verbatim. See
docs/hub.md; `examples/push_to_hub.py` is the command line. The Gradio app and its Space are `modeling_eva02at.app`.
"""

from .assemble import REQUIRED_FILES, assemble_repo_folder, check_repo_folder, check_repo_id, repo_files
from .card import read_eval_reports, render_model_card
from .push import push_checkpoint, push_to_hub


__all__ = [
    "REQUIRED_FILES",
    "assemble_repo_folder",
    "check_repo_folder",
    "check_repo_id",
    "push_checkpoint",
    "push_to_hub",
    "read_eval_reports",
    "render_model_card",
    "repo_files",
]
