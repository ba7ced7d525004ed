"""Deploy pipelines as data: the YAML format and its JSON Schema, the product defaults, overrides per
team and service, their versions, and which pipeline a deploy gets and why.

What the orchestrator uses: `pipeline_for` (the pipeline and why), `pipeline_version_ref` (what a deploy
record stores), `stored_pipeline` (the exact pipeline a deploy recorded), and the pure helpers of
expressions.py (durations, conditions, placeholders) to run the steps.
"""

from quarterdeck.deploys.pipelines.expressions import (
    Condition,
    fill_placeholders,
    parse_condition,
    parse_duration,
)
from quarterdeck.deploys.pipelines.format import Pipeline, pipeline_json_schema
from quarterdeck.deploys.pipelines.schemas import ChosenPipeline, PipelineVersionRef
from quarterdeck.deploys.pipelines.service import (
    apply_pipeline,
    pipeline_for,
    pipeline_version_ref,
    pipelines_for_service,
    stored_pipeline,
)

__all__ = [
    "ChosenPipeline",
    "Condition",
    "Pipeline",
    "PipelineVersionRef",
    "apply_pipeline",
    "fill_placeholders",
    "parse_condition",
    "parse_duration",
    "pipeline_for",
    "pipeline_json_schema",
    "pipeline_version_ref",
    "pipelines_for_service",
    "stored_pipeline",
]
