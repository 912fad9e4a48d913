"""What every other module reads: the settings registry, the component table, errors, the metadata DB. Standard library only."""
