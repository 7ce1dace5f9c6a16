"""The optimizer and learning-rate schedule of the paper's recipes (docs/recipes.md) beyond transformers' own:
linear warm-up then cosine to a floor, and LAMB (Charades-Ego fine-tuning)."""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainingArguments


def warmup_cosine_schedule(optimizer, warmup_steps: int, total_steps: int, start_lr: float, min_lr: float) -> LambdaLR:
    """Linear warm-up from `start_lr` to each group's lr over `warmup_steps`, then cosine down to `min_lr`."""
    base_lrs = [group["lr"] for group in optimizer.param_groups]

    def factor(base_lr):
        def at(step):
            if step < warmup_steps:
                return (start_lr + (base_lr - start_lr) * step / warmup_steps) / base_lr
            progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
            return (min_lr + (base_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / base_lr

        return at

    return LambdaLR(optimizer, [factor(lr) for lr in base_lrs])


def lamb_optimizer(args: TrainingArguments) -> tuple[type, dict]:
    """`(Lamb, kwargs)` for the Trainer's `optimizer_cls_and_kwargs`: pytorch-optimizer's LAMB with the run's lr, betas,
    eps (its weight decay per parameter group comes from the Trainer, which exempts biases and norms)."""
    try:
        from pytorch_optimizer import Lamb
    except ImportError as error:
        raise ImportError(
            "optimizer_name='lamb' (--optimizer-name lamb) needs pytorch-optimizer: pip install pytorch-optimizer"
        ) from error
    return Lamb, {"lr": args.learning_rate, "betas": (args.adam_beta1, args.adam_beta2), "eps": args.adam_epsilon}


__all__ = ["lamb_optimizer", "warmup_cosine_schedule"]
