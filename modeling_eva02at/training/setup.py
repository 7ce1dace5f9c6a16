"""What the training scripts (`examples/train_mir.py`, `pretrain_egoclip.py`, `finetune_charades_ego.py`) share: their
parser and its `--help-all`, the `Eva02AtTrainingArguments` parsed from the flags it leaves, the process set-up of a
run, and the model and processor to train.

Importing this module is cheap (no torch, no transformers), so the scripts answer --help at once; the heavy modules
are imported inside the functions, when a run starts.
"""

from __future__ import annotations

import argparse
import logging

from ..evaluation.cli import ArgumentParser

logger = logging.getLogger(__name__)

INITIALISATIONS = ("pretrained", "random")
"""`--init` choices: load the model's weights, or build its configuration with random weights."""


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------


def training_script_parser(prog: str, description: str, flag_examples: str) -> ArgumentParser:
    """A training script's own parser, with `--help-all`: each flag as --dashed-flag and --underscore_flag, no
    abbreviations (one could swallow a `TrainingArguments` flag meant for transformers), and an epilog saying that
    every `TrainingArguments` flag is accepted too, `flag_examples` naming a few.

    A script's `main` prints :func:`print_training_help` and returns when `--help-all` is set; it is not an argparse
    help action, because those exit the process and `main(argv)` is also called from Python.
    """
    parser = ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        epilog=f"Every transformers.TrainingArguments flag is also accepted ({flag_examples}, ...),\n"
        "with dashes or underscores: --help-all lists them.",
    )
    parser.add_argument("--help-all", action="store_true",
                        help="list every flag of Eva02AtTrainingArguments (transformers' TrainingArguments and the "
                             "settings below) and exit; imports transformers")  # fmt: skip
    return parser


def training_argument_parser(prog: str):
    """transformers' `HfArgumentParser` for `Eva02AtTrainingArguments`, under the script's name."""
    from transformers import HfArgumentParser

    from .trainer import Eva02AtTrainingArguments

    # no abbreviations, as in the scripts' own parsers: a misspelt flag is an error rather than another flag
    return HfArgumentParser(Eva02AtTrainingArguments, prog=prog, allow_abbrev=False)


def print_training_help(parser: argparse.ArgumentParser) -> None:
    """What `--help-all` prints: every `Eva02AtTrainingArguments` flag, under `parser`'s program name."""
    training_argument_parser(parser.prog).print_help()


def check_model_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--model, --init and --num-frames, checked before anything is loaded (a usage error, exit status 2)."""
    if args.model is None and args.init == "pretrained":
        parser.error("--init pretrained needs --model (the demo's own small model has no weights)")
    if args.num_frames is not None and args.num_frames < 1:
        parser.error(f"--num-frames must be at least 1, got {args.num_frames}")


def parse_training_arguments(parser: argparse.ArgumentParser, argv: list[str], settings: dict, *,
                             recipe: dict | None = None, demo: dict | None = None):  # fmt: skip
    """`Eva02AtTrainingArguments` from the flags a script's own parser left in `argv` (transformers' own).

    Defaults are layered, each over the one before: the dataclass's, `recipe` (the paper's settings for this task),
    `demo` (only when running the demo; `use_cpu` is added when no GPU is found), and last `settings`, the values of
    the `Eva02AtTrainingArguments` fields the script parses itself (loss, schedule) so that its --help lists them; a
    setting that is None (its flag not given) leaves the layers below it. A flag in `argv` beats them all. An
    unknown flag is a usage error of `parser` naming it.
    """
    training_parser = training_argument_parser(parser.prog)
    if recipe:
        training_parser.set_defaults(**recipe)
    if demo:
        import torch

        training_parser.set_defaults(**demo, use_cpu=not torch.cuda.is_available())
    training_parser.set_defaults(**{name: value for name, value in settings.items() if value is not None})
    training_args, unknown = training_parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (this script's flags: --help; "
                     "transformers.TrainingArguments': --help-all)")  # fmt: skip
    return training_args


# ---------------------------------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------------------------------


def prepare_run(training_args) -> None:
    """The process set-up every training run starts with: INFO logging on the processes that log (WARNING on the
    others), glibc's allocator and the torch thread count tuned when training on CPU (`utils.runtime`), and the
    seed."""
    import torch
    from transformers import set_seed

    from ..utils.runtime import set_cpu_threads, tune_cpu_allocator

    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    if training_args.use_cpu or not torch.cuda.is_available():
        tune_cpu_allocator()
        set_cpu_threads(training_args.dataloader_num_workers)
    set_seed(training_args.seed)


def load_model_for_training(model: str | None, *, init: str | None, num_frames: int | None, default_config: dict,
                             processor_folder: str, vision_overrides: dict | None = None):  # fmt: skip
    """The model to train and a processor that feeds it.

    Args:
        model: a folder or Hub id that `from_pretrained` loads (weights as it resolves them: safetensors, sharded,
            .bin, a Hub id in the cache), or, with `init="random"`, a configuration folder such as
            hub_configs/eva02at-b16. None: `default_config`.
        init: "pretrained" (load the weights) or "random" (the configuration with random weights). None: pretrained
            with a `model`, random without.
        num_frames: frames per clip; None keeps the configuration's. A pretrained model at another count is resized
            (`Eva02AtModel.resize_num_frames`: temporal embedding interpolated, RoPE rebuilt).
        default_config: `Eva02AtConfig` keyword arguments of the model used without `model` (e.g. the demo's).
        processor_folder: the processor used when `model` has none of its own (e.g. hub_configs/eva02at-b16).
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
            logger.info(f"temporal embedding interpolated from {network.config.vision_config.num_frames} to "
                        f"{num_frames} frames")  # fmt: skip
            network.resize_num_frames(num_frames)

    own_processor = model is not None and cached_file(
        model, "processor_config.json",
        _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
    )  # fmt: skip
    processor = Eva02AtProcessor.from_pretrained(model if own_processor else processor_folder)
    # from_pretrained copies `config`: the model's own (resized) one is what the processor must match
    match_processor_to_model(processor, network.config, resize=True)
    return network, processor
