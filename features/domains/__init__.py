"""One package per domain; each registers its DomainSpec on import (see ``features.registry``)."""
