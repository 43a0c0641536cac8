"""The sans-IO engine: ``ExtractionRun`` drives attempts; ``modes/`` pairs a render with a parse.

``from schemagen.engine import ExtractionRun, Settings, Extraction`` keeps working as before the
package split.
"""

from schemagen.engine.run import Extraction, ExtractionRun, Settings

__all__ = ["Extraction", "ExtractionRun", "Settings"]
