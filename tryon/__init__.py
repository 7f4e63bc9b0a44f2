"""tryon: virtual try-on. A person photo plus up to four garments in, the person wearing them out."""

from .config import Settings
from .errors import TryOnError
from .service import TryOnResult, TryOnService

__version__ = "0.1.0"
__all__ = ["Settings", "TryOnError", "TryOnResult", "TryOnService", "__version__"]
