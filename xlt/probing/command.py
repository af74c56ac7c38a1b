"""``xlt probe``: the layer-wise analysis of a finished encoder, without a fit."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mlflow.tracking import MlflowClient

from xlt.atomic import atomic_dir
from xlt.errors import XltError
from xlt.probing.analysis import ProbingAnalysis
from xlt.probing.attention import write_attention_maps
from xlt.probing.data import load_probing_data
from xlt.probing.encoder import load_encoder
from xlt.probing.outputs import log_curves, write_round
from xlt.probing.summary import peak_markdown, peak_table
from xlt.sources import TextSource, as_task_source


def _data_root(data: TextSource | str, cache_dir: str) -> Path:
    source = as_task_source(data, cache_dir)
    root = source.local_dir()
    if root is None:
        raise XltError(f"probing data {source} is not a local directory — give a directory with ud/ and tatoeba/ "
                       "(e.g. ../shared/data) or the synthetic panel")
    source.prepare()  # the synthetic panel is generated once into cache_dir
    return Path(root)


def probe(
    encoder: str | None = None,
    data: TextSource | str = "synthetic",
    analysis: ProbingAnalysis | None = None,
    source_language: str | None = None,
    languages: list[str] | None = None,
    max_sentences: int | None = 500,
    tokenizer: str | None = None,
    attention_maps: int = 2,
    n_boot: int = 1000,
    output: str | None = None,
    overwrite: bool = True,
    experiment_name: str = "probe",
    run_name: str | None = None,
    tracking_uri: str | None = None,
    cache_dir: str = "runs/cache",
) -> Path:
    """Layer-wise probing and representation analysis of an encoder (configs/analysis/probe.yaml).

    One no-grad pass gives every layer's word and sentence vectors; then, for every layer at once: UPOS and
    relation probes trained on the source language and scored on every language, with control tasks and
    selectivity; structural distance/depth probes (UUAS, root accuracy, Spearman); sentence retrieval P@1 both
    directions; CKA / SVCCA to the pivot (and the language matrix on multi-parallel data); attention entropy per
    head. Writes curves.csv, peaks.md/.csv (the layer where each property peaks, bootstrap CIs over sentences),
    PNG plots and attention maps, and logs every curve to MLflow as probe/<property>/<metric>/<group> with
    step = layer index.

    Args:
        encoder: An MLM checkpoint ``*.ckpt`` of ``xlt fit``, an export directory or a hub id.
        data: Probing data: ``synthetic`` (the synthetic panel, generated into ``cache_dir``), a directory with
            ``ud/<code>/*.conllu`` and ``tatoeba/`` (e.g. ``../shared/data``), or a text source object.
        analysis: What to compute (``xlt.probing.analysis.ProbingAnalysis``: properties, pooling, layers, probe
            capacity, seed).
        source_language: The language probes are trained on (default ``eng`` when present, else the pivot).
        languages: Evaluation languages (default: all with a treebank or a Tatoeba pair).
        max_sentences: Sentences per split and language (a seeded sample); ``null`` for all.
        tokenizer: The tokenizer, when not the encoder's own.
        attention_maps: Parallel pairs drawn as attention-map PNGs (with the ``attention`` property).
        n_boot: Bootstrap resamples of the peak table.
        output: Output directory (default ``runs/probe/<encoder name>``), replaced atomically.
        overwrite: Replace an existing output directory.
        experiment_name: MLflow experiment of the run.
        run_name: MLflow run name (default ``probe-<encoder name>``).
        tracking_uri: MLflow store (default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``).
        cache_dir: Where the synthetic panel is generated.
    """
    from xlt.mlflow_store import default_tracking_uri, get_or_create_experiment, stage_run

    if not encoder:
        raise XltError("xlt probe needs an encoder — pass --encoder <export dir | *.ckpt | hub id>")
    analysis = analysis if analysis is not None else ProbingAnalysis()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(encoder.rstrip("/")).name if Path(encoder).exists() else encoder)
    target = Path(output) if output is not None else Path("runs/probe") / name
    if target.exists() and not overwrite:
        raise XltError(f"output directory {target} already exists — pass --overwrite true or another --output")
    # everything that can be wrong is checked before anything is written
    probe_encoder = load_encoder(encoder, tokenizer)
    layers = probe_encoder.check_layers(analysis.layers)
    data_dir = _data_root(data, cache_dir)
    probing_data = load_probing_data(data_dir, source_language, languages, max_sentences, analysis.seed,
                                     need_trees=analysis.needs_trees, need_bitext=analysis.needs_bitext)

    result = analysis.run(probe_encoder, probing_data)
    peaks = peak_table(result.curves, n_boot=n_boot, seed=analysis.seed)
    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    with atomic_dir(target, overwrite=True) as tmp:
        write_round(result, peaks, tmp)
        if "attention" in analysis.properties and attention_maps > 0:
            pairs = [(b.code, b.lines[0], b.pivot, b.pivot_lines[0]) for b in probing_data.bitexts.values()
                     if b.lines][:attention_maps]
            write_attention_maps(probe_encoder, pairs, tmp)
        config = {"encoder": encoder, "data": str(data_dir), "source_language": probing_data.source,
                  "languages": sorted(probing_data.treebanks) or sorted(probing_data.bitexts),
                  "max_sentences": max_sentences, "layers": layers, "analysis": analysis.params()}
        (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")
        experiment_name, tags = stage_run(experiment_name, {"xlt.probe": "layers", "xlt.encoder": encoder,
                                                            "xlt.data": str(data_dir)})
        experiment_id = get_or_create_experiment(client, experiment_name, uri)
        run = client.create_run(experiment_id, run_name=run_name or f"probe-{name}", tags=tags)
        run_id = run.info.run_id
        try:
            for key, value in {**analysis.params(), "source_language": probing_data.source,
                               "max_sentences": max_sentences}.items():
                client.log_param(run_id, key, value)
            log_curves(client, run_id, result)
            client.log_artifacts(run_id, str(tmp), artifact_path="probe")
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id)
    skipped = {k: v for k, v in result.skipped.items() if v}
    print(peak_markdown(peaks), end="")
    if skipped:
        print("skipped sentences (longer than the encoder's positions, or a word without sub-tokens): "
              + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    print(f"wrote {target} (curves.csv, peaks.md/.csv, plots); MLflow run {run_id} in experiment {experiment_name}")
    return target
