"""The HTTP API under ``/api/v1``: FastAPI, served by uvicorn on the broker's event loop."""
