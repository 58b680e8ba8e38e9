"""The site's web server: REST API under /api/v1, OpenAPI document, installer UI."""
