"""The TUF repository over HTTPS: publishers upload signed metadata and files with a
token; gateways fetch metadata and targets with their factory certificate.

Uploads of files stream to disk (up to 8 GiB) and are kept only if they hash to
the SHA-384 in their URL. Target downloads honour ``Range`` so a broken
download resumes where it stopped.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from tuf.api.metadata import Targets, Timestamp

from edgeward.errors import InputError, NotAvailable, PermissionDenied
from edgeward.server.api import deps
from edgeward.server.api.models import Strict
from edgeward.server.db.models import Rollout
from edgeward.server.services import audit, registry, rollouts
from edgeward.server.services import releases as release_index
from edgeward.server.services import stages as stages_service
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.server.services.repository import ServerRepository
from edgeward.server.state import ServerState, state_of
from edgeward.trust import publication
from edgeward.trust.targets import OS_ROLE, parse_os_target

router = APIRouter(tags=["repository"])
_ROLE = re.compile(r"^(root|targets|os|apps-[a-z0-9][a-z0-9._-]{0,62})$")
MAX_METADATA = 4 << 20  # an os role listing every release ever published
TENANT_MAX_BLOB = 1 << 30  # a tenant's app image (the platform's OS images: MAX_BLOB)


def repo_of(state: ServerState) -> ServerRepository:
    if state.repository is None:
        raise NotAvailable("this server has no TUF repository")
    return state.repository


class InitRequest(Strict):
    root: str = Field(max_length=1 << 17)
    targets: str = Field(max_length=1 << 17)
    delegated: dict[str, str] = Field(max_length=16)


def _authorize_role(session: Any, request: Request, role: str) -> Principal:
    if not _ROLE.match(role):
        raise InputError(f"no role {role!r} can be uploaded (root, targets, os, apps-<tenant>)")
    if role.startswith("apps-"):
        who = deps.operator(session, request, Action.APP_PUBLISH)
        if not who.platform and role != f"apps-{who.tenant}":
            raise PermissionDenied(f"{who.actor} may publish only apps-{who.tenant}")
        return who
    return deps.operator(session, request, Action.RELEASE_PUBLISH)


def after_publish(state: ServerState, session: Any, role: str) -> None:
    """Mirror the published os role into the release index and known-good values."""
    repo = repo_of(state)
    if role != OS_ROLE or OS_ROLE not in repo.roles():
        return
    signed: Targets = repo.current(OS_ROLE).signed
    state.known_good = state.known_good.merged(repo.known_good())
    release_index.sync(session, release_entries(signed), state.clock())


def release_entries(signed: Targets) -> list[release_index.ReleaseEntry]:
    parts: dict[tuple[str, str], dict[str, Any]] = {}
    for path, target in signed.targets.items():
        info = parse_os_target(path, target.unrecognized_fields)
        ref = release_index.TargetRef(path, target.hashes[publication.HASH], target.length)
        parts.setdefault((info.model, info.version), {})[info.kind] = (info, ref)
    entries = []
    for (model, version), kinds in sorted(parts.items()):
        kernel_info, kernel = kinds["kernel"]
        delta = kinds.get("rootfs-delta")
        entries.append(release_index.ReleaseEntry(
            model=model, version=version, channel=kernel_info.channel,
            security_version=kernel_info.security_version, kernel=kernel,
            rootfs=kinds["rootfs"][1], delta=delta[1] if delta else None,
            delta_base_version=delta[0].base_version if delta else None,
            delta_base_sha384=delta[0].base_sha384 if delta else None))
    return entries


@router.get("/v1/repository")
def status(request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        deps.operator(session, request, Action.RELEASE_READ)
    repo = repo_of(state)
    repo.refresh_timestamp()
    roles = {role: {"version": md.signed.version,
                    "expires": md.signed.expires.isoformat()}
             for role in repo.roles() for md in [repo.current(role)]}
    return {"initialised": repo.initialised, "roles": roles}


@router.get("/v1/repository/online-keys")
def online_keys(request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        deps.operator(session, request, Action.RELEASE_PUBLISH)
    return repo_of(state).online_public()


@router.post("/v1/repository/online-keys/{role}/rotate")
def rotate_online(role: str, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.RELEASE_PUBLISH)
        key = repo_of(state).rotate_online(role)
        audit.record(session, who.tenant_id, who.actor, "repository.rotate-online", role,
                     state.clock(), keyid=key["keyid"])
        return key


@router.post("/v1/repository/init")
def init(body: InitRequest, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.RELEASE_PUBLISH)
        repo = repo_of(state)
        repo.initialise(body.root.encode(), body.targets.encode(),
                        {k: v.encode() for k, v in body.delegated.items()})
        audit.record(session, who.tenant_id, who.actor, "repository.init", "root",
                     state.clock(), roles=sorted(body.delegated))
        after_publish(state, session, OS_ROLE)
        return {"initialised": True, "roles": repo.roles()}


@router.get("/v1/repository/metadata/{role}")
def get_role(role: str, request: Request) -> Response:
    state = state_of(request)
    with state.db.transaction() as session:
        deps.operator(session, request, Action.RELEASE_READ)
    if not _ROLE.match(role) and role not in publication.ONLINE:
        raise InputError(f"no role {role!r}")
    return Response(repo_of(state).current_bytes(role), media_type="application/json")


DEFAULT_STAGES = ("10%", "50%", "100%")  # a new release never reaches the fleet at once


def parse_stages(texts: list[str]) -> list[dict[str, Any]]:
    """``10%`` is a percentage stage, ``acme/lobby,acme/hall`` a group stage."""
    out: list[dict[str, Any]] = []
    for text in texts:
        if text.endswith("%") and text[:-1].isdigit():
            out.append({"percent": int(text[:-1])})
        else:
            out.append({"groups": [g for g in text.split(",") if g]})
    return out


@router.put("/v1/repository/metadata/{role}")
async def put_role(role: str, request: Request,
                   stage: Annotated[list[str] | None, Query(max_length=20)] = None,
                   error_threshold: Annotated[int, Query(ge=0, le=100)] = 20
                   ) -> dict[str, Any]:
    """Publish a role. New OS releases start a staged rollout in the same transaction
    (``?stage=10%&stage=acme/lobby&stage=100%``; by default 10%, 50%, 100%), so no
    release reaches the whole fleet before its rollout exists."""
    data = await request.body()
    if len(data) > MAX_METADATA:
        raise InputError("metadata over 4 MiB")
    return await run_in_threadpool(  # signature checks, fsyncs, the DB: off the event loop
        _publish_role, request, role, data, parse_stages(stage or list(DEFAULT_STAGES)),
        error_threshold)


def _publish_role(request: Request, role: str, data: bytes, plan: list[dict[str, Any]],
                  error_threshold: int) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = _authorize_role(session, request, role)
        repo = repo_of(state)
        if role == OS_ROLE:  # refuse bad stages before publishing anything
            rollouts.check_groups(session, stages_service.parse(plan))
        version = repo.publish(role, data)
        audit.record(session, who.tenant_id, who.actor, "repository.publish", role,
                     state.clock(), version=version)
        after_publish(state, session, role)
        started = []
        if role == OS_ROLE:
            # every signed release without a rollout gets one: also one whose earlier
            # publication reached the repository but not the database
            ruled = set(session.execute(select(Rollout.model, Rollout.version)).tuples())
            for model, release in sorted(_release_ids(repo) - ruled):
                made = rollouts.create(session, who, model, release, plan, state.clock(),
                                       error_threshold)
                session.flush()
                started.append(made.id)
        return {"role": role, "version": version, "rollouts": started}


def _release_ids(repo: ServerRepository) -> set[tuple[str, str]]:
    if OS_ROLE not in repo.roles():
        return set()
    signed: Targets = repo.current(OS_ROLE).signed
    return {(i.model, i.version) for i in (parse_os_target(p, t.unrecognized_fields)
                                           for p, t in signed.targets.items())}


@router.put("/v1/repository/blobs/{digest}")
async def put_blob(digest: str, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.RELEASE_READ)
        authorize(who, Action.RELEASE_PUBLISH if who.platform else Action.APP_PUBLISH)
    length = int(request.headers.get("content-length", "0"))
    if not who.platform and length > TENANT_MAX_BLOB:
        raise InputError(f"a tenant's file is at most {TENANT_MAX_BLOB} bytes")
    stored = await repo_of(state).store_blob(digest, length, request.stream())
    with state.db.transaction() as session:
        audit.record(session, who.tenant_id, who.actor, "repository.upload", digest[:32],
                     state.clock(), bytes=length, new=stored)
    return {"sha384": digest, "length": length, "stored": stored}


# --- what gateways fetch (mutual TLS) ---------------------------------------------
def _gateway(request: Request) -> None:
    state = state_of(request)
    with state.db.transaction() as session:
        _, known = deps.gateway(session, request)
        registry.require_enrolled(known)


@router.get("/v1/gateway/tuf/metadata/{name}")
def gateway_metadata(name: str, request: Request) -> Response:
    _gateway(request)
    repo = repo_of(state_of(request))
    if name == f"{Timestamp.type}.json":
        repo.refresh_timestamp()  # never serve a timestamp about to expire
    return Response(repo.metadata_file(name).read_bytes(), media_type="application/json")


@router.get("/v1/gateway/tuf/targets/{path:path}")
def gateway_target(path: str, request: Request) -> FileResponse:
    _gateway(request)
    return FileResponse(repo_of(state_of(request)).target_file(path),
                        media_type="application/octet-stream")

