"""resnet_lab: the companion package of the resnet-lab book."""

__version__ = "0.1.0"

from resnet_lab.models import get_model, list_models  # noqa: E402
from resnet_lab.runtime import get_device, is_smoke, pick, setup  # noqa: E402

__all__ = ["__version__", "get_device", "get_model", "is_smoke", "list_models", "pick", "setup"]
