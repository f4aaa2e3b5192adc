"""Users: yourself (``/api/me``, rotating your token) and, for admins, managing everyone."""

from __future__ import annotations

from fastapi import APIRouter

from controller.users import can_admin, can_edit, can_review
from oneedit.service.api import ApiError, Svc
from oneedit.service.auth import Admin, Viewer
from oneedit.service.schemas import UserIn, UserPatch

router = APIRouter(tags=["users"])


@router.get("/api/me")
def me(user: Viewer, svc: Svc):
    return user.to_dict() | {"can_edit": can_edit(user.role), "can_review": can_review(user.role),
                             "can_admin": can_admin(user.role),
                             "token_expires": svc.system.users.token_expires(user.name)}


@router.post("/api/me/token")
def me_token(user: Viewer, svc: Svc):
    """A new token for yourself (the one you called with stops working at once), shown this once."""
    users = svc.system.users
    token = users.rotate_token(user.name)
    return {"name": user.name, "token": token, "token_expires": users.token_expires(user.name)}


# -- admins ------------------------------------------------------------------------------------------------
@router.get("/api/users")
def users_list(user: Admin, svc: Svc):
    return {"users": [u.to_dict() for u in svc.system.users.list()]}


@router.post("/api/users", status_code=201)
def users_add(body: UserIn, user: Admin, svc: Svc):
    """Create a user; the response carries their API token, shown this once."""
    new, token = svc.system.users.add(body.name, body.role)
    return new.to_dict() | {"token": token}


@router.patch("/api/users/{name}")
def users_patch(name: str, body: UserPatch, user: Admin, svc: Svc):
    users = svc.system.users
    if users.find(name) is None:
        raise ApiError(404, f"No user named {name!r}.")
    if name == user.name and (body.active is False or (body.role is not None and body.role != "admin")):
        raise ApiError(409, "You cannot deactivate yourself or give up your own admin role.",
                       hint="Another admin can, if it must be done.")
    if body.role is not None:
        users.set_role(name, body.role)
    if body.active is False:
        users.deactivate(name)
    elif body.active is True:
        users.activate(name)
    return users.get(name).to_dict()


@router.post("/api/users/{name}/token")
def users_token(name: str, user: Admin, svc: Svc):
    """A new token for ``name`` (the old one stops working)."""
    if svc.system.users.find(name) is None:
        raise ApiError(404, f"No user named {name!r}.")
    return {"name": name, "token": svc.system.users.rotate_token(name)}
