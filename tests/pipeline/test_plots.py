"""history.png from a run's history.json: a real PNG with two panels (loss, accuracy), train and val."""
import json

from PIL import Image

from pipeline import plots

HISTORY = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_accuracy": 1 - 0.3 / e,
            "val_accuracy": 1 - 0.35 / e, "seconds": 1.0} for e in (1, 2, 3)]


def test_history_png_is_written_from_history_json(tmp_path):
    (tmp_path / "history.json").write_text(json.dumps(HISTORY))
    path = plots.write_history_png(tmp_path)
    assert path == tmp_path / "history.png"
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > img.size[1] > 200   # two panels side by side
        colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
    assert len(colours) > 10        # curves drawn, not a blank canvas


def test_curves_hold_train_and_val_of_each_panel():
    lines = plots.curves(HISTORY)
    assert lines["loss"]["train"] == [1.0, 0.5, 1 / 3]
    assert set(lines["accuracy"]) == {"train", "val"}


def test_a_run_without_history_gets_no_plot(tmp_path):
    assert plots.write_history_png(tmp_path) is None
    assert not (tmp_path / "history.png").exists()


LM_HISTORY = [{"epoch": e, "train_loss": 5 / e, "val_loss": 5.2 / e, "train_token_accuracy": 0.1 * e,
               "val_token_accuracy": 0.09 * e, "train_perplexity": 150 / e, "val_perplexity": 180 / e,
               "seconds": 1.0} for e in (1, 2, 3)]


def test_a_language_model_history_draws_loss_token_accuracy_and_perplexity(tmp_path):
    lines = plots.curves(LM_HISTORY)
    assert list(lines) == ["loss", "token accuracy", "perplexity"]      # no empty accuracy panel
    assert lines["perplexity"]["val"] == [180, 90, 60]
    (tmp_path / "history.json").write_text(json.dumps(LM_HISTORY))
    with Image.open(plots.write_history_png(tmp_path)) as img:
        assert img.size[0] > 2.5 * img.size[1]                           # three panels side by side
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 16)) > 10
