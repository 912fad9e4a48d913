"""DAG deployment: dag-sync, its sources, safe extraction, validation, the release store and the DAG bundle."""
