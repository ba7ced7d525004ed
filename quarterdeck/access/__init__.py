"""Who may do what: users, sessions, OIDC, API tokens, the policy, approvals and the audit log."""
