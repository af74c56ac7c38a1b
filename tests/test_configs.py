"""Every shipped config resolves (alone or with the overlays it is meant for); Table 1 shapes are right."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xlt.cli import main
from xlt.languages import load_panel

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = sorted(p for p in CONFIGS.glob("*.yaml"))
MODEL_RECIPES = sorted(p for p in RECIPES if p.stem.startswith("multi_"))
OVERLAYS = sorted((CONFIGS / "scale").glob("*.yaml"))
# Table 1: layers, d_model, vocabulary
TABLE1 = {"multi_s": (12, 768, 250_000), "multi_m": (24, 1024, 250_000), "multi_l": (32, 2048, 500_000),
          "multi_l_plus": (32, 2048, 250_000 + 12 * 50_000)}


def print_config(capsys: pytest.CaptureFixture[str], *configs: Path) -> dict:
    args = ["fit"]
    for config in configs:
        args += ["--config", str(config)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), captured.err
    return yaml.safe_load(captured.out)


def test_every_top_level_recipe_resolves(capsys: pytest.CaptureFixture[str]) -> None:
    assert {p.stem for p in RECIPES} >= {"quickstart", *TABLE1}
    for recipe in RECIPES:
        config = print_config(capsys, recipe)
        assert config["model"]["class_path"].startswith("xlt."), recipe
        assert config["data"]["class_path"].startswith("xlt."), recipe


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.stem)
def test_every_scale_overlay_composes_with_every_model_recipe(capsys, overlay: Path) -> None:
    for recipe in MODEL_RECIPES:
        config = print_config(capsys, recipe, overlay)
        tiny = config["model"]["init_args"]["config"]
        assert tiny["hidden_size"] <= 64 and tiny["num_hidden_layers"] <= 2, recipe
        assert config["trainer"]["accelerator"] == "cpu"
        assert config["trainer"]["default_root_dir"] == "runs/cpu_tiny"


def test_table1_recipes_have_the_paper_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    for name, (layers, width, vocab) in TABLE1.items():
        config = print_config(capsys, CONFIGS / f"{name}.yaml")["model"]["init_args"]["config"]
        assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (layers, width, vocab)
        assert config["intermediate_size"] == 4 * width
        assert width % config["num_attention_heads"] == 0


def test_every_panel_loads() -> None:
    panels = sorted((CONFIGS / "panels").glob("*.yaml"))
    assert {p.stem for p in panels} >= {"paper40", "synthetic"}
    for path in panels:
        assert len(load_panel(path)) >= 8


def test_print_config_builds_no_weights(capsys: pytest.CaptureFixture[str]) -> None:
    """Multi-L+ (billions of parameters) resolves in well under a second per call: nothing is allocated."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print_config(capsys, CONFIGS / "multi_l_plus.yaml")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 500  # the fp32 weights alone would be > 10 GiB


@pytest.mark.parametrize("strategy", sorted((CONFIGS / "strategy").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_strategy_overlay_composes(capsys: pytest.CaptureFixture[str], strategy: Path) -> None:
    for recipe in (CONFIGS / "quickstart.yaml", CONFIGS / "multi_l_plus.yaml"):
        config = print_config(capsys, recipe, strategy)
        assert config["trainer"]["strategy"], (recipe, strategy)


@pytest.mark.parametrize("tokenizer", sorted((CONFIGS / "tokenizer").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_tokenizer_config_resolves(capsys: pytest.CaptureFixture[str], tokenizer: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tokenizer", "fit", "--config", str(tokenizer), "--print_config"])
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), captured.err
    assert yaml.safe_load(captured.out)
