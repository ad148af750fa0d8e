"""Brie Bench: is my fine-tuned model better than its base model, and how sure are we?"""

__version__ = "0.1.0"
