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


def leaves(node: object, path: tuple = ()) -> list[tuple[tuple, object]]:
    """``(path, value)`` of every scalar (or plain list) in a config; lists of mappings are walked by index."""
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in leaves(value, (*path, key))]
    if isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        walked = [leaf for i, item in enumerate(node) for leaf in leaves(item, (*path, i))]
        return [((*path, "len"), len(node)), *walked]
    return [(path, node)]


def assert_file_values_survive(resolved: dict, config: Path) -> None:
    """Every value written in ``config`` is in the resolved configuration at the same place, unchanged (a later
    --config wins, nothing is dropped, renamed, re-typed or reset to a default)."""
    for path, value in leaves(yaml.safe_load(config.read_text(encoding="utf-8"))):
        node: object = resolved
        for key in path:
            node = len(node) if key == "len" else node[key]  # a KeyError names the lost key
        assert node == value, (config.name, path, value, node)


def test_every_top_level_recipe_resolves(capsys: pytest.CaptureFixture[str]) -> None:
    assert {p.stem for p in RECIPES} >= {"quickstart", *TABLE1}
    for recipe in RECIPES:
        config = print_config(capsys, recipe)
        assert config["model"]["class_path"] == "xlt.models.mlm.MLMPretraining", recipe
        assert config["data"]["class_path"] == "xlt.datamodules.corpus.MultilingualCorpusDataModule", recipe
        assert_file_values_survive(config, recipe)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.stem)
def test_every_scale_overlay_composes_with_every_model_recipe(capsys, overlay: Path) -> None:
    for recipe in MODEL_RECIPES:
        config = print_config(capsys, recipe, overlay)
        tiny = config["model"]["init_args"]["config"]
        assert tiny["hidden_size"] <= 64 and tiny["num_hidden_layers"] <= 2, recipe
        assert config["trainer"]["accelerator"] == "cpu"
        assert config["trainer"]["default_root_dir"] == "runs/cpu_tiny"
        assert_file_values_survive(config, overlay)


def test_table1_recipes_have_the_paper_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    for name, (layers, width, vocab) in TABLE1.items():
        config = print_config(capsys, CONFIGS / f"{name}.yaml")["model"]["init_args"]["config"]
        assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (layers, width, vocab)
        assert config["intermediate_size"] == 4 * width
        assert width % config["num_attention_heads"] == 0


def test_every_panel_loads() -> None:
    panels = sorted((CONFIGS / "panels").glob("*.yaml"))
    assert {p.stem for p in panels} >= {"paper40", "synthetic"}
    assert (len(load_panel(CONFIGS / "panels" / "paper40.yaml")), len(load_panel("synthetic"))) == (40, 10)
    for path in panels:
        records = yaml.safe_load(path.read_text(encoding="utf-8"))["languages"]
        panel = load_panel(path)
        assert panel.codes == [r["code"] for r in records], path
        for record, language in zip(records, panel, strict=True):
            assert {key: getattr(language, key) for key in record} == record, (path, record["code"])


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
        assert_file_values_survive(config, strategy)  # the overlay wins (accelerator, devices, precision)


@pytest.mark.parametrize("tokenizer", sorted((CONFIGS / "tokenizer").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_tokenizer_config_resolves(capsys: pytest.CaptureFixture[str], tokenizer: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tokenizer", "fit", "--config", str(tokenizer), "--print_config"])
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), captured.err
    assert_file_values_survive(yaml.safe_load(captured.out), tokenizer)


@pytest.mark.parametrize("overlay", sorted((CONFIGS / "tasks" / "lab").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_lab_task_overlay_composes_with_its_task_recipe(capsys: pytest.CaptureFixture[str],
                                                              overlay: Path) -> None:
    config = print_config(capsys, CONFIGS / "tasks" / overlay.name, overlay)
    assert_file_values_survive(config, overlay)
    assert config["model"]["init_args"]["encoder"] == "runs/quickstart/export"  # what make quickstart exports
    if overlay.stem != "retrieval":  # retrieval trains nothing and reads the default 1,000-line Tatoeba files
        assert config["data"]["init_args"]["data"]["init_args"]["task_scale"] == 16


ADAPTER_CONFIGS = CONFIGS / "adapters"


@pytest.mark.parametrize("recipe", ["lang_adapter_mlm", "lang_adapters_all"])
def test_adapter_mlm_recipes_resolve(capsys: pytest.CaptureFixture[str], recipe: str) -> None:
    config = print_config(capsys, ADAPTER_CONFIGS / f"{recipe}.yaml")
    assert_file_values_survive(config, ADAPTER_CONFIGS / f"{recipe}.yaml")
    assert config["model"]["init_args"]["adapters"]["class_path"] == "xlt.adapters.config.AdapterSetup"


@pytest.mark.parametrize("overlay", ["madx", "full_finetune"])
@pytest.mark.parametrize("task", ["ner", "udpos"])
def test_adapter_task_overlays_compose_with_token_tasks(capsys: pytest.CaptureFixture[str], overlay: str,
                                                         task: str) -> None:
    config = print_config(capsys, CONFIGS / "tasks" / f"{task}.yaml", ADAPTER_CONFIGS / f"{overlay}.yaml")
    assert_file_values_survive(config, ADAPTER_CONFIGS / f"{overlay}.yaml")
    assert config["model"]["init_args"]["adapters"]["init_args"]["task_adapter"] is True


SWEEP_RECIPES = {  # the sweep recipe after the recipes it overlays (none: it is a full recipe)
    "oversampling": [],
    "oversampling_paper": [CONFIGS / "multi_s.yaml", CONFIGS / "scale" / "cpu_tiny.yaml"],
}


@pytest.mark.parametrize("sweep", sorted(SWEEP_RECIPES), ids=str)
def test_sweep_recipes_resolve_and_sweep_fit_options(sweep: str) -> None:
    """Each sweep recipe parses as ``xlt sweep`` reads it, and its search space passes the check a sweep makes
    before any study exists (every path an ``xlt fit`` option, the fit config valid with the space's values)."""
    from xlt.lightning_cli import parse_recipe
    from xlt.tuning.command import spec_from_config, sweep_command
    from xlt.tuning.study import validate
    from xlt.tuning.trial_run import plain_config

    args = [arg for path in [*SWEEP_RECIPES[sweep], CONFIGS / "sweeps" / f"{sweep}.yaml"]
            for arg in ("--config", str(path))]
    recipe, options = parse_recipe(args, sweep_command, "xlt sweep")
    spec = spec_from_config(options["sweep"])
    validate(plain_config(recipe), spec, n_trials=1)
    assert spec.name == sweep and [o.bucket for o in spec.objectives] == ["tail", "high"]
    assert {"data.init_args.alpha", "data.init_args.oversampling.tail"} <= set(spec.space)


def test_probing_callback_overlay_appends_to_the_quickstart_callbacks(capsys: pytest.CaptureFixture[str]) -> None:
    overlay = CONFIGS / "callbacks" / "probing.yaml"
    config = print_config(capsys, CONFIGS / "quickstart.yaml", overlay)
    callbacks = [c["class_path"] for c in config["trainer"]["callbacks"]]
    assert callbacks == ["lightning.pytorch.callbacks.ModelCheckpoint", "xlt.callbacks.optim.LearningRateLogger",
                         "xlt.callbacks.probing.ProbingCallback"]
    probing = config["trainer"]["callbacks"][2]["init_args"]
    written = yaml.safe_load(overlay.read_text(encoding="utf-8"))["trainer"]["callbacks+"][0]["init_args"]
    for path, value in leaves(written):
        node: object = probing
        for key in path:
            node = node[key]
        assert node == value, (path, value, node)


def test_probe_analysis_config_resolves_as_xlt_probe_reads_it(capsys: pytest.CaptureFixture[str]) -> None:
    config_file = CONFIGS / "analysis" / "probe.yaml"
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", "--config", str(config_file), "--print_config"])
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), captured.err
    assert_file_values_survive(yaml.safe_load(captured.out), config_file)
