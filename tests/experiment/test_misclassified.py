"""misclassified.png: the images an image classifier gets most confidently wrong (for a sweep,
from its best member), and the summary entry that says which images they are."""
import numpy as np
import pytest

import fnn
from cli_helpers import CONFIGS, read_summary, run_cli, write_config
from fnn.experiment import misclassified

pytest.importorskip("matplotlib")

# 3 examples, 3 classes: rows are class probabilities
PROBS = np.array([[0.9, 0.05, 0.05],   # pred 0
                  [0.2, 0.7, 0.1],     # pred 1
                  [0.1, 0.1, 0.8],     # pred 2
                  [0.6, 0.3, 0.1]])    # pred 0


@pytest.mark.parametrize("y, k, expected", [
    ([0, 1, 2, 0], 24, []),               # nothing wrong
    ([1, 1, 2, 0], 24, [0]),              # one wrong
    ([1, 0, 0, 1], 24, [0, 2, 1, 3]),     # all wrong: by confidence 0.9, 0.8, 0.7, 0.6
    ([1, 0, 0, 1], 2, [0, 2]),            # at most k
    ([0, 0, 2, 1], 24, [1, 3]),           # 0.7 before 0.6
])
def test_most_confident_errors(y, k, expected):
    got = misclassified.most_confident_errors(PROBS, np.asarray(y), k)
    assert got.tolist() == expected and got.dtype == np.int64


def test_ties_keep_split_order():
    probs = np.array([[0.5, 0.5, 0.0]] * 3 + [[0.0, 0.5, 0.5]])
    assert misclassified.most_confident_errors(probs, np.array([2, 2, 2, 0])).tolist() == [0, 1, 2, 3]


def test_errors_reshapes_images_and_counts():
    x = np.arange(4 * 12, dtype=np.uint8).reshape(4, 12)  # 2x2 RGB images
    e = misclassified.errors(PROBS, x, np.array([1, 0, 2, 0]), (2, 2), "test")
    assert e.images.shape == (2, 2, 2, 3) and e.of == 2 and e.total == 4
    np.testing.assert_array_equal(e.images[0], x[0].reshape(2, 2, 3))
    assert e.true.tolist() == [1, 0] and e.pred.tolist() == [0, 1]
    np.testing.assert_allclose(e.confidence, [0.9, 0.7])


def test_nothing_wrong_writes_nothing(tmp_path):
    e = misclassified.errors(PROBS, np.zeros((4, 4), np.uint8), np.array([0, 1, 2, 0]), (2, 2),
                             "test")
    assert not misclassified.plot_misclassified(tmp_path / "m.png", e, ["a", "b", "c"])
    assert list(tmp_path.iterdir()) == []


CNN = """
[data]
name = "shapes"
n_samples = 300
val_fraction = 0.1

[[model.layers]]
type = "conv2d"
filters = 4
kernel_size = 3
activation = "relu"

[[model.layers]]
type = "max_pool2d"
pool_size = 4

[[model.layers]]
type = "flatten"

[optimizer]
name = "adam"
learning_rate = 0.003

[training]
epochs = 2
batch_size = 32

[output]
progress = false
"""


def _test_split(run):
    import fnn
    from fnn.experiment import build, handle

    sweep = len(handle.member_labels(run)) > 1  # the members share the data section
    dataset = build.load_dataset(fnn.load_run(run, member=0 if sweep else None).config)
    return np.asarray(dataset.x_test), np.asarray(dataset.y_test)


def _check_shown(run, member):
    """The summary's indices are the member's most confident mistakes on the test split."""
    s = read_summary(run)["misclassified"]
    x, y = _test_split(run)
    probs = fnn.load_run(run, member=member).predict(x)
    assert s["split"] == "test" and s["examples"] == y.shape[0]
    assert s["wrong"] == int(np.sum(probs.argmax(axis=1) != y))
    assert s["shown"] == misclassified.most_confident_errors(probs, y).tolist()
    assert 0 < len(s["shown"]) <= misclassified.MAX_SHOWN
    return s


@pytest.mark.slow
def test_run_writes_misclassified_png(tmp_path):
    out = tmp_path / "run"
    rc, _, err = run_cli("train", write_config(tmp_path / "cnn.toml", CNN), "--out", out, "--quiet",
                         plots=True)
    assert rc == 0, err
    png = out / "misclassified.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    s = _check_shown(out, None)
    assert s["member"] == "0"
    summary = read_summary(out)
    counts = np.asarray(summary["confusion_matrix"])
    assert s["wrong"] == counts.sum() - np.trace(counts)  # the confusion matrix's errors


@pytest.mark.slow
def test_sweep_uses_the_best_member(tmp_path):
    out = tmp_path / "sweep"
    cfg = write_config(tmp_path / "cnn.toml", CNN + "\n[sweep]\noptimizer.learning_rate = "
                       "[1e-6, 0.01]\n")
    rc, _, err = run_cli("train", cfg, "--out", out, "--quiet", plots=True)
    assert rc == 0, err
    members = read_summary(out)["members"]
    best = min(range(len(members)), key=lambda i: members[i]["best_val_loss"])
    assert best == 1  # the learning rate that learns
    s = _check_shown(out, best)
    assert s["member"] == members[best]["member"]
    assert (out / "misclassified.png").is_file()


@pytest.mark.slow
def test_plots_off_or_not_images_writes_none(tmp_path):
    out = tmp_path / "run"
    rc, _, err = run_cli("train", write_config(tmp_path / "cnn.toml", CNN), "--out", out,
                         "--quiet", "--set", "output.plots=false")
    assert rc == 0, err
    assert not (out / "misclassified.png").exists()
    assert "misclassified" not in read_summary(out)
    out = tmp_path / "quick"
    rc, _, err = run_cli("train", CONFIGS / "quickstart.toml", "--out", out, "--quiet", "--set",
                         "training.epochs=1", "--set", "data.n_samples=200", "--set",
                         "output.progress=false", plots=True)
    assert rc == 0, err
    assert (out / "confusion.png").is_file() and not (out / "misclassified.png").exists()
