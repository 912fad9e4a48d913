"""What every other module reads: the settings registry, the component table, errors, the
metadata DB. Standard library only (the metadata DB's driver is imported when a connection is
made)."""
