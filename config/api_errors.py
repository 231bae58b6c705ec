"""The one error answer of the HTTP APIs, `{"detail": …}`, and its OpenAPI description for each status."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ValidationIssue(BaseModel):
    """One problem of a request FastAPI refused before the route ran: where, what, and its kind."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error answer: a sentence, or (a request the schema refused) the list of what is wrong."""

    detail: str | list[ValidationIssue]


def error_response(description: str) -> dict:
    """An entry of a route's or router's `responses=`: the error model, described."""
    return {"model": ErrorOut, "description": description}


# Applied per router of the admin API (APIRouter(responses=…)), so every route documents the same answers.
ERROR_RESPONSES: dict[int | str, dict] = {
    401: error_response("No bearer token, or one that is unknown, revoked or expired"),
    403: error_response("The token's role (or store) may not do this"),
    404: error_response("Not found, or not visible to the token's role and store"),
    409: error_response("Conflicts with the current state (a duplicate, a state that does not allow it, in use)"),
    422: error_response("Invalid input: a sentence naming the field, or the list of schema violations"),
    502: error_response("WeChat / WeCom refused or failed the call Siyu made for this request"),
}
