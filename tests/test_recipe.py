from __future__ import annotations

import pytest

from obliviate.errors import ConfigError
from obliviate.recipe import load_recipe, resolve_recipe


def test_default_recipe_is_npo_on_authors():
    r = load_recipe()
    assert r.method == "npo" and r.benchmark.name == "authors" and r.benchmark.forget_split == "forget10"
    assert r.objective == {"name": "npo", "beta": 0.25, "retain_weight": 2.0, "forget_tokens": "fact"}
    assert r.scope == {"name": "full"} and r.composition == {"name": "direct"}
    assert r.training.learning_rate == pytest.approx(2e-4) and r.schedule == {"name": "until_unseen", "epochs": 60}


def test_method_replaces_axes_and_set_overrides(tmp_path):
    r = load_recipe(method="graddiff", overrides=["objective.retain_weight=3", "scope=lora", "scope.r=4",
                                                  "training.learning_rate=1e-4", "seed=7"])
    assert r.objective == {"name": "graddiff", "retain_weight": 3}
    assert r.scope == {"name": "lora", "r": 4}
    assert r.training.learning_rate == pytest.approx(1e-4) and r.seed == 7
    # the resolved recipe round-trips through YAML
    path = tmp_path / "r.yaml"
    path.write_text(r.to_yaml())
    assert load_recipe(path).to_dict() == r.to_dict()


def test_axes_combine_freely():
    r = resolve_recipe({"objective": "simnpo", "scope": {"name": "lora", "r": 2}})
    assert r.objective["name"] == "simnpo" and r.scope["r"] == 2


@pytest.mark.parametrize("override, message", [
    ("objective.betta=1", "unknown option 'betta'"),
    ("training.lr=1", "unknown key 'training.lr'"),
    ("nonsense=1", "unknown key 'nonsense'"),
    ("objective.beta=abc", "must be float"),
    ("objective=nope", "objective 'nope' is unknown"),
    ("novalue", "expected key=value"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ConfigError) as info:
        load_recipe(overrides=[override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_recipe_files(tmp_path):
    with pytest.raises(ConfigError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("objective: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("optimiser: {}\n")
    with pytest.raises(ConfigError, match="unknown section 'optimiser'"):
        load_recipe(unknown)
    with pytest.raises(ConfigError, match="method 'nope' is unknown"):
        load_recipe(method="nope")


def test_run_presets_start_from_their_leaderboard_pick_unlearn_keeps_paper_defaults():
    from obliviate.recipe import benchmark_picks

    assert benchmark_picks("npo") == ["training.learning_rate=0.0005", "schedule.epochs=15"]
    r = load_recipe(method="npo")  # obliviate run --method npo: the embedded recipe + npo's pick
    assert r.training.learning_rate == pytest.approx(5e-4) and r.schedule == {"name": "epochs", "epochs": 15}
    assert load_recipe(method="npo", overrides=["schedule.epochs=3"]).schedule["epochs"] == 3  # --set wins
    assert load_recipe(method="icu").schedule["max_epochs"] == 10
    assert benchmark_picks("uld-code") == []  # no leaderboard row: the file's training values
    paper = resolve_recipe({}, method="npo")  # obliviate unlearn without a recipe: the paper's values
    assert paper.training.learning_rate == pytest.approx(1e-5) and paper.schedule == {"name": "epochs"}
