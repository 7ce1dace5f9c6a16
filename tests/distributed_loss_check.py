"""Run by tests/test_trainer.py, once alone and once under `accelerate launch --multi_gpu --num_processes 2`.

Every process builds the same tiny model and the same global batch, keeps its own contiguous share of the batch,
and runs the trainer's loss and backward. Rank 0 writes the loss and all gradients to the output file, so the test
can check that 2 processes (gloo, DDP) equal 1 process on the concatenated batch.
"""

import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

from modeling_eva02at import Eva02AtConfig, Eva02AtModel
from modeling_eva02at.training.arguments import Eva02AtTrainingArguments
from modeling_eva02at.training.trainer import Eva02AtTrainer


GLOBAL_BATCH = 8


def main(output_path: str, loss_name: str):
    config = Eva02AtConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=16,
            patch_size=8,
            num_frames=2,
        ),
        text_config=dict(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=8,
            bos_token_id=62,
            eos_token_id=63,
            pad_token_id=0,
        ),
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = Eva02AtModel(config)
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(GLOBAL_BATCH, 2, 3, 16, 16, generator=generator)
    input_ids = torch.randint(1, 62, (GLOBAL_BATCH, 8), generator=generator)
    input_ids[:, -1] = 63
    relevancy = np.random.default_rng(2).choice([0.0, 0.25, 0.5, 0.66, 1.0], size=(12, 20)).astype(np.float32)
    video_index = torch.arange(GLOBAL_BATCH) + 2
    sentence_index = torch.tensor([3, 0, 7, 7, 19, 11, 5, 2])
    positive = torch.as_tensor(relevancy[video_index.numpy(), sentence_index.numpy()])
    # EgoNCE's labels, as Ek100MirDataset gives them: samples 0, 3 and 6 share verb 1 and noun 2 across the ranks
    verb_multi_hot = torch.nn.functional.one_hot(torch.tensor([1, 0, 2, 1, 3, 0, 1, 4])).to(torch.uint8)
    noun_multi_hot = torch.zeros(GLOBAL_BATCH, 5, dtype=torch.uint8)
    noun_multi_hot[[0, 3, 6, 1, 2, 4], [2, 2, 2, 0, 1, 3]] = 1
    noun_multi_hot[6, 4] = 1

    args = Eva02AtTrainingArguments(
        output_dir=os.path.join(os.path.dirname(output_path), "trainer"),
        loss=loss_name,
        use_cpu=True,
        report_to="none",
    )
    trainer = Eva02AtTrainer(model=model, args=args, relevancy=relevancy)
    world, rank = trainer.accelerator.num_processes, trainer.accelerator.process_index
    share = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    inputs = {
        "input_ids": input_ids[share],
        "attention_mask": torch.ones_like(input_ids[share]),
        "pixel_values_videos": pixels[share],
        "video_index": video_index[share],
        "sentence_index": sentence_index[share],
        "positive_relevancy": positive[share],
        "verb_multi_hot": verb_multi_hot[share],
        "noun_multi_hot": noun_multi_hot[share],
    }
    wrapped = trainer.accelerator.prepare_model(trainer.model)
    loss = trainer.compute_loss(wrapped, inputs)
    trainer.accelerator.backward(loss)
    if rank == 0:
        tensors = {"loss": loss.detach().reshape(1), "world_size": torch.tensor([world])}
        for name, param in trainer.model.named_parameters():
            if param.grad is not None:
                tensors["grad." + name] = param.grad.contiguous()
        save_file(tensors, output_path)
    if torch.distributed.is_initialized():
        # Tear gloo down before the interpreter does: left to exit, a rank can abort ("terminate called without an
        # active exception") after its work is done, and the launcher reports the run as failed.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
