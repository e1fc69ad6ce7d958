"""apflab: a test framework for ARM64 KVM SDEI virtualization and asynchronous page faults."""

__version__ = "0.1.0"
