"""The stages of the training flow, one module (or package) per arrow of ARCHITECTURE.md's data path."""
