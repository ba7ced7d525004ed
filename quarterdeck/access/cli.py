"""Access commands: `users` (create-admin, list), `tokens` (create, list, revoke), `audit` (verify, export).

Commands run on the server with the database's credentials, so they act as the system actor and are
audited as such.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from quarterdeck.access import service
from quarterdeck.access.schemas import Actor, GlobalRole
from quarterdeck.clock import SystemClock
from quarterdeck.console import (
    command_runtime,
    command_transaction,
    print_json,
    print_table,
    reports_errors,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]
SYSTEM = Actor.system("cli")

users_app = typer.Typer(help="People who sign in, and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for scripts and CI.", no_args_is_help=True)
audit_app = typer.Typer(help="The append-only audit log.", no_args_is_help=True)


@users_app.command("create-admin")
@reports_errors()
def create_admin(
    email: Annotated[str, typer.Option(help="The admin's e-mail (links them to the catalog person)")],
    name: Annotated[str, typer.Option(help="Display name")] = "",
    password: Annotated[
        str | None,
        typer.Option(help="Password for local sign-in (prompted when omitted; none with --sso-only)"),
    ] = None,
    sso_only: Annotated[bool, typer.Option(help="No password: sign in with single sign-on only")] = False,
    if_missing: Annotated[bool, typer.Option(help="Do nothing when this user exists")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create the first admin (or another one)."""
    if password is None and not sso_only:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with command_transaction() as session:
        if if_missing and any(u.email == email.strip().lower() for u in service.list_users(session, SYSTEM)):
            user = service.find_user(session, email)
        else:
            user = service.create_user(
                session,
                SYSTEM,
                email=email,
                name=name,
                role=GlobalRole.ADMIN,
                password=password,
                at=SystemClock().now(),
            )
        out = service.user_out(session, user)
    if as_json:
        print_json(out.model_dump(mode="json"))
    else:
        typer.echo(f"admin {out.email} (id {out.id}) ready")


@users_app.command("list")
@reports_errors()
def list_users(as_json: JsonFlag = False) -> None:
    """Every user with their global role and team roles."""
    with command_transaction() as session:
        users = service.list_users(session, SYSTEM)
    if as_json:
        print_json([u.model_dump(mode="json") for u in users])
        return
    print_table(
        ("id", "email", "role", "teams", "active"),
        (
            (
                str(u.id),
                u.email,
                u.role,
                ", ".join(f"{slug}:{role}" for slug, role in sorted(u.teams.items())) or "-",
                "yes" if u.active else "no",
            )
            for u in users
        ),
        title=f"{len(users)} users",
    )


@tokens_app.command("create")
@reports_errors()
def create_token(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. ci-deploys")],
    scope: Annotated[
        list[str], typer.Option(help="read, write:catalog, deploy, page, flags, admin (repeat)")
    ],
    user: Annotated[
        str | None, typer.Option(help="E-mail of the user it acts as; none: a service token")
    ] = None,
    team: Annotated[str | None, typer.Option(help="Limit a service token to one team")] = None,
    expires: Annotated[str, typer.Option(help="12h, 30d, 8w or never")] = "90d",
    as_json: JsonFlag = False,
) -> None:
    """Create a token and print it: it is shown this once."""
    with command_transaction() as session:
        created = service.create_token(
            session,
            SYSTEM,
            name=name,
            scopes=scope,
            user=user,
            service=user is None,
            team=team,
            expires=expires,
            at=SystemClock().now(),
        )
    if as_json:
        print_json(created.model_dump(mode="json"))
        return
    sys.stdout.write(created.token + "\n")
    expiry = created.expires_at.strftime("%Y-%m-%d %H:%M UTC") if created.expires_at else "never"
    typer.echo(
        f"token {created.id} {created.name!r}: scopes {', '.join(created.scopes)}; expires {expiry}", err=True
    )


@tokens_app.command("list")
@reports_errors()
def list_tokens(as_json: JsonFlag = False) -> None:
    """Every token (never its secret)."""
    with command_transaction() as session:
        tokens = service.list_tokens(session, SYSTEM, everyone=True, at=SystemClock().now())
    if as_json:
        print_json([t.model_dump(mode="json") for t in tokens])
        return
    print_table(
        ("id", "name", "prefix", "scopes", "user/team", "expires", "last used", "state"),
        (
            (
                str(t.id),
                t.name,
                t.prefix + "…",
                ",".join(t.scopes),
                t.user or (f"team {t.team}" if t.team else "service"),
                t.expires_at.strftime("%Y-%m-%d") if t.expires_at else "never",
                t.last_used_at.strftime("%Y-%m-%d %H:%M") if t.last_used_at else "never",
                "active" if t.active else ("revoked" if t.revoked_at else "expired"),
            )
            for t in tokens
        ),
    )


@tokens_app.command("revoke")
@reports_errors()
def revoke_token(
    token_id: Annotated[int, typer.Argument(help="The token's id")], as_json: JsonFlag = False
) -> None:
    """Revoke a token at once; revoking it again changes nothing."""
    with command_transaction() as session:
        token = service.revoke_token(session, SYSTEM, token_id, at=SystemClock().now())
    if as_json:
        print_json(token.model_dump(mode="json"))
    else:
        typer.echo(f"token {token.id} {token.name!r} revoked")


@audit_app.command("verify")
@reports_errors()
def verify(as_json: JsonFlag = False) -> None:
    """Check the hash chain of the whole log; exit 1 when any entry was edited, removed or inserted."""
    with command_transaction() as session:
        result = service.verify(session)
    if as_json:
        print_json(result.as_json())
    elif result.ok:
        typer.echo(f"audit log intact: {result.checked} entries")
    else:
        typer.echo(f"audit log TAMPERED: {result.problem} (first bad entry {result.first_bad_seq})", err=True)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("export")
@reports_errors()
def export(
    actor: Annotated[str | None, typer.Option(help="Only entries by this actor")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. service.update")] = None,
) -> None:
    """Print the log as JSON Lines, oldest first."""
    with command_runtime() as runtime, runtime.sessions() as session:
        for line in service.export_lines(session, service.AuditFilters(actor=actor, action=action)):
            sys.stdout.write(line)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(audit_app, name="audit")
