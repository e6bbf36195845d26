"""Chapter 8's paper audit (generated from the depth-sweep records and the published constants) and its figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from resnet_lab import viz_training  # noqa: E402
from resnet_lab.experiments import PUBLISHED_TEST_ERR, depth_sweep_table, load_depth_sweep  # noqa: E402
from resnet_lab.experiments.audit import (  # noqa: E402
    PUBLISHED_PARAMS_M,
    STATUSES,
    format_audit,
    paper_audit,
    recipe_differences,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _row(model, train, val):
    return {"model": model, "train_err_%": train, "val_err_%": val}


def test_audit_covers_every_published_number_with_a_known_status():
    rows = paper_audit(depth_sweep_table(), load_depth_sweep())
    items = " ".join(r["item"] for r in rows)
    for name in PUBLISHED_TEST_ERR:
        assert f"ResNet-{name.removeprefix('resnet')} test error" in items
    for name in PUBLISHED_PARAMS_M:
        assert f"ResNet-{name.removeprefix('resnet')} parameters" in items
    assert all(r["status"] in STATUSES and r["reason"] for r in rows)
    params = [r for r in rows if r["item"].endswith("parameters")]
    assert all(r["status"] == "reproduced" for r in params)  # the architecture is the paper's
    assert all(len(line) <= 88 for line in format_audit(rows).splitlines())


def test_audit_statuses_follow_the_data():
    runs = [{"config": {"epochs": 30, "lr": 0.1, "schedule": "step", "weight_decay": 1e-4},
             "provenance": {"data": {"name": "cifar10"}}}]
    # Errors that fall with depth, one of them within seed noise of the paper's.
    good = [_row("resnet20", 5.0, 8.80), _row("resnet32", 4.0, 8.0), _row("plain20", 6.0, 9.0),
            _row("plain32", 7.0, 10.0)]
    rows = {r["item"]: r for r in paper_audit(good, runs)}
    assert rows["ResNet-20 test error"]["status"] == "reproduced"
    assert rows["ResNet-32 test error"]["status"] == "same trend, different level"
    assert rows["ResNet-56 test error"]["status"] == "not attempted"
    assert "30 epochs instead of about 164" in rows["ResNet-32 test error"]["reason"]
    assert "JPEG" not in rows["ResNet-32 test error"]["reason"]
    # A residual step that goes the wrong way.
    bad = [_row("resnet20", 5.0, 12.0), _row("resnet32", 6.0, 13.0), _row("plain20", 6.0, 9.0),
           _row("plain32", 5.0, 10.0)]
    rows = {r["item"]: r for r in paper_audit(bad, runs)}
    assert rows["ResNet-32 test error"]["status"] == "not reproduced"
    assert rows["figure 6: deeper ResNets, lower training error"]["status"] == "not reproduced"
    assert rows["figure 6: deeper plain nets, higher training error"]["status"] == "not reproduced"


def test_recipe_differences_name_only_what_differs():
    assert recipe_differences({"lr": 0.1, "schedule": "step", "weight_decay": 1e-4}) == []
    assert recipe_differences({"lr": 0.2, "label_smoothing": 0.1}) == [
        "peak learning rate 0.2 instead of 0.1", "label smoothing 0.1 instead of 0.0"]


def test_class_grid_is_one_mosaic_with_class_names():
    x = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(40) % 4
    fig = viz_training.plot_class_grid(x, y, ["a", "b", "c", "d"], per_class=3)
    ax = fig.axes[0]
    assert len(ax.images) == 1
    assert ax.images[0].get_array().shape[:2] == (4 * 10 - 2, 3 * 10 - 2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c", "d"]
    with pytest.raises(TypeError, match="uint8"):
        viz_training.plot_class_grid(x.float(), y, ["a"])


def test_figures_label_their_axes():
    epochs = [{"epoch": e, "lr": 0.1, "train_eval_err": 0.5, "train_eval_err_precise": 0.4, "val_err": 0.5,
               "val_err_precise": 0.45, "seconds": 10.0, "val_acc": 0.5} for e in (1, 2, 3)]
    record = {"model": "plain20", "epochs": epochs}
    runs = [{"seed": s, "epochs": epochs, "final": {"val_err": 0.5 + s / 100}} for s in range(3)]
    figures = [
        viz_training.plot_precise_bn(record, record),
        viz_training.plot_seed_spread(runs),
        viz_training.plot_time_to_accuracy(epochs, "run"),
        viz_training.plot_ablations({"a": {"val_err_%": [50.0, 49.0], "mean": 49.5}},
                                    {"val_err_%": [51.0, 52.0], "mean": 51.5}),
        viz_training.plot_schedules({"constant": [0.1] * 20}, steps_per_epoch=10),
    ]
    for fig in figures:
        assert any(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
