"""Each encoder family's tiny stand-in through the training path of a device; prints one JSON row per family.

    python -m benchmarks.family_check --device cuda --compile   # the GPU check's families stage
    python -m benchmarks.family_check --device cpu              # the same rows on a CPU (a rehearsal)

For BERT, RoBERTa, XLM-R, BERTweet, DistilBERT, DeBERTa-v2, ELECTRA and ModernBERT (random weights and
a tokenizer of the family's kind, tests/encoder_families.py) the BERT fine-tuning guide's
``train_model`` trains three epochs on the tests' tiny tweets with the shipped recipe's options
(top layer re-initialised, layer-wise decay) and the device's fast path: bf16 autocast where the device
has it, the family's attention implementation (SDPA where transformers offers it), fused AdamW and,
with ``--compile``, ``torch.compile``. Each row: whether the loss went down, whether the export loaded
back (``src.models.loading.load_model``) predicts validation as the run's best epoch did, the
attention implementation and autocast dtype used, and the wall time; ``status`` is ``ok`` or the error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def family_row(family: str, scratch: Path, device: str, compile_model: bool) -> dict:
    """Train ``family``'s tiny model on ``device`` and check its export; one row."""
    import torch

    from src.core.runtime import autocast_dtype, resolve_device
    from src.data.preprocess import normalize_tweet
    from src.models.loading import load_model
    from src.models.training import train_model
    from src.predict import classify
    from tests.encoder_families import write_tiny_encoder
    from tests.fixtures import bert_loaders, tiny_splits

    started = time.perf_counter()
    row: dict = {"family": family}
    try:
        model_dir = write_tiny_encoder(scratch / family / "encoder", family)
        tokenizer, train_loader, val_loader = bert_loaders(model_dir)
        torch.manual_seed(0)
        model, history = train_model(
            train_loader,
            val_loader,
            scratch / family / "run",
            num_epochs=3,
            learning_rate=3e-3,
            device=device,
            model_name=str(model_dir),
            tokenizer=tokenizer,
            mixed_precision=True,
            compile_model=compile_model,
            reinit_layers=1,
            layer_decay=0.9,
            progress=False,
        )
        hf_model = getattr(model, "_orig_mod", model).model
        row["model_type"] = hf_model.config.model_type
        row["attention"] = getattr(hf_model.config, "_attn_implementation", None)
        dtype = autocast_dtype(resolve_device(device), True)
        row["autocast"] = str(dtype).removeprefix("torch.") if dtype is not None else "fp32"
        row["compiled"] = compile_model
        row["train_loss"] = [round(loss, 4) for loss in history["train_loss"]]
        row["loss_down"] = history["train_loss"][-1] < history["train_loss"][0]
        # the export reproduces the best epoch's validation predictions (bf16 rounding allowed for)
        texts = [normalize_tweet(text) for text, _ in tiny_splits()["val"]]
        loaded = classify(load_model(scratch / family / "run", device), texts, device=device)
        best = max(range(len(history["val_macro_recall"])), key=history["val_macro_recall"].__getitem__)
        predicted = [row_["label_id"] for row_ in loaded]
        labels = [label for _, label in tiny_splits()["val"]]
        recall = _macro_recall(labels, predicted)
        row["export_val_macro_recall"] = round(recall, 4)
        row["run_val_macro_recall"] = round(history["val_macro_recall"][best], 4)
        row["export_matches"] = abs(recall - history["val_macro_recall"][best]) < 1e-6
        row["status"] = "ok" if row["loss_down"] and row["export_matches"] else "failed"
    except Exception as exc:  # a family's failure is its row's result, not the end of the check
        row["status"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    row["wall_s"] = round(time.perf_counter() - started, 1)
    return row


def _macro_recall(labels: list[int], predicted: list[int]) -> float:
    from sklearn.metrics import recall_score

    return float(recall_score(labels, predicted, labels=[0, 1, 2], average="macro", zero_division=0))


def main(argv: list[str] | None = None) -> int:
    from tests.encoder_families import FAMILIES

    parser = argparse.ArgumentParser(prog="python -m benchmarks.family_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model (bert.compile)")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(min(torch.get_num_threads(), 2))  # tiny models: threads only thrash
    with tempfile.TemporaryDirectory(prefix="family-check-") as scratch:
        rows = [family_row(family, Path(scratch), args.device, args.compile) for family in args.families]
    lines = ",\n".join(f"    {json.dumps(row)}" for row in rows)  # one line per family
    print(f'{{"device": {json.dumps(args.device)}, "families": [\n{lines}\n]}}')
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
