"""The dashboard pages (their scripts read the API with the token from the URL fragment)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).parents[1] / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
def admin_page() -> FileResponse:
    return FileResponse(STATIC / "admin.html")


@router.get("/customers/{customer}")
def customer_page(customer: str) -> FileResponse:
    return FileResponse(STATIC / "customer.html")
