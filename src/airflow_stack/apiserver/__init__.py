"""What runs inside the api-server: the plugin and its fingerprint endpoint."""
