"""``python -m services.inference.model_server``: settings from ``TIMBR_MODEL_SERVER_*``."""

from services.inference.model_server.server import main

if __name__ == "__main__":
    main()
