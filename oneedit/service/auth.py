"""Who is calling: the bearer token's user (401 when missing or wrong) and the role each route
needs (403 when too low). Routes take the user as ``user: Viewer`` (``Editor``, ``Curator``,
``Admin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.users import User
from oneedit.core import PermissionDenied
from oneedit.service.api import ApiError

_bearer = HTTPBearer(auto_error=False, description="API token from `oneedit users add NAME --role ROLE`")


def current_user(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]):
    """The user whose bearer token this is (401 when missing or wrong)."""
    if creds is None or not creds.credentials:
        raise ApiError(401, "No API token: send `Authorization: Bearer <token>`.",
                       hint="An admin creates one with `oneedit users add NAME --role ROLE`.")
    user, why = request.app.state.service.system.users.check_token(creds.credentials)
    if why == "expired":
        raise ApiError(401, "The API token has expired.",
                       hint="Ask an admin for a new one (`oneedit users token NAME`); rotate yours before it "
                            "expires with POST /api/me/token.")
    if user is None:
        raise ApiError(401, "The API token is not valid (wrong, revoked or its user deactivated).",
                       hint="Ask an admin for a new one: `oneedit users token NAME`.")
    return user


def _role(needed: str, action: str):
    def check(user=Depends(current_user)):
        from controller.users import role_rank

        if role_rank(user.role) < role_rank(needed):
            raise PermissionDenied(f"{user.name} is a {user.role}; {action} needs the {needed} role or higher.",
                                   hint="Ask an admin: `oneedit users set-role NAME ROLE`.",
                                   details={"user": user.name, "role": user.role, "needed": needed})
        return user
    return check


Viewer = Annotated[User, Depends(_role("viewer", "reading"))]
Editor = Annotated[User, Depends(_role("editor", "editing"))]
Curator = Annotated[User, Depends(_role("curator", "reviewing"))]
Admin = Annotated[User, Depends(_role("admin", "managing users"))]
