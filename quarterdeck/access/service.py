"""Access use cases for other domains and the web layer: identity, tokens, the policy, change requests
and the audit log.

Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from quarterdeck.access.audit import (
    AuditFilters,
    Change,
    audit_entries,
    audit_export,
    audit_verification,
    entries_for,
    export_lines,
    record,
    record_many,
    search,
    verify,
)
from quarterdeck.access.change_requests import (
    ResourcesNow,
    ask_change,
    change_request,
    change_requests,
    change_requests_for,
    decide_change,
    waiting_for,
)
from quarterdeck.access.policy import can, needs_second_approval, require
from quarterdeck.access.tokens import (
    TokenGrant,
    create_token,
    list_tokens,
    revoke_token,
    scopes_offered,
    token_actor,
)
from quarterdeck.access.tokens import mark_used as mark_token_used
from quarterdeck.access.users import (
    actor_for,
    authenticate,
    change_user,
    create_user,
    end_session,
    find_user,
    list_users,
    session_user,
    set_team_role,
    sign_in_oidc,
    start_session,
    user_out,
)

__all__ = [
    "AuditFilters",
    "Change",
    "ResourcesNow",
    "TokenGrant",
    "actor_for",
    "ask_change",
    "audit_entries",
    "audit_export",
    "audit_verification",
    "authenticate",
    "can",
    "change_request",
    "change_requests",
    "change_requests_for",
    "change_user",
    "create_token",
    "create_user",
    "decide_change",
    "end_session",
    "entries_for",
    "export_lines",
    "find_user",
    "list_tokens",
    "list_users",
    "mark_token_used",
    "needs_second_approval",
    "record",
    "record_many",
    "require",
    "revoke_token",
    "scopes_offered",
    "search",
    "session_user",
    "set_team_role",
    "sign_in_oidc",
    "start_session",
    "token_actor",
    "user_out",
    "verify",
    "waiting_for",
]
