"""HTTP API (FastAPI): cited search, documents, spans, reports, background jobs and the search page."""

from search.api.app import create_app, server_config
from search.output.citations import search_response

__all__ = ["create_app", "server_config", "search_response"]
