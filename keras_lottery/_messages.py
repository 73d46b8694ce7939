"""Progress messages, printed the way Keras prints its own: to stdout while
Keras's interactive logging is on (the default), else to the ``keras_lottery``
logger, so ``keras.config.disable_interactive_logging()`` redirects both.

Example:

>>> print_msg("[keras_lottery] round 3 | 51.20% weights remaining")
"""

from __future__ import annotations

import logging
import sys

import keras

logger = logging.getLogger("keras_lottery")


def print_msg(message: str) -> None:
    """Prints ``message`` (a line) through Keras's logging switch."""
    if keras.config.is_interactive_logging_enabled():
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
    else:
        logger.info(message)
