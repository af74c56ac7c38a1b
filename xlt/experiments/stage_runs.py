"""The MLflow runs of an experiment's units, as the results page reads them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xlt.evaluation.predictions import prediction_file_name
from xlt.evaluation.report_runs import search_runs
from xlt.experiments.recipe import Recipe, Unit


class StageRuns:
    """The MLflow runs of an experiment's units: per unit hash, its latest FINISHED run that is not a sweep trial."""

    def __init__(self, recipe: Recipe, client: Any, downloads: Path) -> None:
        self.recipe, self.client, self.downloads = recipe, client, downloads
        experiment = client.get_experiment_by_name(recipe.mlflow_experiment)
        self.by_hash: dict[str, Any] = {}
        if experiment is None:
            return
        query = f"tags.`xlt.experiment` = '{recipe.name}' and attributes.status = 'FINISHED'"
        runs = search_runs(client, experiment.experiment_id, query)
        for run in sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)):  # the latest run wins
            if "xlt.trial" in run.data.tags:
                continue
            self.by_hash[run.data.tags.get("xlt.experiment.hash", "")] = run

    def run(self, unit: Unit) -> Any | None:
        return self.by_hash.get(unit.hash)

    def predictions(self, unit: Unit, task: str, codes: Sequence[str]) -> list[Path] | None:
        """The unit's run's prediction files of ``codes`` (MLflow artifacts ``predictions/test-<code>.<ext>``),
        downloaded once; ``None`` unless the run has all of them."""
        run = self.run(unit)
        if run is None:
            return None
        names = [prediction_file_name(task, code) for code in codes]
        target = self.downloads / run.info.run_id
        if not target.is_dir():
            target.mkdir(parents=True)
            if self.client.list_artifacts(run.info.run_id, "predictions"):
                os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # one bar per file is noise here
                self.client.download_artifacts(run.info.run_id, "predictions", str(target))
        files = [target / "predictions" / name for name in names]
        return files if all(f.is_file() for f in files) else None

    def metrics(self, unit: Unit) -> dict[str, float] | None:
        run = self.run(unit)
        return None if run is None else dict(run.data.metrics)
