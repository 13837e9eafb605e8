"""Stage descriptions: loading, validation, model and wall geometry."""

from stagectl.stage.loader import load_stage
from stagectl.stage.model import Stage

__all__ = ["load_stage", "Stage"]
