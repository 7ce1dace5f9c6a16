"""What the three training runs (EK-100 MIR fine-tuning, EgoClip pretraining, Charades-Ego fine-tuning) share: the model
arguments, the process set-up of a run, and the model and processor to train.

Importing this module is cheap (no torch), so the training scripts answer --help at once; the heavy modules are imported
inside the functions, when a run starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..demo.model import DEMO_MODEL_CONFIG
from ..utils.cli import UsageError, flag_given, parse_arguments


logger = logging.getLogger(__name__)

INITIALISATIONS = ("pretrained", "random")
"""`--init` choices: load the model's weights, or build its configuration with random weights."""

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INSTALLED_PROCESSOR = os.path.join(_PACKAGE, "hub_configs", "eva02at-b16")  # pip install . puts hub_configs/ there
REPOSITORY_PROCESSOR = (
    _INSTALLED_PROCESSOR
    if os.path.isdir(_INSTALLED_PROCESSOR)
    else os.path.join(os.path.dirname(_PACKAGE), "hub_configs", "eva02at-b16")  # a source checkout
)
"""The processor used when the model has none of its own: the repository's EVA02-AT-B/16 files (CLIP's tokenizer)."""


@dataclass
class ModelArguments:
    """The model a training run starts from (every training script takes these)."""

    model: str | None = field(
        default=None,
        metadata={
            "help": "a folder or Hub id that from_pretrained loads (converted or trained checkpoint), or a "
            "configuration folder such as hub_configs/eva02at-b16 with --init random; required with "
            "real data (the demo's default: its own small model)"
        },
    )
    init: str | None = field(
        default=None,
        metadata={
            "help": "load --model's weights ('pretrained', the default with --model; a folder or id without "
            "weights is an error) or initialise its configuration randomly ('random', the demo's own "
            "model)",
            "choices": INITIALISATIONS,
        },
    )
    num_frames: int | None = field(default=None, metadata={"help": "frames per clip (default: the model's)"})
    processor: str | None = field(
        default=None,
        metadata={
            "help": "the processor folder, when --model has none of its own (default: the repository's "
            "hub_configs/eva02at-b16)"
        },
    )
    no_temporal_rope: bool = field(
        default=False, metadata={"help": "ablation: spatial RoPE only (without it: the model configuration's)"}
    )
    no_temporal_embedding: bool = field(
        default=False,
        metadata={"help": "ablation: no learnable temporal embedding (without it: the model configuration's)"},
    )

    def __post_init__(self):
        if self.model is None and self.init == "pretrained":
            raise ValueError("--init pretrained needs --model (the demo's own small model has no weights)")
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"--num-frames must be at least 1, got {self.num_frames}")

    def vision_overrides(self) -> dict:
        """The ablations as `vision_config` fields: False switches a source of temporal order off, None keeps the
        configuration's switch."""
        temporal = {"use_temporal_rope": self.no_temporal_rope, "use_temporal_embedding": self.no_temporal_embedding}
        return {name: False if off else None for name, off in temporal.items()}


def parse_training_arguments(
    argument_types: Sequence[type],
    argv: Sequence[str] | None = None,
    *,
    data_argument: str,
    demo: dict,
    recipe: dict | None = None,
    description: str | None = None,
) -> tuple:
    """A training script's argument dataclasses from its command line (`modeling_eva02at.utils.cli.parse_arguments`).

    Defaults are layered, each over the one before: the dataclasses', `recipe` (the paper's settings for this task),
    and `demo` when the command line does not give `data_argument` (the flag naming real data, e.g. "train_csv"; the
    demo runs on the CPU where no GPU is found). A flag on the command line beats them all.
    """
    import sys

    import torch

    argv = sys.argv[1:] if argv is None else list(argv)
    defaults = dict(recipe or {})
    if not flag_given(argv, data_argument):
        defaults.update(demo, use_cpu=not torch.cuda.is_available())
    return parse_arguments(argument_types, argv, description=description, defaults=defaults)


def require_model_for_real_data(model_args: ModelArguments, data_flag: str) -> None:
    """Real data trains a model given by --model: without it the demo's tiny model would be trained from random
    weights, which is never what a run on real data wants."""
    if model_args.model is None:
        raise UsageError(
            f"--model is required with {data_flag} (without it the demo's tiny model would be trained "
            "from random weights; --model hub_configs/eva02at-b16 --init random trains the paper's "
            "architecture from scratch)"
        )


def prepare_run(training_args) -> None:
    """The process set-up every training run starts with: INFO logging on the processes that log (WARNING on the
    others), glibc's allocator and the torch thread count tuned when training on CPU (`utils.runtime`), and the
    seed."""
    import torch
    from transformers import set_seed

    from ..utils.runtime import set_cpu_threads, tune_cpu_allocator

    logging.basicConfig(
        level=logging.INFO if training_args.should_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if training_args.use_cpu or not torch.cuda.is_available():
        tune_cpu_allocator()
        set_cpu_threads(training_args.dataloader_num_workers)
    set_seed(training_args.seed)


def train_and_save(trainer, training_args, *, save_model: bool = True) -> None:
    """Train (resuming from --resume-from-checkpoint: a checkpoint folder, or True / last) and save the final model in
    --output-dir: config, weights, remote-code files and processor. With --push-to-hub that save is pushed once, as
    "End of training" (`Eva02AtTrainer.push_to_hub`: a complete repo folder). `save_model=False` keeps nothing (the
    temporal ablation keeps only the scores)."""
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if not save_model:
        return
    if training_args.push_to_hub:
        trainer.push_to_hub()  # saves first; Trainer.save_model would push a second, identical "Model save" commit
    else:
        trainer.save_model()


def saved_line(output_dir: str) -> str:
    """The last line a training script prints: where the model is and how to load it."""
    return f"Saved to {output_dir}: load with AutoModel.from_pretrained({output_dir!r}, trust_remote_code=True)"


def load_model_for_training(
    model: str | None,
    *,
    init: str | None = None,
    num_frames: int | None = None,
    default_config: dict = DEMO_MODEL_CONFIG,
    processor_folder: str | None = None,
    vision_overrides: dict | None = None,
):
    """The model to train and a processor that feeds it. `ModelArguments` give them all
    (:func:`load_model_from_arguments`).

    Args:
        model: a folder or Hub id that `from_pretrained` loads (weights as it resolves them: safetensors, sharded,
            .bin, a Hub id in the cache), or, with `init="random"`, a configuration folder such as
            hub_configs/eva02at-b16. None: `default_config`.
        init: "pretrained" (load the weights) or "random" (the configuration with random weights). None: pretrained
            with a `model`, random without.
        num_frames: frames per clip; None keeps the configuration's. A pretrained model at another count is resized
            (`Eva02AtModel.resize_num_frames`: temporal embedding interpolated, RoPE rebuilt).
        default_config: `Eva02AtConfig` keyword arguments of the model used without `model` (default: the demo's).
        processor_folder: the processor used when `model` has none of its own (default: :data:`REPOSITORY_PROCESSOR`).
        vision_overrides: `vision_config` fields set before the model is built, e.g. `{"use_temporal_rope": False}`
            for an ablation; a None value keeps the configuration's.

    Returns:
        `(Eva02AtModel, Eva02AtProcessor)`: the model in float32, and the processor set to the model's frame count and
        image size (`utils.processor.match_processor_to_model`).

    Raises:
        ValueError: an unknown `init`, "pretrained" without a `model`, or an override that is no `vision_config` field.
        FileNotFoundError: a "pretrained" `model` without weights; the message says to add --init random.
    """
    import torch
    from transformers.utils import cached_file

    from .. import register_auto_classes
    from ..configuration_eva02at import Eva02AtConfig
    from ..modeling_eva02at import Eva02AtModel
    from ..processing_eva02at import Eva02AtProcessor
    from ..utils.processor import match_processor_to_model

    # the processor's video processor loads as the package's class, not remote code, and saved folders get auto_map
    register_auto_classes()
    init = init or ("pretrained" if model is not None else "random")
    if init not in INITIALISATIONS:
        raise ValueError(f"init must be one of {', '.join(INITIALISATIONS)}, got {init!r}")
    if init == "pretrained" and model is None:
        raise ValueError("init='pretrained' needs a model folder or Hub id (--model): default_config has no weights")

    config = Eva02AtConfig(**default_config) if model is None else Eva02AtConfig.from_pretrained(model)
    for name, value in (vision_overrides or {}).items():
        if not hasattr(config.vision_config, name):
            raise ValueError(f"vision_overrides: {name!r} is not a field of the vision config (Eva02AtVisionConfig)")
        if value is not None:
            setattr(config.vision_config, name, value)

    if init == "random":
        logger.info(f"random initialisation (--init random) of {model or 'the demo model'}")
        if num_frames:
            config.vision_config.num_frames = num_frames
        network = Eva02AtModel(config)
    else:
        try:
            network = Eva02AtModel.from_pretrained(model, config=config, dtype=torch.float32)
        except OSError as error:
            raise FileNotFoundError(
                f"--model {model}: no weights that from_pretrained can load ({error}). Pass a folder or Hub id "
                "with weights (model.safetensors, a sharded model.safetensors.index.json, pytorch_model.bin), or "
                "add --init random to train this configuration from random initialisation."
            ) from error
        if num_frames and num_frames != network.config.vision_config.num_frames:
            logger.info(
                f"temporal embedding interpolated from {network.config.vision_config.num_frames} to {num_frames} frames"
            )
            network.resize_num_frames(num_frames)

    own_processor = model is not None and cached_file(
        model,
        "processor_config.json",
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )
    if not own_processor:
        processor_folder = processor_folder or REPOSITORY_PROCESSOR
        if not os.path.isfile(os.path.join(processor_folder, "processor_config.json")):
            raise FileNotFoundError(
                f"no processor for {model or 'the demo model'}: {processor_folder} has no processor_config.json. Pass "
                "--processor with a processor folder, e.g. hub_configs/eva02at-b16 of the source repository"
            )
    processor = Eva02AtProcessor.from_pretrained(model if own_processor else processor_folder)
    # from_pretrained copies `config`: the model's own (resized) one is what the processor must match
    match_processor_to_model(processor, network.config, resize=True)
    return network, processor


def load_model_from_arguments(model_args: ModelArguments):
    """:func:`load_model_for_training` of what `model_args` ask for."""
    return load_model_for_training(
        model_args.model,
        init=model_args.init,
        num_frames=model_args.num_frames,
        processor_folder=model_args.processor,
        vision_overrides=model_args.vision_overrides(),
    )


__all__ = [
    "INITIALISATIONS",
    "REPOSITORY_PROCESSOR",
    "ModelArguments",
    "parse_training_arguments",
    "load_model_for_training",
    "load_model_from_arguments",
    "prepare_run",
    "require_model_for_real_data",
    "saved_line",
    "train_and_save",
]
