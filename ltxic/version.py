"""The package version, written into every LoRA file ltxic saves (its metadata key ``ltxic_version``)."""

__version__ = "0.1.0"
