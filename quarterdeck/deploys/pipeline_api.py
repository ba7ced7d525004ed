"""Pipelines JSON API: apply an override (JSON or YAML body), list pipelines and their versions, the
pipeline a service gets in an environment and why, and the format's JSON Schema."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse

from quarterdeck.access.deps import ActorDep, reader
from quarterdeck.deploys.pipelines import service
from quarterdeck.deploys.pipelines.format import pipeline_json_schema
from quarterdeck.deploys.pipelines.loading import pipeline_from_body
from quarterdeck.deploys.pipelines.schemas import (
    ApplyResult,
    ChosenPipeline,
    PipelineDetail,
    PipelineOut,
    PipelineVersionOut,
)
from quarterdeck.deploys.schemas import SLUG
from quarterdeck.web.deps import ClockDep, IdPath, SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1", tags=["pipelines"], dependencies=[Depends(reader)])
public_router = APIRouter(prefix="/api/v1", tags=["pipelines"])
"""Routes anyone may read, signed in or not: the pipeline JSON Schema that editors fetch."""

Environment = Annotated[str, Query(pattern=SLUG, max_length=100)]
BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Pipeline"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


@public_router.get("/schema/pipeline.json")
def pipeline_schema() -> dict[str, Any]:
    return pipeline_json_schema()


@router.put("/pipelines/{scope}/{ref:path}", response_model=ApplyResult, openapi_extra=BODY_DOC)
def apply_pipeline(
    scope: Annotated[str, Path(pattern="^(service|team|default)$")],
    ref: Annotated[str, Path(min_length=1, max_length=200)],
    body: Annotated[Any, Body()],
    session: SessionDep,
    actor: ActorDep,
    clock: ClockDep,
    settings: SettingsDep,
    environment: Environment | None = None,
    base_version: Annotated[int | None, Query(ge=0, le=2_147_483_647)] = None,
) -> JSONResponse:
    """Keep a pipeline as the override of a service or team (in `environment`, or every one), or as an
    organisation default (`default/{name}`, admins). 201 with version 1, 200 with a new version or
    `unchanged`; 409 when another apply won the race, or the pipeline is no longer at `base_version`."""
    pipeline = pipeline_from_body(body)
    with session.begin():
        result = service.apply_pipeline(
            session,
            actor,
            scope,
            ref,
            pipeline,
            environment=environment,
            base_version=base_version,
            header_sets=settings.webhook_headers.keys(),
            at=clock.now(),
        )
    return JSONResponse(
        result.model_dump(mode="json"), status_code=201 if result.outcome == "created" else 200
    )


@router.get("/pipelines", response_model=list[PipelineOut])
def list_pipelines(session: SessionDep) -> list[PipelineOut]:
    """Stored pipelines (overrides, organisation defaults, product defaults a deploy has run), then the
    product defaults not run yet."""
    return service.list_pipelines(session)


@router.get("/pipelines/{pipeline_id}", response_model=PipelineDetail)
def get_pipeline(pipeline_id: IdPath, session: SessionDep) -> PipelineDetail:
    return service.get_pipeline(session, pipeline_id)


@router.get("/pipelines/{pipeline_id}/versions", response_model=list[PipelineVersionOut])
def pipeline_versions(
    pipeline_id: IdPath, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[PipelineVersionOut]:
    """Every version of the pipeline, newest first, with its body and digest."""
    return service.pipeline_versions(session, pipeline_id, limit=limit)


@router.get("/services/{slug:path}/pipeline", response_model=ChosenPipeline)
def service_pipeline(slug: str, environment: Environment, session: SessionDep) -> ChosenPipeline:
    """The pipeline a deploy of the service to `environment` gets now, why, and its exact version."""
    return service.pipeline_for(session, slug, environment)
