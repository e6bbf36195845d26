"""The ablations experiment of chapter 8: each variant removes exactly one part of the recipe; the comparison with
the seed spread is right on known numbers; the experiment writes one file per variant and seed, resumably."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from resnet_lab import experiments
from resnet_lab.experiments import ablations
from resnet_lab.experiments.seed_spread import seed_spread_config


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    experiments.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("variant", list(ablations.ABLATIONS))
def test_each_variant_changes_only_what_it_names(variant):
    default = dataclasses.asdict(seed_spread_config(4, seed=3))
    config, options = ablations.ablation_recipe(variant, 4, seed=3)
    changed = {k for k, v in dataclasses.asdict(config).items() if default[k] != v}
    expected = {"no-augmentation": {"augment"}, "constant-lr": {"schedule", "lr", "warmup_epochs"},
                "zero-init-residual": set(), "no-label-smoothing": {"label_smoothing"}}[variant]
    assert changed == expected
    assert options == ({"zero_init_residual": True} if variant == "zero-init-residual" else {})
    assert config.seed == 3 and config.epochs == 4


def test_an_unknown_variant_is_named_in_the_error():
    with pytest.raises(ValueError, match="no-augmentation"):
        ablations.ablation_recipe("no-dropout")


def test_summary_against_the_spread_on_known_numbers():
    default = {"mean": 10.0, "std": 2.0, "n": 8}

    def runs(*errors):
        return [{"seed": s, "final": {"val_err": e / 100}} for s, e in enumerate(errors)]

    summary = ablations.ablation_summary({"far": runs(16, 16, 16), "near": runs(11, 10, 9)}, default)
    se = 2.0 * (1 / 3 + 1 / 8) ** 0.5  # 1.354
    assert summary["far"]["difference"] == pytest.approx(6.0) and summary["far"]["se"] == pytest.approx(se)
    assert summary["far"]["distinguishable"] and not summary["near"]["distinguishable"]
    assert summary["near"]["seeds"] == [0, 1, 2]


def test_the_experiment_writes_one_file_per_variant_and_seed(tmp_path, capsys):
    args = _parse("ablations", "--data", "synthetic", "--out", str(tmp_path / "runs"), "--results",
                  str(tmp_path / "res"), "--model", "resnet8", "--epochs", "1", "--train-size", "128",
                  "--variants", "zero-init-residual", "no-label-smoothing", "--seeds", "0", "1")
    assert experiments.run(args) == 0
    runs = ablations.load_ablations(tmp_path / "res" / "ablations")
    assert sorted(runs) == ["no-label-smoothing", "zero-init-residual"]
    assert [r["seed"] for r in runs["zero-init-residual"]] == [0, 1]
    assert runs["zero-init-residual"][0]["model_options"] == {"zero_init_residual": True}
    assert runs["no-label-smoothing"][0]["config"]["label_smoothing"] == 0.0
    assert all(r["experiment"] == "ablations" and r["provenance"]["data"]["split_seed"] == 0
               for variant in runs.values() for r in variant)
    capsys.readouterr()
    assert experiments.run(args) == 0  # everything finished: skipped
    assert capsys.readouterr().out.count("finished earlier") == 4


def test_bad_options_fail_before_any_data_is_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr("resnet_lab.data.load_data", lambda *a, **k: pytest.fail("loaded data for bad options"))
    for argv, message in ((["--seeds", "1", "1"], "different seeds"), (["--epochs", "0"], "epochs"),
                          (["--model", "plain20", "--variants", "zero-init-residual"], "residual")):
        args = _parse("ablations", "--data", "synthetic", "--out", str(tmp_path / "o"), "--results",
                      str(tmp_path / "r"), *argv)
        with pytest.raises(ValueError, match=message):
            experiments.run(args)


def test_reading_without_records_says_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="experiment ablations"):
        ablations.load_ablations(tmp_path)
