"""edgeward: end-to-end security for fleets of Linux IoT gateways."""

__version__ = "0.1.0"
