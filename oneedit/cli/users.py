"""``oneedit users ...``: add users, list them, change roles, remove them, issue new API tokens.

Users live in the workspace's ``ledger.sqlite`` (``controller.users.UserStore``). The CLI acts as
the workspace's local user (``user`` in config.yaml, an admin made on first use); managing users
needs the admin role. A token is printed once, when it is made, and only its hash is stored.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Annotated

import typer

from oneedit.cli.options import JsonOpt, WorkspaceOpt
from oneedit.cli.output import console, err_console, handle_errors, print_json

users_app = typer.Typer(help="Manage users: roles (viewer, editor, curator, admin), trust and API tokens.",
                        no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="User name: 1-64 letters, digits and . _ - @.")]
ONCE = "This token is shown only once: store it now. `oneedit users token {name}` makes a new one."


@contextmanager
def _store(workspace):
    """The workspace's user store, after checking that the local user may manage users."""
    from controller.users import TrustPolicy, UserStore, require_role
    from oneedit.workspace import Workspace

    with Workspace.open(workspace, write=False) as ws:  # users live in SQLite, which takes concurrent writers
        policy = getattr(ws.config, "policy", None)
        trust = TrustPolicy.from_dict(policy.trust) if policy is not None else TrustPolicy()
        days = policy.token_days if policy is not None else 90.0
        with UserStore(ws.root / "ledger.sqlite", trust, owner=ws.config.user, token_days=days) as store:
            actor = store.ensure(ws.config.user, "admin")
            require_role(actor, "admin", "manage users")
            yield store


def _print_token(name: str, token: str) -> None:
    c = console()
    c.print(f"API token for {name}: [bold]{token}[/]", highlight=False, soft_wrap=True)
    err_console().print(f"[yellow]Warning:[/] {ONCE.format(name=name)}", highlight=False)


@users_app.command()
@handle_errors
def add(name: NameArg,
        role: Annotated[str, typer.Option("--role", "-r", help="viewer, editor, curator or admin.")],
        workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Add a user with a role; prints the user's API token (shown only this once)."""
    with _store(workspace) as store:
        user, token = store.add(name, role)
    if as_json:
        print_json({"user": user.to_dict(), "token": token, "warning": ONCE.format(name=name)})
        return
    console().print(f"Added [bold]{user.name}[/] as {user.role} (trust {user.trust:.2f}).", highlight=False)
    _print_token(user.name, token)


@users_app.command("list")
@handle_errors
def list_(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Every user, removed ones included: name, role, trust, active, created."""
    with _store(workspace) as store:
        users = store.list()
        review_below = store.trust.review_below
        held = {u.name for u in users if store.needs_review(u)}
    if as_json:
        print_json({"users": [u.to_dict() | {"needs_review": u.name in held} for u in users]})
        return
    from rich.table import Table

    t = Table(title=f"{len(users)} user(s)", title_justify="left", caption_justify="left",
              caption=f"* trust below {review_below:.2f}: a curator reviews their edits" if held else None)
    for col in ("name", "role", "trust", "active", "created"):
        t.add_column(col, justify="right" if col == "trust" else "left")
    for u in users:
        t.add_row(u.name, u.role, f"{u.trust:.2f}" + (" *" if u.name in held else ""),
                  "yes" if u.active else "[dim]no[/]", u.created)
    console().print(t)


@users_app.command("set-role")
@handle_errors
def set_role(name: NameArg,
             role: Annotated[str, typer.Argument(help="viewer, editor, curator or admin.")],
             workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Change a user's role."""
    with _store(workspace) as store:
        before = store.get(name).role
        user = store.set_role(name, role)
    if as_json:
        print_json({"user": user.to_dict(), "previous_role": before})
        return
    console().print(f"{user.name}: {before} -> [bold]{user.role}[/]", highlight=False)


@users_app.command()
@handle_errors
def remove(name: NameArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Deactivate a user: the token stops working; the name stays reserved for the ledger's history."""
    with _store(workspace) as store:
        user = store.deactivate(name)
    if as_json:
        print_json({"user": user.to_dict()})
        return
    console().print(f"Deactivated {user.name}: their token no longer works.", highlight=False)


@users_app.command()
@handle_errors
def token(name: NameArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Make a new API token for a user (the old one stops working at once)."""
    with _store(workspace) as store:
        new = store.rotate_token(name)
    if as_json:
        print_json({"user": name, "token": new, "warning": ONCE.format(name=name)})
        return
    _print_token(name, new)
