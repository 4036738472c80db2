"""One module per domain; each registers its DomainSpec on import (see ``features.registry``)."""
