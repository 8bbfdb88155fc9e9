"""Health of the management function."""

from __future__ import annotations

from fastapi import APIRouter

from shared.api.rest._deps import API
from shared.api.rest.schemas import Health

router = APIRouter(tags=["meta"])


@router.get("/health", response_model=Health)
@router.get(f"{API}/health", response_model=Health)
async def health() -> Health:
    """Liveness: the function is up (touches no dependency)."""
    return Health(status="ok", service="create")
