"""The accelerator path: packing, weight parts, the time-budgeted cycle, finishing."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from emotion_contract.modelfile import read_info
from training import accelerator
from training.recipes import CPU, RECIPES

from .test_training import folder_data  # noqa: F401  (fixture)


def test_faces_survive_packing_bit_for_bit():
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    blob, offsets = accelerator.encode_faces(faces)
    assert offsets[0] == 0 and offsets[-1] == len(blob) and len(offsets) == 6
    np.testing.assert_array_equal(accelerator.decode_faces(blob, offsets), faces)


def test_weight_parts_keep_order_and_size(tmp_path, monkeypatch):
    monkeypatch.setattr(accelerator, "PART_BYTES", 1000)
    weights = [np.full((n,), n, np.float32) for n in (100, 200, 50, 300, 1)]
    names = accelerator.save_weights_parts(weights, tmp_path, "weights")
    assert len(names) > 1
    assert all((tmp_path / n).stat().st_size < 1000 + 1000 for n in names)
    assert not list(tmp_path.glob(".*tmp*"))
    loaded = accelerator.load_weights_parts(tmp_path, names)
    assert [w.tolist() for w in loaded] == [w.tolist() for w in weights]


def test_cosine_warms_up_peaks_and_ends_low():
    lrs = [accelerator.cosine_lr(e, 10, 1.0) for e in range(10)]
    assert lrs[0] == pytest.approx(accelerator.WARMUP_FACTOR)
    assert lrs[1] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(accelerator.FINAL_FACTOR)
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:], strict=False))


def test_planned_epochs_leave_out_the_compiling_epoch():
    # 100 s for the first epoch (compilation), 10 s for the rest, 50 s left.
    assert accelerator.planned_epochs(3, [100.0, 10.0, 10.0], 50.0, cap=100) == 8
    assert accelerator.planned_epochs(1, [100.0], 50.0, cap=100) == 1
    assert accelerator.planned_epochs(3, [100.0, 10.0, 10.0], 1e6, cap=20) == 20


def test_pack_train_finish_round_trip(folder_data, tmp_path):  # noqa: F811
    from training.model import build_model

    tiny = replace(CPU, name="tiny-accel", image_size=32, batch_size=8)
    RECIPES[tiny.name] = tiny
    try:
        start = build_model(tiny)
        start.get_layer("emotion").bias.assign(np.arange(7, dtype="float32") / 10)
        start.save(tmp_path / "start.keras")
        pack = tmp_path / "pack"
        info = accelerator.pack(
            folder_data,
            pack,
            recipe=tiny.name,
            init=tmp_path / "start.keras",
            val_sample=8,
            cache_dir=tmp_path / "cache",
        )
        assert info["train_images"] == 35 and info["val_sample"] == 7
        run = tmp_path / "run"
        record = accelerator.train_for(pack, run, budget_s=1.0, max_epochs=3)
        # The budget is spent by the first epoch (compilation): the cycle ends there.
        assert len(record["epochs"]) == 1 and record["finished"]
        assert (
            json.loads((run / "run.json").read_text())["weights"] == record["weights"]
        )
        path = accelerator.finish(
            run, folder_data, tmp_path / "model", tmp_path / "cache"
        )
    finally:
        del RECIPES[tiny.name]
    info = read_info(path)
    assert info.extra["accelerator"]["finished"] is True
    assert info.extra["init"] == str(tmp_path / "start.keras")
    card = (path.parent / "model_card.md").read_text()
    assert "time budget" in card and "None" not in card
    assert (path.parent / "training_log.csv").read_text().startswith("accuracy")


def test_pack_refuses_a_recipe_its_cosine_cycle_cannot_train(tmp_path):
    with pytest.raises(SystemExit, match="Adam"):
        accelerator.pack(tmp_path, tmp_path / "pack", recipe="cpu-64-sgd", init=None)
    assert not (tmp_path / "pack").exists()
