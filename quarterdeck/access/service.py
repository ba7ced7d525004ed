"""Access use cases for other domains and the web layer: identity, tokens, the policy, approvals, audit.

Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from quarterdeck.access.approvals import (
    approval_out,
    decide,
    get_approval,
    list_approvals,
    request_approval,
    resource_of,
)
from quarterdeck.access.audit import (
    AuditFilters,
    Change,
    entries_for,
    export_lines,
    record,
    record_many,
    search,
    verify,
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
    "TokenGrant",
    "actor_for",
    "approval_out",
    "authenticate",
    "can",
    "change_user",
    "create_token",
    "create_user",
    "decide",
    "end_session",
    "entries_for",
    "export_lines",
    "find_user",
    "get_approval",
    "list_approvals",
    "list_tokens",
    "list_users",
    "mark_token_used",
    "needs_second_approval",
    "record",
    "record_many",
    "request_approval",
    "require",
    "resource_of",
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
]
