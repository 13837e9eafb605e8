"""stagectl: virtual-production stage controller and LED-wall render bridge."""

__version__ = "0.1.0"
