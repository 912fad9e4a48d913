"""The one-shot jobs: db-migrate, bootstrap, and the fernet key rotation's steps."""
