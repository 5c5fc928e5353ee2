"""The served model: ``AudioModel``, the pyfunc that embeds the training feature pipeline
(``model``), and what it accepts (``limits``). It imports only the model families, the
feature engine and the errors (an import-linter contract).

``AudioModel`` is re-exported here because models logged by release 0.1.0 pickled it as
``runner.serving.AudioModel``; unpickling them finds it under that name.
"""

from __future__ import annotations

from runner.serving.model import AudioModel

__all__ = ["AudioModel"]
