"""Fine-tune EVA02-AT for EPIC-Kitchens-100 multi-instance retrieval (docs/recipes.md) with the SMS loss.

    accelerate launch examples/train_mir.py                     # the demo: synthetic EK-100-format data, tiny model
    accelerate launch --multi_gpu --num_processes 4 examples/train_mir.py \
        --train-csv EPIC_100_retrieval_train.csv --sentence-csv EPIC_100_retrieval_train_sentence.csv \
        --relevancy caption_relevancy_EPIC_100_retrieval_train.pkl --video-root /data/EK100_320p_15sec_30fps_libx264 \
        --eval-csv EPIC_100_retrieval_test.csv --eval-sentence-csv EPIC_100_retrieval_test_sentence.csv \
        --model ./eva02at-b16-egoclip --num-frames 16 --loss sms --output-dir runs/mir \
        --per-device-train-batch-size 64 --learning-rate 2e-5 --warmup-start-lr 1e-6 --min-lr 2e-6 \
        --num-train-epochs 100 --warmup-steps <one epoch of steps> --weight-decay 0.01 --bf16

With no data arguments it generates (once, into --demo-dir) a small dataset in the exact EK-100 file formats whose
verbs are motions only temporal modelling can tell apart, trains a small model on it, evaluates before and after,
and saves a folder that `AutoModel.from_pretrained(folder, trust_remote_code=True)` loads.
Every `TrainingArguments` flag works (`--report-to tensorboard`, `--push-to-hub`, `--resume-from-checkpoint`, ...).
"""

import logging
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import HfArgumentParser, set_seed

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at import Eva02AtConfig, Eva02AtModel  # noqa: E402
from modeling_eva02at.data.ek100 import Ek100MirAnnotations, Ek100MirDataset, VideoTextCollator  # noqa: E402
from modeling_eva02at.demo.dataset import make_demo_dataset  # noqa: E402
from modeling_eva02at.evaluation.metrics import ek100_mir_metrics  # noqa: E402
from modeling_eva02at.processing_eva02at import Eva02AtProcessor  # noqa: E402
from modeling_eva02at.utils.runtime import tune_cpu_allocator  # noqa: E402
from modeling_eva02at.training.trainer import Eva02AtTrainer, Eva02AtTrainingArguments  # noqa: E402
from modeling_eva02at.utils.files import require_paths  # noqa: E402
from modeling_eva02at.utils.processor import match_processor_to_model  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
logger = logging.getLogger("train_mir")


@dataclass
class DataArguments:
    train_csv: str | None = field(default=None, metadata={"help": "EPIC_100_retrieval_train.csv (none: the demo)"})
    sentence_csv: str | None = field(default=None, metadata={"help": "EPIC_100_retrieval_train_sentence.csv"})
    relevancy: str | None = field(default=None, metadata={"help": "relevancy pickle; default: built from the CSVs"})
    video_root: str | None = field(default=None, metadata={"help": "<root>/<participant>/<video_id>.MP4 (or chunks)"})
    eval_csv: str | None = field(default=None, metadata={"help": "EPIC_100_retrieval_test.csv"})
    eval_sentence_csv: str | None = field(default=None, metadata={"help": "EPIC_100_retrieval_test_sentence.csv"})
    eval_relevancy: str | None = field(default=None, metadata={"help": "test relevancy pickle (default: built)"})
    eval_video_root: str | None = field(default=None, metadata={"help": "default: --video-root"})
    model: str | None = field(
        default=None, metadata={"help": "a converted checkpoint folder, or a hub_configs folder (random init)"}
    )
    num_frames: int | None = field(default=None, metadata={"help": "frames per clip (default: the model's)"})
    on_bad_video: str = field(default="raise", metadata={"help": "raise | skip (skipped videos are counted)"})
    no_temporal_rope: bool = field(default=False, metadata={"help": "ablation: spatial RoPE only"})
    demo_dir: str = field(
        default=os.path.join(os.path.expanduser("~"), ".cache", "eva02at", "demo-ek100"),
        metadata={"help": "where the demo dataset is generated once"},
    )


# The demo's small model: EVA02-AT's architecture at toy width, with the real 49408-token CLIP vocabulary.
DEMO_MODEL = dict(
    vision_config=dict(hidden_size=96, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
                       image_size=32, patch_size=8, num_frames=4),
    text_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                     vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
                     pad_token_id=49407),
    projection_dim=64,
)  # fmt: skip
DEMO_TRAINING = dict(
    output_dir="outputs/demo-mir",
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    # ~1100 steps over the 1600 demo clips (the motion verbs need more steps than the nouns). SMS from a random init
    # sits on a plateau (all embeddings nearly equal, loss ~0.19) for its first ~150 steps at lr 2e-4..3e-4; at 6e-4
    # and above it stays there much longer.
    num_train_epochs=22,
    learning_rate=3e-4,
    warmup_start_lr=1e-5,
    min_lr=1e-5,
    warmup_steps=0.05,
    weight_decay=0.01,
    logging_steps=10,
    save_strategy="epoch",
    save_total_limit=2,
    eval_strategy="no",
    seed=0,
    dataloader_num_workers=1,
    use_cpu=not torch.cuda.is_available(),
)


def is_demo(argv) -> bool:
    return not any(arg.split("=")[0] in ("--train-csv", "--train_csv") for arg in argv)


def load_model_and_processor(data_args, demo: bool):
    tokenizer_folder = os.path.join(REPO, "hub_configs", "eva02at-b16")
    if demo:
        config = Eva02AtConfig(**DEMO_MODEL)
    else:
        if data_args.model is None:
            raise ValueError("--model is required with --train-csv: a converted checkpoint or a hub_configs folder")
        config = Eva02AtConfig.from_pretrained(data_args.model)
    config.vision_config.use_temporal_rope = not data_args.no_temporal_rope
    if data_args.num_frames:
        config.vision_config.num_frames = data_args.num_frames
    weights = data_args.model and os.path.exists(os.path.join(data_args.model, "model.safetensors"))
    if weights:
        model = Eva02AtModel.from_pretrained(data_args.model, config=config, dtype=torch.float32)
    else:
        logger.warning("no weights given: the model starts from random initialisation")
        model = Eva02AtModel(config)
    processor_source = data_args.model if weights and os.path.exists(
        os.path.join(data_args.model, "processor_config.json")) else tokenizer_folder
    processor = Eva02AtProcessor.from_pretrained(processor_source)
    match_processor_to_model(processor, config, resize=True)
    return model, processor


def build_datasets(data_args, demo: bool, seed: int):
    if demo:
        paths = make_demo_dataset(data_args.demo_dir, seed=0)
        data_args.train_csv, data_args.sentence_csv = paths.train_csv, paths.train_sentence_csv
        data_args.eval_csv, data_args.eval_sentence_csv = paths.test_csv, paths.test_sentence_csv
        data_args.video_root = paths.video_root
    for name in ("sentence_csv", "video_root"):
        if getattr(data_args, name) is None:
            raise ValueError(f"--{name.replace('_', '-')} is required with --train-csv")
    train = Ek100MirDataset(
        Ek100MirAnnotations.from_files(data_args.train_csv, data_args.sentence_csv, data_args.relevancy),
        data_args.video_root, train=True, seed=seed,
    )  # fmt: skip
    evaluation = None
    if data_args.eval_csv:
        if data_args.eval_sentence_csv is None:
            raise ValueError("--eval-sentence-csv is required with --eval-csv")
        evaluation = Ek100MirDataset(
            Ek100MirAnnotations.from_files(data_args.eval_csv, data_args.eval_sentence_csv, data_args.eval_relevancy),
            data_args.eval_video_root or data_args.video_root, train=False,
        )  # fmt: skip
    for split, dataset in (("training", train), ("evaluation", evaluation)):
        if dataset is not None:
            require_paths(dataset.video_paths(), f"{split} videos", dataset.video_root)
    return train, evaluation


def random_baseline(dataset, seed: int = 0) -> dict:
    similarity = np.random.default_rng(seed).standard_normal(dataset.relevancy.shape).astype(np.float32)
    return ek100_mir_metrics(similarity, dataset.relevancy)


def print_table(rows: dict[str, dict]) -> None:
    keys = ["vis2txt_mAP", "txt2vis_mAP", "avg_mAP", "vis2txt_nDCG", "txt2vis_nDCG", "avg_nDCG"]
    print("\nEK-100 MIR on the evaluation split (percent)")
    print(f"{'':<16}" + "".join(f"{k:>14}" for k in keys))
    for name, metrics in rows.items():
        values = [metrics.get(k, metrics.get(f"eval_{k}")) for k in keys]
        print(f"{name:<16}" + "".join(f"{100 * v:>14.2f}" for v in values))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    demo = is_demo(argv)
    parser = HfArgumentParser((DataArguments, Eva02AtTrainingArguments))
    if demo:
        parser.set_defaults(**DEMO_TRAINING)
    data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    if training_args.use_cpu or not torch.cuda.is_available():
        tune_cpu_allocator()
    set_seed(training_args.seed)

    model, processor = load_model_and_processor(data_args, demo)
    train_dataset, eval_dataset = build_datasets(data_args, demo, training_args.seed)
    trainer = Eva02AtTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=VideoTextCollator(processor, on_error=data_args.on_bad_video),
        processing_class=processor,
        relevancy=train_dataset.annotations.relevancy,
    )
    rows = {}
    if eval_dataset is not None:
        rows["random scores"] = random_baseline(eval_dataset)
        rows["before training"] = trainer.evaluate(metric_key_prefix="eval_before")
        rows["before training"] = {k.removeprefix("eval_before_"): v for k, v in rows["before training"].items()}

    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()  # config, weights, remote-code files and processor in output_dir

    if eval_dataset is not None:
        rows["after training"] = {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()}
        if trainer.is_world_process_zero():
            print_table(rows)
    if trainer.is_world_process_zero():
        print(f"\nSaved to {training_args.output_dir}: load with "
              f"AutoModel.from_pretrained({training_args.output_dir!r}, trust_remote_code=True)")  # fmt: skip
    if training_args.push_to_hub:
        trainer.push_to_hub(
            finetuned_from=data_args.model,
            tasks="video-classification",
            tags=["video-text-retrieval", "eva02at", "epic-kitchens-100"],
            dataset="EPIC-Kitchens-100 MIR" if not demo else "synthetic EK-100-format demo",
        )
    return rows


if __name__ == "__main__":
    main()
