"""rotator: rotate and replace Cloud KMS CMEK keys without making data unreadable."""

__version__ = "0.1.0"
