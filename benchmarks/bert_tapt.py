"""Task-adaptive pretraining: masked-language modelling on train's tweets before fine-tuning, screened.

Gururangan et al. (2020, "Don't Stop Pretraining") continue a pretrained encoder's masked-language
modelling on the task's own unlabelled text before fine-tuning it ("TAPT"). all-MiniLM-L6-v2 was
trained on sentence pairs, not tweets; this adapts it to their vocabulary (@user, hashtags,
elongations, emoji) with train's texts only, never validation's or test's.

Writes an encoder directory (weights, config, tokenizer) that ``benchmarks.bert_recipes --model``
fine-tunes with params.yaml's recipe::

    HF_HOME=../shared/hf HF_HUB_OFFLINE=1 python -m benchmarks.bert_tapt \
        --holdout-samples 2000 --epochs 1 --out-dir /tmp/tapt
    HF_HOME=../shared/hf HF_HUB_OFFLINE=1 python -m benchmarks.bert_recipes \
        --train-samples 0 --holdout-samples 2000 --seeds 42 --candidates shipped --model /tmp/tapt

The held-out slice that the screen scores (``--holdout-samples``, data seed 0, as
``benchmarks.bert_recipes`` picks it) is left out of the pretraining text too, so it stays unseen.

all-MiniLM-L6-v2 ships without its masked-language-model head: the head's transform layer starts
random (the decoder is tied to the word embeddings), so it first trains alone with the encoder
frozen (``--head-steps``), then everything trains together. The encoder is written with the
original checkpoint's pooler, which masked-language modelling does not use, so [CLS] pooling
starts where it did. Prints JSON (loss per phase, wall times); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def masked_lm_loss(mlm_model, batch) -> torch.Tensor:
    """Cross-entropy at the masked positions only: the vocabulary projection for the rest is wasted work."""
    hidden = mlm_model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
    masked = batch["labels"] != -100
    logits = mlm_model.cls(hidden[masked])
    return torch.nn.functional.cross_entropy(logits.float(), batch["labels"][masked])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--data-dir", default=str(ROOT / "data/processed"))
    parser.add_argument("--holdout-samples", type=int, default=2000, help="the screen's held-out slice, left out")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--head-steps", type=int, default=300)
    parser.add_argument("--mlm-probability", type=float, default=0.15)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()

    from transformers import (
        AutoModel,
        AutoModelForMaskedLM,
        DataCollatorForLanguageModeling,
        get_linear_schedule_with_warmup,
    )

    from benchmarks.bert_recipes import screen_splits
    from src.core.runtime import autocast_context, seed_everything, use_all_cpu_cores
    from src.models.bert_model import load_tokenizer

    use_all_cpu_cores()
    seed_everything(args.seed)
    device = torch.device("cpu")
    train, _ = screen_splits(Path(args.data_dir), None, args.holdout_samples)
    tokenizer = load_tokenizer(args.model)
    encoded = tokenizer(train.texts, truncation=True, max_length=args.max_length)
    examples = [{"input_ids": ids} for ids in encoded["input_ids"]]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=args.mlm_probability)
    generator = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(
        examples, batch_size=args.batch_size, shuffle=True, collate_fn=collator, generator=generator
    )
    mlm_model = AutoModelForMaskedLM.from_pretrained(args.model)
    mlm_model.train()
    total_steps = math.ceil(len(loader) * args.epochs)

    def run_phase(parameters, lr, steps, warmup):
        optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.01)
        schedule = get_linear_schedule_with_warmup(optimizer, warmup, steps)
        losses, step, start = [], 0, time.perf_counter()
        while step < steps:
            for batch in loader:
                with autocast_context(device, True):
                    loss = masked_lm_loss(mlm_model, batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
                step += 1
                if step % 100 == 0:
                    print(f"step {step}/{steps} loss {sum(losses[-100:]) / 100:.3f}", file=sys.stderr, flush=True)
                if step == steps:
                    break
        return {
            "steps": steps,
            "loss_first_100": round(sum(losses[:100]) / min(100, len(losses)), 4),
            "loss_last_100": round(sum(losses[-100:]) / min(100, len(losses)), 4),
            "wall_s": round(time.perf_counter() - start, 1),
        }

    head = [p for n, p in mlm_model.named_parameters() if n.startswith("cls.") and "decoder" not in n]
    for p in mlm_model.bert.parameters():
        p.requires_grad_(False)
    head_phase = run_phase(head, args.head_lr, args.head_steps, 0)
    for p in mlm_model.bert.parameters():
        p.requires_grad_(True)
    all_phase = run_phase(
        [p for p in mlm_model.parameters() if p.requires_grad], args.lr, total_steps, int(0.06 * total_steps)
    )

    # the original checkpoint's encoder with the adapted weights: keeps its pooler, which MLM never trains
    encoder = AutoModel.from_pretrained(args.model)
    missing, unexpected = encoder.load_state_dict(mlm_model.bert.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("pooler.") for k in missing), (missing, unexpected)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(args.out_dir)
    tokenizer.save_pretrained(args.out_dir)
    report = {
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "model": args.model,
        "texts": len(examples),
        "args": {k: str(v) for k, v in vars(args).items()},
        "head_phase": head_phase,
        "all_phase": all_phase,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
