"""ruledrive: camera frame + traffic-rule text -> driving decision, served over MQTT."""

__all__ = ["__version__"]

__version__ = "0.1.0"
