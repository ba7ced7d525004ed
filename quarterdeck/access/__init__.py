"""Who may do what: users, sessions, OIDC, API tokens, the policy, change requests and the audit log."""
