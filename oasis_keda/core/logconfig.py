"""Logging set-up, done once per process by the CLI entry point."""

from __future__ import annotations

import logging.config
import os


def configure_logging(level: str = "INFO") -> None:
    fmt = (
        '{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}'
        if os.environ.get("OASIS_KEDA_LOG_FORMAT") == "json"
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"default": {"format": fmt}},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "default",
                    "stream": "ext://sys.stderr",
                }
            },
            "root": {"level": level, "handlers": ["stderr"]},
        }
    )
