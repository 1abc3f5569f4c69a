"""The shared training engine on tiny synthetic data: convergence, checkpoints, resume, early
stopping, schedulers, GloVe, and the train_lstm stage end to end. Offline, CPU, fast."""

from __future__ import annotations

import json
import logging
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from src.checkpoints.files import load_checkpoint_file
from src.core.errors import PipelineError
from src.core.runtime import resolve_device
from src.data.vocab import Vocabulary
from src.models.lstm_data import make_loader
from src.models.lstm_model import LSTMClassifier
from src.training import (
    CheckpointManager,
    EarlyStopping,
    GloVeLoader,
    Trainer,
    create_checkpoint_manager,
    create_early_stopping,
    create_trainer,
    initialize_model_with_glove,
)
from tests.fixtures import synthetic_split

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data():
    train_texts, train_labels = synthetic_split(240, seed=1)
    val_texts, val_labels = synthetic_split(60, seed=2)
    vocab = Vocabulary.build(train_texts)
    return SimpleNamespace(vocab=vocab, train=(train_texts, train_labels), val=(val_texts, val_labels))


def loaders(data, batch_size=16, seed=0):
    train = make_loader(*data.train, data.vocab, batch_size, shuffle=True, seed=seed)
    val = make_loader(*data.val, data.vocab, 32, shuffle=False)
    return train, val


def tiny_model(vocab, seed=0, embedding_dim=8):
    torch.manual_seed(seed)
    return LSTMClassifier(
        len(vocab), embedding_dim, hidden_dim=12, output_dim=3, n_layers=1, dropout=0.1, bidirectional=True
    )


def tiny_trainer(data, tmp_path, seed=0, **kwargs):
    train, val = loaders(data)
    kwargs.setdefault("learning_rate", 0.02)
    kwargs.setdefault("scheduler_type", None)
    kwargs.setdefault("progress", False)
    return create_trainer(tiny_model(data.vocab, seed), train, val, checkpoint_dir=tmp_path / "ckpt", **kwargs)


def write_glove_mirror(mirror, vectors: dict[str, list[float]]):
    """A tiny glove.twitter.27B.zip at the mirror path of its Stanford URL."""
    archive = mirror / "nlp.stanford.edu" / "data" / "glove.twitter.27B.zip"
    archive.parent.mkdir(parents=True)
    lines = "".join(f"{w} {' '.join(f'{x:.4f}' for x in v)}\n" for w, v in vectors.items())
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("glove.twitter.27B.25d.txt", lines)


class TestTrainingIntegration:
    """The engine end to end on separable synthetic data: the workflow and convergence, checkpoints and
    resume, early stopping, schedulers, the history and the training summary."""

    # ---- workflow, convergence and the training summary -------------------------------------------
    def test_converges_on_separable_data(self, data, tmp_path):
        trainer = tiny_trainer(data, tmp_path)
        history = trainer.train(epochs=8)
        assert history["val_accuracies"][-1] >= 0.9
        assert history["val_macro_recalls"][-1] >= 0.9
        assert history["train_losses"][-1] < history["train_losses"][0]

    def test_history_and_summary_keys(self, data, tmp_path):
        trainer = tiny_trainer(data, tmp_path)
        history = trainer.train(epochs=2, early_stopping_patience=3)
        for key in (
            "train_losses",
            "val_losses",
            "val_accuracies",
            "learning_rates",
            "best_val_loss",
            "total_time",
            "val_macro_recalls",
            "val_macro_f1s",
            "epoch_times",
        ):
            assert key in history
        assert len(history["train_losses"]) == len(history["epoch_times"]) == 2
        assert history["best_val_loss"] == min(history["val_losses"])
        summary = trainer.get_training_summary()
        assert summary["training_status"]["epochs_completed"] == 2
        assert summary["training_status"]["best_epoch"] in (1, 2)
        assert summary["performance_metrics"]["best_val_accuracy"] == max(history["val_accuracies"])
        assert summary["performance_metrics"]["final_train_loss"] == history["train_losses"][-1]
        assert summary["model_info"]["total_parameters"] == sum(p.numel() for p in trainer.model.parameters())

    def test_same_seed_same_metrics(self, data, tmp_path):
        first = tiny_trainer(data, tmp_path / "a").train(epochs=2)
        second = tiny_trainer(data, tmp_path / "b").train(epochs=2)
        assert first["val_losses"] == second["val_losses"]
        assert first["train_losses"] == second["train_losses"]

    def test_hf_style_output_and_attention_mask_batches(self, tmp_path):
        """BERT's shape of things: dict batches with attention_mask, outputs with .logits, per-step scheduler."""

        class MaskedMean(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding(10, 4)
                self.head = nn.Linear(4, 3)

            def forward(self, input_ids, attention_mask):
                mask = attention_mask.unsqueeze(-1).float()
                pooled = (self.embedding(input_ids) * mask).sum(1) / mask.sum(1)
                return SimpleNamespace(logits=self.head(pooled))

        torch.manual_seed(0)
        ids = torch.randint(1, 10, (32, 5))
        batches = [
            {
                "input_ids": ids[i : i + 8],
                "attention_mask": torch.ones(8, 5, dtype=torch.long),
                "labels": (ids[i : i + 8, 0] % 3),
            }
            for i in range(0, 32, 8)
        ]
        model = MaskedMean()
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
        trainer = Trainer(
            model,
            batches,
            batches,
            optimizer,
            nn.CrossEntropyLoss(),
            warmup,
            1.0,
            tmp_path,
            scheduler_interval="step",
            monitor="val_accuracy",
            progress=False,
            checkpoint_name="checkpoint_epoch_{epoch}.pt",
            best_model_name="best_model.pt",
        )
        history = trainer.train(epochs=2)
        # LambdaLR stepped once per batch: 4 steps per epoch -> factor 1/5, then 1/9.
        assert history["learning_rates"] == pytest.approx([0.1 / 5, 0.1 / 9])
        assert (tmp_path / "checkpoint_epoch_2.pt").is_file() and (tmp_path / "best_model.pt").is_file()

    def test_cuda_requested_without_cuda_is_an_error(self):
        if torch.cuda.is_available():
            pytest.skip("CUDA is present")
        with pytest.raises(PipelineError, match="CUDA is not available"):
            resolve_device("cuda")
        assert resolve_device("auto").type == "cpu"

    # ---- checkpoints and resume ------------------------------------------------------------------------
    def test_checkpoint_round_trip_restores_everything(self, data, tmp_path):
        trainer = tiny_trainer(data, tmp_path, scheduler_type="step")
        trainer.train(epochs=2, early_stopping_patience=5)
        saved_rng = torch.get_rng_state()
        path = trainer.save_checkpoint("manual.pt")
        torch.manual_seed(999)  # disturb the RNG; loading must put it back
        restored = tiny_trainer(data, tmp_path, seed=7, scheduler_type="step")
        restored.load_checkpoint(path)

        assert restored.epoch == 2 and restored.global_step == trainer.global_step
        for name, tensor in trainer.model.state_dict().items():
            assert torch.equal(tensor, restored.model.state_dict()[name])
        for a, b in zip(
            trainer.optimizer.state_dict()["state"].values(), restored.optimizer.state_dict()["state"].values()
        ):
            assert all(torch.equal(a[k], b[k]) for k in a)
        assert restored.scheduler.state_dict() == trainer.scheduler.state_dict()
        assert restored.history == trainer.history
        assert restored.early_stopping.state_dict()["counter"] == trainer.early_stopping.counter
        assert torch.equal(torch.get_rng_state(), saved_rng)

    def test_resume_ends_with_the_same_metrics_as_uninterrupted(self, data, tmp_path):
        uninterrupted = tiny_trainer(data, tmp_path / "full", scheduler_type="cosine", epochs=4)
        full_history = uninterrupted.train(epochs=4, early_stopping_patience=10)

        first_half = tiny_trainer(data, tmp_path / "half", scheduler_type="cosine", epochs=4)
        first_half.train(epochs=2, early_stopping_patience=10)
        resumed = tiny_trainer(data, tmp_path / "half", seed=123, scheduler_type="cosine", epochs=4)
        history = resumed.resume_training(tmp_path / "half" / "ckpt" / "checkpoint_epoch_2.pt", additional_epochs=2)

        assert resumed.epoch == 4
        assert history["val_losses"] == full_history["val_losses"]
        assert history["train_losses"] == full_history["train_losses"]
        assert history["learning_rates"] == full_history["learning_rates"]
        for name, tensor in uninterrupted.model.state_dict().items():
            assert torch.equal(tensor, resumed.model.state_dict()[name])

    def test_checkpoint_rotation_best_n_and_registry(self, tmp_path):
        manager = create_checkpoint_manager(tmp_path, max_checkpoints=2, save_best_n=1)
        model = nn.Linear(2, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        # (val_loss, val_accuracy) per epoch: best loss at epoch 2, best accuracy at epoch 1.
        scores = [(0.9, 0.80), (0.5, 0.60), (0.7, 0.70), (0.8, 0.65), (0.6, 0.75)]
        for epoch, (loss, acc) in enumerate(scores, 1):
            manager.save_checkpoint(
                model, optimizer, epoch, train_loss=1.0, val_loss=loss, val_accuracy=acc, is_best=epoch == 2
            )

        kept = sorted(p.name for p in tmp_path.glob("checkpoint_epoch_*.pt"))
        assert kept == [
            "checkpoint_epoch_1.pt",
            "checkpoint_epoch_2.pt",
            "checkpoint_epoch_4.pt",
            "checkpoint_epoch_5.pt",
        ]
        assert manager.load_best_checkpoint("loss") == tmp_path / "checkpoint_epoch_2.pt"
        assert manager.load_best_checkpoint("accuracy") == tmp_path / "checkpoint_epoch_1.pt"
        assert manager.get_checkpoint_info(tmp_path / "best_model.pt")["epoch"] == 2

        registry = json.loads((tmp_path / "checkpoint_registry.json").read_text())
        assert registry["best"]["loss"][0]["epoch"] == 2
        assert registry["best"]["accuracy"][0]["epoch"] == 1
        assert registry["best_model"]["source"] == "checkpoint_epoch_2.pt"
        assert {e["file"] for e in registry["checkpoints"]} == set(kept)
        assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files

        reopened = CheckpointManager(tmp_path, max_checkpoints=2, save_best_n=1)  # picks up the registry
        assert reopened.load_best_checkpoint("loss") == tmp_path / "checkpoint_epoch_2.pt"

    def test_only_the_newest_checkpoint_keeps_resume_state_and_the_best_model_is_the_model_alone(self, tmp_path):
        manager = create_checkpoint_manager(tmp_path, max_checkpoints=5, save_best_n=1)
        model = nn.Linear(200, 300)  # big enough that optimizer state dominates a checkpoint's size
        optimizer = torch.optim.Adam(model.parameters())
        model(torch.ones(1, 200)).sum().backward()
        optimizer.step()  # Adam keeps two tensors per parameter: a full checkpoint is ~3x the model
        for epoch in range(1, 4):
            manager.save_checkpoint(
                model, optimizer, epoch, train_loss=1.0, val_loss=1.0 / epoch, val_accuracy=0.5, is_best=True
            )

        sizes = {p.name: p.stat().st_size for p in tmp_path.glob("*.pt")}
        for epoch in (1, 2):
            slim = load_checkpoint_file(tmp_path / f"checkpoint_epoch_{epoch}.pt")
            assert "optimizer_state_dict" not in slim and slim["metadata"]["resume_state"] is False
            assert torch.equal(slim["model_state_dict"]["weight"], model.weight)  # the model itself is kept
        newest = load_checkpoint_file(tmp_path / "checkpoint_epoch_3.pt")
        assert newest["optimizer_state_dict"]["state"] and newest["metadata"]["resume_state"] is True
        best = load_checkpoint_file(tmp_path / "best_model.pt")
        assert "optimizer_state_dict" not in best and best["epoch"] == 3 and len(best["model_id"]) == 16
        assert sizes["checkpoint_epoch_3.pt"] > 2.5 * sizes["checkpoint_epoch_1.pt"]
        assert sizes["best_model.pt"] < 1.1 * sizes["checkpoint_epoch_1.pt"]
        registry = json.loads((tmp_path / "checkpoint_registry.json").read_text())
        assert [e["resume_state"] for e in registry["checkpoints"]] == [False, False, True]

    def test_registry_entries_outside_the_directory_are_reported_never_read_or_deleted(self, tmp_path, caplog):
        directory, outside = tmp_path / "models", tmp_path / "outside"
        outside.mkdir()
        victims = [outside / "victim.pt", outside / "linked.pt"]
        for victim in victims:
            victim.write_bytes(b"not yours")
        manager = CheckpointManager(directory, max_checkpoints=1, save_best_n=0)
        model = nn.Linear(2, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        manager.save_checkpoint(model, optimizer, 1, train_loss=1.0, val_loss=1.0, val_accuracy=0.5)
        (directory / "checkpoint_epoch_7.pt").symlink_to(victims[1])  # a link leading out, named like a checkpoint
        registry = json.loads((directory / "checkpoint_registry.json").read_text())
        entry = registry["checkpoints"][0]
        registry["checkpoints"] += [
            {**entry, "file": "../outside/victim.pt"},
            {**entry, "file": str(victims[0])},
            {**entry, "file": "checkpoint_epoch_7.pt"},
            "junk",
            {**entry, "epoch": "2"},
        ]
        (directory / "checkpoint_registry.json").write_text(json.dumps(registry))

        caplog.set_level(logging.WARNING)
        reopened = CheckpointManager(directory, max_checkpoints=1, save_best_n=0)
        assert [e["file"] for e in reopened.entries] == ["checkpoint_epoch_1.pt"]
        assert "checkpoint_registry.json: ignored what is not safe to use" in caplog.text
        assert '"../outside/victim.pt"' in caplog.text and "checkpoint_epoch_7.pt: a symbolic link" in caplog.text
        assert reopened.epoch_checkpoints() == [directory / "checkpoint_epoch_1.pt"]  # the link is not a checkpoint
        for epoch in (2, 3):  # rotation deletes what the registry lists
            reopened.save_checkpoint(model, optimizer, epoch, train_loss=1.0, val_loss=1.0, val_accuracy=0.5)
        reopened.clear()
        assert all(victim.read_bytes() == b"not yours" for victim in victims)

        manager = CheckpointManager(directory)
        for epoch in (1, 2):
            manager.save_checkpoint(model, optimizer, epoch, train_loss=1.0, val_loss=1.0, val_accuracy=0.5)
        (directory / "checkpoint_registry.json").write_text("{not json")
        caplog.clear()
        rebuilt = CheckpointManager(directory)  # from the metadata inside the checkpoint files
        assert "unreadable (JSONDecodeError); ignored, rebuilt from the 2 checkpoint file(s) here" in caplog.text
        assert [(e["file"], e["resume_state"]) for e in rebuilt.entries] == [
            ("checkpoint_epoch_1.pt", False),
            ("checkpoint_epoch_2.pt", True),
        ]

    # ---- early stopping --------------------------------------------------------------------------------
    def test_early_stopping_restores_best_weights(self):
        model = nn.Linear(2, 2)
        stopper = create_early_stopping(patience=2, min_delta=0.0, monitor="val_loss", restore_best_weights=True)
        weights_at = {}
        for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.7], 1):
            with torch.no_grad():
                model.weight.fill_(float(epoch))
            weights_at[epoch] = model.weight.clone()
            stopped = stopper(loss, model, epoch)
        assert stopped and stopper.best_epoch == 2 and stopper.stopped_epoch == 4
        assert torch.equal(model.weight, weights_at[2])

    def test_early_stopping_on_a_metric_that_goes_up(self):
        stopper = EarlyStopping(patience=1, monitor="val_macro_recall")
        model = nn.Linear(1, 1)
        assert not stopper(0.5, model, 1)
        assert not stopper(0.6, model, 2)  # higher is better: an improvement
        assert stopper(0.55, model, 3)
        assert stopper.best_value == 0.6

    def test_trainer_stops_a_non_improving_run_and_restores_best(self, data, tmp_path):
        trainer = tiny_trainer(data, tmp_path, learning_rate=0.02)
        trainer.train(epochs=1, early_stopping_patience=2)
        epoch_one = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        for group in trainer.optimizer.param_groups:
            group["lr"] = 50.0  # wreck the model: validation cannot improve on epoch 1 now
        history = trainer.train(epochs=10, early_stopping_patience=2)
        assert len(history["val_losses"]) == 3  # epoch 1, then two epochs without improvement
        assert trainer.early_stopping.best_epoch == 1
        for name, tensor in trainer.model.state_dict().items():
            assert torch.equal(tensor, epoch_one[name])

    # ---- schedulers --------------------------------------------------------------------------------------
    def test_step_scheduler_halves_every_epoch(self, data, tmp_path):
        trainer = tiny_trainer(data, tmp_path, learning_rate=0.01, scheduler_type="step", epochs=3)
        assert trainer.train(epochs=3)["learning_rates"] == pytest.approx([0.01, 0.005, 0.0025])

    def test_cosine_scheduler_anneals(self, data, tmp_path):
        trainer = tiny_trainer(data, tmp_path, learning_rate=0.01, scheduler_type="cosine", epochs=4)
        rates = trainer.train(epochs=4)["learning_rates"]
        assert rates[0] == pytest.approx(0.01)
        assert all(a > b for a, b in zip(rates, rates[1:]))
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)

    def test_plateau_scheduler_reduces_when_the_monitor_stalls(self, data, tmp_path):
        # lr 1e-6: the weights barely move, val loss never beats its best by the 1e-4 relative threshold.
        trainer = tiny_trainer(
            data, tmp_path, learning_rate=1e-6, scheduler_type="plateau", scheduler_kwargs={"patience": 0, "gamma": 0.5}
        )
        rates = trainer.train(epochs=3)["learning_rates"]
        assert rates == pytest.approx([1e-6, 1e-6, 5e-7], rel=1e-6)  # cut after the first stalled epoch
        assert trainer.scheduler.mode == "min"

    def test_plateau_mode_follows_the_monitor(self, data, tmp_path):
        trainer = tiny_trainer(data, tmp_path, scheduler_type="plateau", monitor="val_macro_recall")
        assert trainer.scheduler.mode == "max"

    def test_unknown_scheduler_and_monitor_are_errors(self, data, tmp_path):
        with pytest.raises(PipelineError, match="scheduler"):
            tiny_trainer(data, tmp_path, scheduler_type="linear")
        with pytest.raises(PipelineError, match="monitor"):
            tiny_trainer(data, tmp_path, monitor="val_precision")

    # ---- model -------------------------------------------------------------------------------------------
    def test_padding_does_not_change_a_prediction(self, data):
        model = tiny_model(data.vocab).eval()
        short, long = "good day", "the best news is that it is so good today we love it"
        alone = make_loader([short], [2], data.vocab, 1, shuffle=False)
        together = make_loader([short, long], [2, 2], data.vocab, 2, shuffle=False)
        with torch.no_grad():
            batch_alone, batch_together = next(iter(alone)), next(iter(together))
            assert batch_together["input_ids"].shape[1] > batch_alone["input_ids"].shape[1]
            logits_alone = model(batch_alone["input_ids"], batch_alone["lengths"])
            logits_together = model(batch_together["input_ids"], batch_together["lengths"])
            logits_mask = model(batch_together["input_ids"], attention_mask=batch_together["input_ids"] != 0)
        torch.testing.assert_close(logits_alone[0], logits_together[0])
        torch.testing.assert_close(logits_together, logits_mask)

    def test_embedding_dim_mismatch_names_the_param(self, data):
        model = tiny_model(data.vocab, embedding_dim=8)
        with pytest.raises(PipelineError, match="lstm.embedding_dim"):
            model.load_pretrained_embeddings(np.zeros((len(data.vocab), 25), dtype=np.float32))

    def test_one_logit_model_trains_a_two_class_task_with_binary_cross_entropy(self, data, tmp_path):
        """output_dim 1 (a binary task): BCEWithLogitsLoss, class 1 where the logit is > 0, metrics as usual."""
        keep = [i for i, y in enumerate(data.train[1]) if y != 1]
        keep_val = [i for i, y in enumerate(data.val[1]) if y != 1]
        train = make_loader(
            [data.train[0][i] for i in keep], [data.train[1][i] // 2 for i in keep], data.vocab, 16, shuffle=True
        )
        val = make_loader(
            [data.val[0][i] for i in keep_val], [data.val[1][i] // 2 for i in keep_val], data.vocab, 32, shuffle=False
        )
        torch.manual_seed(0)
        model = LSTMClassifier(len(data.vocab), 8, hidden_dim=12, output_dim=1, n_layers=1, dropout=0.1)
        trainer = create_trainer(
            model, train, val, learning_rate=0.02, scheduler_type=None, checkpoint_dir=tmp_path / "ckpt", progress=False
        )
        assert isinstance(trainer.criterion, nn.BCEWithLogitsLoss)
        history = trainer.train(epochs=6)
        assert history["val_accuracies"][-1] >= 0.9 and history["val_macro_recalls"][-1] >= 0.9
        predictions = trainer.evaluate_model(val)["predictions"]
        assert set(predictions) == {0, 1}

    def test_create_trainer_takes_a_whole_training_config(self, data, tmp_path):
        training_config = {
            "batch_size": 16,
            "learning_rate": 0.02,
            "epochs": 20,
            "weight_decay": 1e-5,
            "gradient_clip": 1.0,
            "early_stopping_patience": 5,
            "validation_split": 0.2,
        }
        train, val = loaders(data)
        trainer = create_trainer(
            tiny_model(data.vocab), train, val, checkpoint_dir=tmp_path / "ckpt", progress=False, **training_config
        )
        assert trainer.early_stopping.patience == 5 and trainer.gradient_clip == 1.0
        assert trainer.optimizer.param_groups[0]["lr"] == 0.02
        with pytest.raises(PipelineError, match="batch_size = 64 but train_loader batches 16"):
            create_trainer(
                tiny_model(data.vocab),
                train,
                val,
                checkpoint_dir=tmp_path / "other",
                **{**training_config, "batch_size": 64},
            )

    def test_a_vocabulary_larger_than_vocab_size_is_a_clear_error(self, data):
        model = LSTMClassifier(vocab_size=10, embedding_dim=8, hidden_dim=12, n_layers=1)
        batch = next(iter(loaders(data)[1]))
        with pytest.raises(PipelineError, match="outside the model's vocab_size = 10"):
            model(batch["input_ids"], batch["lengths"])
        with pytest.raises(PipelineError, match="output_dim = 0: expected a whole number >= 1"):
            LSTMClassifier(vocab_size=10, output_dim=0)


class TestGloVeIntegration:
    """GloVe through the project's downloader (an offline mirror here): alignment, coverage, freezing, errors."""

    def test_glove_through_the_mirror_alignment_coverage_and_freezing(self, data, tmp_path, monkeypatch):
        rng = np.random.default_rng(0)
        vectors = {w: rng.normal(size=25).round(4).tolist() for w in ["good", "bad", "table", "the", "notinvocab"]}
        write_glove_mirror(tmp_path / "mirror", vectors)
        monkeypatch.setenv("SENTIMENT_MIRROR", str(tmp_path / "mirror"))

        loader = GloVeLoader(cache_dir=tmp_path / "glove")
        path = loader.download_glove("twitter.27B", "25d")
        embeddings, dim = loader.load_glove_embeddings(path)
        assert dim == 25 and set(embeddings) == set(vectors)

        model = tiny_model(data.vocab, embedding_dim=25)
        stats = initialize_model_with_glove(
            model, data.vocab, "twitter.27B", "25d", freeze_embeddings=True, cache_dir=tmp_path / "glove"
        )
        n_words = len(data.vocab) - 2
        assert stats["words_found"] == 4 and stats["words_missing"] == n_words - 4
        assert stats["vocab_coverage"] == round(4 / n_words, 4)
        for word in ("good", "bad", "table", "the"):
            row = model.embedding.weight[data.vocab.word2idx[word]].detach().numpy()
            np.testing.assert_allclose(row, np.asarray(vectors[word], dtype=np.float32))
        assert not model.embedding.weight[0].any()  # <pad> stays zero

        # Frozen: the optimizer never sees the embedding, so training leaves it exactly as loaded.
        before = model.embedding.weight.detach().clone()
        train, val = loaders(data)
        create_trainer(
            model, train, val, learning_rate=0.05, scheduler_type=None, checkpoint_dir=tmp_path / "c", progress=False
        ).train(epochs=1)
        assert torch.equal(model.embedding.weight, before)

    def test_glove_dimension_mismatch_is_a_clear_error(self, data, tmp_path, monkeypatch):
        write_glove_mirror(tmp_path / "mirror", {"good": [0.1] * 25})
        monkeypatch.setenv("SENTIMENT_MIRROR", str(tmp_path / "mirror"))
        with pytest.raises(PipelineError, match="lstm.embedding_dim"):
            initialize_model_with_glove(
                tiny_model(data.vocab, embedding_dim=8), data.vocab, "twitter.27B", "25d", cache_dir=tmp_path / "glove"
            )
